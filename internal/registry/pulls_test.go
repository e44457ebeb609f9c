package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// pullEnv returns the option of an env recording pulls at most every
// interval, with its metrics on *reg.
func pullEnv(interval time.Duration, reg **prometheus.Registry) registryenv.Option {
	return func(o *registryenv.Options) {
		*reg = prometheus.NewRegistry()
		o.Registry.PullInterval = interval
		o.Registry.Registerer = *reg
	}
}

// counter sums the samples of the counter name in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// waitRecorded waits until want pulls were recorded.
func waitRecorded(t *testing.T, reg *prometheus.Registry, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := counter(t, reg, "berth_tag_pulls_recorded_total")
		if got == want {
			return
		}
		if got > want || time.Now().After(deadline) {
			t.Fatalf("pulls recorded: got %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pull sends a GET or HEAD of repo's manifest ref and expects 200.
func pull(t *testing.T, e *registryenv.Env, method, repo, ref string) {
	t.Helper()
	resp, body := e.Do(method, "/v2/"+repo+"/manifests/"+ref, map[string]string{"Accept": registryenv.MediaImage}, nil)
	e.Expect(resp, body, http.StatusOK)
}

// pulledAt reads the pull time of the live lifetime of repo:tag from the
// management API's history document; nil when it has none.
func pulledAt(t *testing.T, e *registryenv.Env, repo, tag string) *time.Time {
	t.Helper()
	resp, body := e.Do("GET", "/berth/v1/repositories/"+repo+"/_tags/"+tag+"/history", nil, nil)
	e.Expect(resp, body, http.StatusOK)
	var h api.TagHistory
	if err := json.Unmarshal(body, &h); err != nil || len(h.Lifetimes) == 0 || !h.Lifetimes[0].Live {
		t.Fatalf("history of %s:%s: %v, want its live lifetime first\n%s", repo, tag, err, body)
	}
	if p := h.Lifetimes[0].PulledAt; (p != nil) != strings.Contains(string(body), `"pulled_at":`) {
		t.Fatalf("history of %s:%s: pulled_at %v does not match the document\n%s", repo, tag, p, body)
	}
	return h.Lifetimes[0].PulledAt
}

func samePull(t *testing.T, what string, got *time.Time, want time.Time) {
	t.Helper()
	if got == nil || !got.Equal(want) {
		t.Errorf("%s: got pulled_at %v, want %s", what, got, want)
	}
}

// TestPullTracking: a GET or HEAD by tag records the pull, a GET by digest
// does not, and a pull within the interval of the recorded one writes
// nothing; the history shows pulled_at.
func TestPullTracking(t *testing.T) {
	var reg *prometheus.Registry
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		m := e.PushImage("acme/app", "v1", []byte("pulled"))
		e.Tag("acme/app", "v2", m)
		if p := pulledAt(t, e, "acme/app", "v1"); p != nil {
			t.Fatalf("v1 before any pull: pulled_at %s, want none", p)
		}
		first := e.Clock.Now()
		pull(t, e, "GET", "acme/app", "v1")
		waitRecorded(t, reg, 1)
		samePull(t, "v1 after a GET", pulledAt(t, e, "acme/app", "v1"), first)

		e.Clock.Add(time.Minute)
		pull(t, e, "GET", "acme/app", m.Digest.String()) // cannot say which tag
		pull(t, e, "HEAD", "acme/app", "v2")
		waitRecorded(t, reg, 2)
		samePull(t, "v2 after a HEAD", pulledAt(t, e, "acme/app", "v2"), e.Clock.Now())

		e.Clock.Add(5 * time.Minute) // within the interval of v1's pull
		pull(t, e, "GET", "acme/app", "v1")
		pull(t, e, "HEAD", "acme/app", "v1")
		e.Clock.Add(5 * time.Minute) // 11 minutes after it
		pull(t, e, "GET", "acme/app", "v1")
		waitRecorded(t, reg, 3)
		samePull(t, "v1 pulled again after the interval", pulledAt(t, e, "acme/app", "v1"), e.Clock.Now())

		if err := e.Registry.Close(e.Ctx); err != nil {
			t.Fatal(err)
		}
		if got := counter(t, reg, "berth_tag_pulls_recorded_total"); got != 3 {
			t.Errorf("pulls recorded after close: got %v, want 3 (the pulls by digest and within the interval write nothing)", got)
		}
		if got := counter(t, reg, "berth_tag_pulls_dropped_total"); got != 0 {
			t.Errorf("pulls dropped: got %v, want 0", got)
		}
	}, pullEnv(10*time.Minute, &reg))
}

// TestPullIntervalZero: with interval 0 every pull by tag is recorded.
func TestPullIntervalZero(t *testing.T) {
	var reg *prometheus.Registry
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		e.PushImage("acme/app", "v1", []byte("pulled"))
		for i := range 3 {
			pull(t, e, "GET", "acme/app", "v1")
			waitRecorded(t, reg, float64(i+1))
			samePull(t, fmt.Sprintf("pull %d", i+1), pulledAt(t, e, "acme/app", "v1"), e.Clock.Now())
			e.Clock.Add(time.Second)
		}
	}, pullEnv(0, &reg))
}

