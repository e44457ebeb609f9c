package gc

import (
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// Event is one committed change made by the collector (DESIGN.md §4: the
// image/repository cleanup callbacks), named by one of the collector's
// names of internal/event.
type Event struct {
	Kind       event.Name    `json:"kind"`
	Repository string        `json:"repository,omitempty"`
	Tag        string        `json:"tag,omitempty"`
	Digest     digest.Digest `json:"digest,omitempty"`
	Size       int64         `json:"size,omitempty"`
	Reason     string        `json:"reason,omitempty"`
	At         time.Time     `json:"at"`
	// Actor made the change: meta.ActorCollector for the collector's own
	// decisions, the purge's actor for a purge, the request's for a
	// registry event.
	Actor meta.Actor `json:"actor,omitempty"`
}

func eventKind(kind review.Kind) event.Name {
	switch kind {
	case review.KindTag:
		return event.TagCollected
	case review.KindManifest:
		return event.ManifestDeleted
	case review.KindBlob:
		return event.BlobDeleted
	case review.KindRepository:
		return event.RepositoryPurged
	}
	return event.GCDeleted
}

// dispatcher calls the in-process hooks after each commit. Hooks must not
// block: the webhook package queues events for delivery (internal/app
// wires it as a hook).
type dispatcher struct {
	hooks []func(Event)
}

func newDispatcher(hooks []func(Event)) *dispatcher { return &dispatcher{hooks: hooks} }

func (d *dispatcher) emit(e Event) {
	for _, h := range d.hooks {
		h(e)
	}
}
