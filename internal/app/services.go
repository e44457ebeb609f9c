package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/webhook"
)

// Services are berth's use cases over opened stores, wired the way serve
// wires them: the registry, and the collector whose webhooks also deliver
// the registry's events. The CLI commands (gc, sweep, purge, tag,
// namespace) use them against the same data as a running server.
type Services struct {
	Stores    *Stores
	Registry  *registry.Registry
	Collector *gc.Collector
	events    *eventSink
}

// OpenServices opens the stores of cfg (OpenStores: the schema must be
// current) and wires the registry and the collector over them. The
// collector is not started; call its RunOnce, Purge, Sweep or Status. Close
// the services when done: that drains the webhooks and closes the stores.
func OpenServices(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Services, error) {
	if logger == nil {
		logger = NewLogger(cfg)
	}
	stores, err := OpenStores(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return newServices(cfg, stores, logger, nil), nil
}

// newServices wires the registry and the collector over stores. metrics,
// when not nil, receives the collector's metrics.
func newServices(cfg config.Config, stores *Stores, logger *slog.Logger, metrics prometheus.Registerer) *Services {
	sender := webhook.New(webhooks(cfg.Webhooks), webhook.Options{Logger: logger, Registerer: metrics})
	sink := &eventSink{sender: sender, log: logger}
	opts := GCOptions(cfg, logger)
	if metrics != nil {
		opts.Registerer = metrics
	}
	opts.Hooks = append(opts.Hooks, sink.collectorEvent)
	c := gc.New(stores.Meta, stores.Blobs, opts)
	ropts := registryOptions(cfg, logger)
	ropts.Events = sink.registryEvent
	return &Services{
		Stores:    stores,
		Registry:  registry.New(stores.Meta, stores.Blobs, ropts),
		Collector: c,
		events:    sink,
	}
}

// Close stops event delivery, waits up to ctx for queued webhook events,
// and closes the stores.
func (s *Services) Close(ctx context.Context) error {
	s.closeEvents(ctx)
	return s.Stores.Close()
}

// closeEvents stops event delivery and drains the webhook queues until
// ctx ends. Registry events arriving afterwards are only logged.
func (s *Services) closeEvents(ctx context.Context) {
	if s.events.close() {
		s.events.sender.Close(ctx)
	}
}

// GCOptions maps the config onto gc.Options. Unlike the registry, the
// collector takes every window as is: the config's 0 is a real 0. Metrics
// are not registered (Registerer nil); serve sets its own registry.
func GCOptions(cfg config.Config, logger *slog.Logger) gc.Options {
	return gc.Options{
		Grace:           cfg.GC.Grace.Duration(),
		UploadExpiry:    cfg.GC.UploadExpiry.Duration(),
		TagRetention:    cfg.GC.TagRetention.Duration(),
		ReviewDelay:     cfg.GC.ReviewDelay.Duration(),
		CollectUntagged: cfg.GC.CollectUntagged,
		Workers:         cfg.GC.Workers,
		BatchSize:       cfg.GC.BatchSize,
		Interval:        cfg.GC.Interval.Duration(),
		OverdueAfter:    gc.DefaultOptions().OverdueAfter,
		Now:             time.Now,
		Logger:          logger,
	}
}

// webhooks maps the configured webhooks onto delivery targets.
func webhooks(ws []config.Webhook) []webhook.Target {
	var out []webhook.Target
	for _, w := range ws {
		timeout := w.Timeout.Duration()
		if timeout == 0 {
			timeout = config.DefaultWebhookTimeout
		}
		out = append(out, webhook.Target{URL: w.URL, Events: w.Events, Timeout: timeout})
	}
	return out
}

// eventSink sends the registry's and the collector's events to the same
// webhook targets. After close, events are only logged: the queues are
// closed by then.
type eventSink struct {
	mu     sync.RWMutex
	closed bool
	sender *webhook.Sender
	log    *slog.Logger
}

func (s *eventSink) registryEvent(e registry.Event) {
	s.log.Debug("event", "kind", e.Kind, "repo", e.Repo, "digest", e.Digest, "tag", e.Tag, "actor", e.Actor)
	s.send(gc.Event{
		Kind:       e.Kind,
		Repository: e.Repo,
		Tag:        e.Tag,
		Digest:     digest.Digest(e.Digest),
		Reason:     "client request",
		At:         e.At,
		Actor:      e.Actor,
	})
}

func (s *eventSink) collectorEvent(e gc.Event) { s.send(e) }

func (s *eventSink) send(e gc.Event) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	s.sender.Send(e.Kind, e)
}

// close marks the sink closed; it reports whether this call closed it.
func (s *eventSink) close() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.closed = true
	return true
}
