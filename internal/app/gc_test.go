package app

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// TestServeWiresCollectorMetricsAndWebhooks checks serve end to end: the
// collector runs and deletes a removed tag's manifest and blobs, /metrics
// shows the Go, process and collector metrics, the management API answers,
// and one webhook receives both registry and collector events.
func TestServeWiresCollectorMetricsAndWebhooks(t *testing.T) {
	var mu sync.Mutex
	var events []gc.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct {
			Kind  string   `json:"kind"`
			Event gc.Event `json:"event"`
		}
		if err := json.NewDecoder(r.Body).Decode(&env); err == nil {
			mu.Lock()
			events = append(events, env.Event)
			mu.Unlock()
		}
	}))
	defer hook.Close()
	kinds := func() map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		m := map[string]bool{}
		for _, e := range events {
			m[string(e.Kind)] = true
		}
		return m
	}

	cfg := testConfig(t, t.TempDir())
	cfg.Metrics = true
	// A grace long enough for the push (with 0, the running collector
	// rightly takes the uploaded blobs before the manifest PUT), short
	// enough for the test.
	cfg.GC.Grace = config.Duration(2 * time.Second)
	cfg.GC.TagRetention = 0
	cfg.GC.Interval = config.Duration(50 * time.Millisecond)
	cfg.Webhooks = []config.Webhook{{URL: hook.URL}}
	base, stop := start(t, cfg, io.Discard)

	pushImage(t, base, "acme/app", "v1")
	wantStatus(t, do(t, http.MethodDelete, base+"/v2/acme/app/manifests/v1", "", nil), http.StatusAccepted)

	deadline := time.Now().Add(20 * time.Second)
	for !kinds()[string(event.BlobDeleted)] && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := kinds()
	for _, want := range []string{"manifest.pushed", "tag.deleted", string(event.ManifestDeleted), string(event.BlobDeleted)} {
		if !got[want] {
			t.Errorf("webhook did not receive %s; got %v", want, got)
		}
	}
	// Every event says who made it: the collector its own deletions, the
	// request's actor a registry change.
	mu.Lock()
	for _, e := range events {
		switch {
		case e.Reason == "client request" && e.Actor == "":
			t.Errorf("registry event %s without an actor", e.Kind)
		case e.Reason != "client request" && e.Actor != meta.ActorCollector:
			t.Errorf("collector event %s %s: actor %q, want %q", e.Kind, e.Digest, e.Actor, meta.ActorCollector)
		}
	}
	mu.Unlock()

	resp := do(t, http.MethodGet, base+"/metrics", "", nil)
	wantStatus(t, resp, http.StatusOK)
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"go_goroutines", "process_", "berth_gc_deletions_total", "berth_gc_reviews_pending", "berth_webhook_sent_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	resp = do(t, http.MethodGet, base+"/berth/v1/gc/status", "", nil)
	wantStatus(t, resp, http.StatusOK)
	var st gc.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("gc status: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func TestServeWithoutMetricsOrWorkers(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.GC.Workers = 0
	base, stop := start(t, cfg, io.Discard)
	wantStatus(t, do(t, http.MethodGet, base+"/metrics", "", nil), http.StatusNotFound)
	// The collector exists for the management API even without workers.
	wantStatus(t, do(t, http.MethodGet, base+"/berth/v1/gc/status", "", nil), http.StatusOK)
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// TestPolicy: the configuration's policy is review.DefaultPolicy when
// nothing is set, an explicit 0s is a real 0 (one meaning for zero), a
// negative window is refused, and the collector and the registry receive
// the policy they are given, as is.
func TestPolicy(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  []string
		want review.Policy
	}{
		{"unset", nil, review.DefaultPolicy()},
		{"explicit zeros", []string{"BERTH_GC_GRACE=0s", "BERTH_TAG_RETENTION=0s", "BERTH_GC_COLLECT_UNTAGGED=false", "BERTH_GC_ATTACHMENTS_FOLLOW_SUBJECT=false"},
			review.Policy{UploadExpiry: review.DefaultUploadExpiry}},
		{"set", []string{"BERTH_GC_GRACE=2h", "BERTH_UPLOAD_EXPIRY=30m", "BERTH_TAG_RETENTION=1w"},
			review.Policy{Grace: 2 * time.Hour, UploadExpiry: 30 * time.Minute, TagRetention: 7 * 24 * time.Hour, CollectUntagged: true,
				AttachmentsFollowSubject: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load("", tt.env)
			if err != nil {
				t.Fatalf("config.Load(%q): %v", tt.env, err)
			}
			got, err := Policy(cfg)
			if err != nil {
				t.Fatalf("Policy: %v", err)
			}
			if got != tt.want {
				t.Errorf("Policy: got %+v, want %+v", got, tt.want)
			}
			if o := GCOptions(cfg, got, nil); o.Policy != got {
				t.Errorf("GCOptions: got policy %+v, want %+v", o.Policy, got)
			}
			if o := registryOptions(cfg, got, nil); o.Policy != got {
				t.Errorf("registryOptions: got policy %+v, want %+v", o.Policy, got)
			}
		})
	}
	cfg := config.Default()
	cfg.GC.Grace = config.Duration(-time.Second)
	if _, err := Policy(cfg); err == nil || !strings.Contains(err.Error(), "grace") {
		t.Errorf("Policy with a negative grace: got %v, want an error naming the grace", err)
	}
}

func TestGCOptions(t *testing.T) {
	cfg := config.Default()
	cfg.Webhooks = []config.Webhook{{URL: "http://example.test/hook", Events: []string{"blob.deleted"}}}
	o := GCOptions(cfg, review.DefaultPolicy(), nil)
	if o.Workers != 2 || o.BatchSize != 500 || o.TxBudget != 20*time.Millisecond || o.Interval != 10*time.Second || o.OverdueAfter != time.Hour {
		t.Errorf("defaults: got %+v", o)
	}
	ws := webhooks(cfg.Webhooks)
	if len(ws) != 1 || ws[0].Timeout != config.DefaultWebhookTimeout || ws[0].Events[0] != "blob.deleted" {
		t.Errorf("webhooks: got %+v", ws)
	}
}
