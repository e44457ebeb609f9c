package registry

import (
	"context"

	"github.com/berth/berth/internal/meta"
)

// WithActor returns ctx carrying the actor the registry records for the
// changes it makes under ctx: tag lifetimes started and ended, events. The
// API sets it for every request from the credentials it checked; the
// registry never sees the credentials.
func WithActor(ctx context.Context, a meta.Actor) context.Context { return meta.WithActor(ctx, a) }

// ActorFrom is the actor ctx carries, meta.ActorOperator when it carries
// none (a berth command working on the database directly).
func ActorFrom(ctx context.Context) meta.Actor { return meta.ActorFrom(ctx) }
