// Package webhook delivers berth's events (tag expired, manifest deleted,
// blob deleted, repository purged, and the registry's push events) to HTTP
// endpoints as JSON POSTs. Delivery is asynchronous: Send never blocks its
// caller (the collector or a request), each endpoint has a bounded queue
// and one delivery goroutine, and failed deliveries are retried with
// exponential backoff and jitter.
package webhook

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

	"github.com/prometheus/client_golang/prometheus"
)

// Target is one endpoint.
type Target struct {
	URL string
	// Events selects event kinds; empty means all.
	Events []string
	// Timeout bounds one POST; default 10s.
	Timeout time.Duration
}

// Options tune delivery; zero values take the defaults.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// QueueSize bounds waiting events per target (default 4096); when a
	// queue is full, new events are dropped and counted.
	QueueSize int
	// Attempts per event (default 6) and the first retry delay (default
	// 1s, doubling up to MaxDelay, default 1m).
	Attempts  int
	BaseDelay time.Duration
	MaxDelay  time.Duration
}

// Sender delivers events to targets.
type Sender struct {
	targets []*target
	opts    Options
	log     *slog.Logger
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	once    sync.Once

	sent, failed, dropped prometheus.Counter
}

type target struct {
	Target
	queue  chan envelope
	client *http.Client
}

// envelope is what a target receives: the kind, when it was sent, and the
// event itself.
type envelope struct {
	Kind  string    `json:"kind"`
	Sent  time.Time `json:"sent"`
	Event any       `json:"event"`
}

// New starts one delivery goroutine per target.
func New(targets []Target, opts Options) *Sender {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 6
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = time.Second
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sender{opts: opts, log: opts.Logger, cancel: cancel,
		sent:    prometheus.NewCounter(prometheus.CounterOpts{Namespace: "berth", Subsystem: "webhook", Name: "sent_total", Help: "Events delivered to webhooks."}),
		failed:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: "berth", Subsystem: "webhook", Name: "failed_total", Help: "Events given up after every retry."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "berth", Subsystem: "webhook", Name: "dropped_total", Help: "Events dropped because a webhook queue was full."}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.sent, s.failed, s.dropped)
	}
	for _, tg := range targets {
		if tg.Timeout <= 0 {
			tg.Timeout = 10 * time.Second
		}
		t := &target{Target: tg, queue: make(chan envelope, opts.QueueSize), client: &http.Client{Timeout: tg.Timeout}}
		s.targets = append(s.targets, t)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for e := range t.queue {
				s.deliver(ctx, t, e)
			}
		}()
	}
	return s
}

// Send queues event of kind for every target that wants it; it never blocks.
func (s *Sender) Send(kind string, event any) {
	e := envelope{Kind: kind, Sent: time.Now().UTC(), Event: event}
	for _, t := range s.targets {
		if len(t.Events) > 0 && !slices.Contains(t.Events, kind) {
			continue
		}
		select {
		case t.queue <- e:
		default:
			s.dropped.Inc()
			s.log.Warn("webhook queue full; event dropped", "url", t.URL, "event", kind)
		}
	}
}

// Close stops accepting events and delivers what is queued until ctx ends,
// then abandons the rest. Send must not be called after Close.
func (s *Sender) Close(ctx context.Context) {
	s.once.Do(func() {
		for _, t := range s.targets {
			close(t.queue)
		}
	})
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
}

func (s *Sender) deliver(ctx context.Context, t *target, e envelope) {
	body, err := json.Marshal(e)
	if err != nil {
		s.failed.Inc()
		s.log.Error("webhook event does not encode", "event", e.Kind, "err", err)
		return
	}
	delay := s.opts.BaseDelay
	for attempt := 1; ; attempt++ {
		err := post(ctx, t, body)
		if err == nil {
			s.sent.Inc()
			return
		}
		if attempt >= s.opts.Attempts || ctx.Err() != nil {
			s.failed.Inc()
			s.log.Error("webhook delivery failed", "url", t.URL, "event", e.Kind, "attempts", attempt, "err", err)
			return
		}
		wait := delay + time.Duration(rand.Int64N(int64(delay)/2+1))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		delay = min(delay*2, s.opts.MaxDelay)
	}
}

func post(ctx context.Context, t *target, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "berth-webhook")
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