// TestPullBurst: many concurrent pulls of one tag make one write.
func TestPullBurst(t *testing.T) {
	var reg *prometheus.Registry
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		e.PushImage("acme/app", "v1", []byte("hot"))
		var wg sync.WaitGroup
		for range 40 {
			wg.Go(func() {
				req, _ := http.NewRequest("GET", e.Server.URL+"/v2/acme/app/manifests/v1", nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET v1: got %d, want 200", resp.StatusCode)
				}
			})
		}
		wg.Wait()
		if err := e.Registry.Close(e.Ctx); err != nil {
			t.Fatal(err)
		}
		if got := counter(t, reg, "berth_tag_pulls_recorded_total"); got != 1 {
			t.Errorf("40 concurrent pulls of one tag: got %v writes, want 1", got)
		}
		samePull(t, "v1", pulledAt(t, e, "acme/app", "v1"), e.Clock.Now())
	}, pullEnv(10*time.Minute, &reg))
}

// TestPullsFlushedOnClose: Close writes every pull noted before it; a pull
// after Close is not recorded (and counted dropped).
func TestPullsFlushedOnClose(t *testing.T) {
	var reg *prometheus.Registry
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		const n = 20
		m := e.PushImage("acme/app", "", []byte("many tags"))
		for i := range n + 1 {
			e.Tag("acme/app", fmt.Sprintf("t%d", i), m)
		}
		for i := range n {
			pull(t, e, "GET", "acme/app", fmt.Sprintf("t%d", i))
		}
		ctx, cancel := context.WithTimeout(e.Ctx, 10*time.Second)
		defer cancel()
		if err := e.Registry.Close(ctx); err != nil {
			t.Fatal(err)
		}
		err := e.Store.View(e.Ctx, func(tx meta.Tx) error {
			rp, err := tx.Repository(e.Ctx, "acme/app", meta.LockNone)
			if err != nil {
				return err
			}
			for i := range n {
				tg, err := tx.LiveTag(e.Ctx, rp.ID, fmt.Sprintf("t%d", i), e.Clock.Now())
				if err != nil {
					return err
				}
				if tg.PulledAt == nil {
					t.Errorf("t%d: no pull recorded after Close", i)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := counter(t, reg, "berth_tag_pulls_recorded_total"); got != n {
			t.Errorf("pulls recorded: got %v, want %d", got, n)
		}
		pull(t, e, "GET", "acme/app", fmt.Sprintf("t%d", n)) // still served
		if p := pulledAt(t, e, "acme/app", fmt.Sprintf("t%d", n)); p != nil {
			t.Errorf("a pull after Close: pulled_at %s, want none", p)
		}
		if got := counter(t, reg, "berth_tag_pulls_dropped_total"); got != 1 {
			t.Errorf("pulls dropped after Close: got %v, want 1", got)
		}
	}, pullEnv(10*time.Minute, &reg))
}
