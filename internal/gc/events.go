package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Event kinds (DESIGN.md §4: the image/repository cleanup callbacks).
const (
	EventTagExpired       = "tag.expired"
	EventTagCollected     = "tag.collected"
	EventManifestDeleted  = "manifest.deleted"
	EventBlobDeleted      = "blob.deleted"
	EventRepositoryPurged = "repository.purged"
	EventOther            = "gc.deleted"
)

// Event is one committed change made by the collector.
type Event struct {
	Kind       string        `json:"kind"`
	Repository string        `json:"repository,omitempty"`
	Tag        string        `json:"tag,omitempty"`
	Digest     digest.Digest `json:"digest,omitempty"`
	Size       int64         `json:"size,omitempty"`
	Reason     string        `json:"reason,omitempty"`
	At         time.Time     `json:"at"`
}

func eventKind(kind string) string {
	switch kind {
	case KindTag:
		return EventTagCollected
	case KindManifest:
		return EventManifestDeleted
	case KindBlob:
		return EventBlobDeleted
	case KindRepository:
		return EventRepositoryPurged
	}
	return EventOther
}

// Webhook is an HTTP endpoint that receives events as JSON POSTs.
type Webhook struct {
	URL string
	// Events selects event kinds; empty means all.
	Events  []string
	Timeout time.Duration
}

// webhookQueue bounds the events waiting for delivery; when it is full,
// new events are dropped (and counted) so the collector never blocks.
const webhookQueue = 4096

// dispatcher calls in-process hooks synchronously and delivers webhooks
// from a goroutine per endpoint, retrying with exponential backoff.
type dispatcher struct {
	hooks   []func(Event)
	targets []*webhookTarget
	log     *slog.Logger
	m       *metrics
	wg      sync.WaitGroup
	stop    context.CancelFunc
}

type webhookTarget struct {
	Webhook
	queue  chan Event
	client *http.Client
}

func newDispatcher(hooks []func(Event), hooks2 []Webhook, log *slog.Logger, m *metrics) *dispatcher {
	ctx, cancel := context.WithCancel(context.Background())
	d := &dispatcher{hooks: hooks, log: log, m: m, stop: cancel}
	for _, w := range hooks2 {
		if w.Timeout <= 0 {
			w.Timeout = 10 * time.Second
		}
		t := &webhookTarget{Webhook: w, queue: make(chan Event, webhookQueue), client: &http.Client{Timeout: w.Timeout}}
		d.targets = append(d.targets, t)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.deliverLoop(ctx, t)
		}()
	}
	return d
}

func (d *dispatcher) emit(e Event) {
	for _, h := range d.hooks {
		h(e)
	}
	for _, t := range d.targets {
		if len(t.Events) > 0 && !slices.Contains(t.Events, e.Kind) {
			continue
		}
		select {
		case t.queue <- e:
		default:
			d.m.webhookDropped.Inc()
			d.log.Warn("webhook queue full; event dropped", "url", t.URL, "event", e.Kind)
		}
	}
}

// close stops accepting events and waits for queued ones until ctx ends.
func (d *dispatcher) close(ctx context.Context) {
	for _, t := range d.targets {
		close(t.queue)
	}
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		d.stop()
		<-done
	}
}

func (d *dispatcher) deliverLoop(ctx context.Context, t *webhookTarget) {
	for e := range t.queue {
		d.deliver(ctx, t, e)
	}
}

// deliver POSTs one event, retrying 5xx and network errors up to 6 times
// with exponential backoff and jitter (1s, 2s, 4s, ... capped at 1m).
func (d *dispatcher) deliver(ctx context.Context, t *webhookTarget, e Event) {
	body, _ := json.Marshal(e)
	delay := time.Second
	for attempt := 1; ; attempt++ {
		err := post(ctx, t, body)
		if err == nil {
			d.m.webhookSent.Inc()
			return
		}
		if attempt == 6 || ctx.Err() != nil {
			d.m.webhookFailed.Inc()
			d.log.Error("webhook delivery failed", "url", t.URL, "event", e.Kind, "attempts", attempt, "err", err)
			return
		}
		wait := delay + time.Duration(rand.Int64N(int64(delay)/2))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		delay = min(delay*2, time.Minute)
	}
}

func post(ctx context.Context, t *webhookTarget, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "berth-gc")
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}
