package gc

import (
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
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
	// Actor made the change: meta.ActorCollector for the collector's own
	// decisions, the purge's actor for a purge, the request's for a
	// registry event.
	Actor meta.Actor `json:"actor,omitempty"`
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
