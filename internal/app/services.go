package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
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
	svc, err := newServices(cfg, stores, logger, nil)
	if err != nil {
		stores.Close()
		return nil, err
	}
	return svc, nil
}

// newServices wires the registry and the collector over stores, both with
// the one Policy of cfg. metrics, when not nil, receives the collector's
// metrics.
func newServices(cfg config.Config, stores *Stores, logger *slog.Logger, metrics prometheus.Registerer) (*Services, error) {
	policy, err := Policy(cfg)
	if err != nil {
		return nil, err
	}
	sender := webhook.New(webhooks(cfg.Webhooks), webhook.Options{Logger: logger, Registerer: metrics})
	sink := &eventSink{sender: sender, log: logger}
	opts := GCOptions(cfg, policy, logger)
	if metrics != nil {
		opts.Registerer = metrics
	}
	opts.Hooks = append(opts.Hooks, sink.collectorEvent)
	c := gc.New(stores.Meta, stores.Blobs, opts)
	ropts := registryOptions(cfg, policy, logger)
	ropts.Events = sink.registryEvent
	ropts.Registerer = opts.Registerer
	return &Services{
		Stores:    stores,
		Registry:  registry.New(stores.Meta, stores.Blobs, ropts),
		Collector: c,
		events:    sink,
	}, nil
}

// Close writes the pulls the registry has not recorded yet, stops event
// delivery, waits up to ctx for queued webhook events, and closes the
// stores.
func (s *Services) Close(ctx context.Context) error {
	err := s.Registry.Close(ctx)
	s.closeEvents(ctx)
	return errors.Join(err, s.Stores.Close())
}

// closeEvents stops event delivery and drains the webhook queues until
// ctx ends. Registry events arriving afterwards are only logged.
func (s *Services) closeEvents(ctx context.Context) {
	if s.events.close() {
		s.events.sender.Close(ctx)
	}
}

// Policy is the review policy of cfg: the one value the registry and the
// collector both receive (GCOptions, registryOptions), so the side that
// protects an object and the side that collects it use the same windows.
// The configuration's defaults are review.DefaultPolicy's, and its 0 is a
// real 0 (config.Default fills what is not set).
func Policy(cfg config.Config) (review.Policy, error) {
	p := review.Policy{
		Grace:                    cfg.GC.Grace.Duration(),
		UploadExpiry:             cfg.GC.UploadExpiry.Duration(),
		TagRetention:             cfg.GC.TagRetention.Duration(),
		CollectUntagged:          cfg.GC.CollectUntagged,
		AttachmentsFollowSubject: cfg.GC.AttachmentsFollowSubject,
	}
	if err := p.Validate(); err != nil {
		return review.Policy{}, err
	}
	return p, nil
}

// GCOptions maps the config and its policy (Policy) onto gc.Options.
// Metrics are not registered (Registerer nil); serve sets its own registry.
func GCOptions(cfg config.Config, policy review.Policy, logger *slog.Logger) gc.Options {
	return gc.Options{
		Policy:       policy,
		ReviewDelay:  cfg.GC.ReviewDelay.Duration(),
		Workers:      cfg.GC.Workers,
		BatchSize:    cfg.GC.BatchSize,
		TxBudget:     cfg.GC.TxBudget.Duration(),
		TxHold:       cfg.GC.TxHold.Duration(),
		NoPreempt:    !cfg.GC.PushPreempts,
		Interval:     cfg.GC.Interval.Duration(),
		OverdueAfter: gc.DefaultOptions().OverdueAfter,
		Now:          time.Now,
		Logger:       logger,
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
	s.sender.Send(string(e.Kind), e)
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
