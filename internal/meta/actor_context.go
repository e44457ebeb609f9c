package meta

import "context"

type actorKey struct{}

// WithActor returns ctx carrying a: the actor the registry and the
// collector record for the changes made under ctx (docs/design/auth.md,
// "Who did it").
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom is the actor ctx carries. Without one it is ActorOperator: the
// HTTP API sets an actor on every request (ActorAnonymous without
// credentials), so a context without one comes from a berth command run
// with direct access to the database.
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok {
		return a
	}
	return ActorOperator
}

type backgroundKey struct{}

// Background marks the transactions run under ctx as background work (the
// collector): on a store with a single writer (SQLite) they wait while a
// foreground write transaction (a push, a delete) waits for the writer, so
// clients never queue behind a collection; a client's transaction waits at
// most for the one background transaction in flight, which the collector
// bounds (gc.Options.TxBudget).
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// IsBackground reports whether ctx was marked by Background.
func IsBackground(ctx context.Context) bool {
	b, _ := ctx.Value(backgroundKey{}).(bool)
	return b
}

type preemptibleKey struct{}

// Preemptible marks a background transaction run under ctx that a
// foreground one may end: on a store whose single writer pushes share
// (sqlstore on SQLite, in one process), a push that arrives while it runs
// interrupts its statement in flight, the transaction rolls back, and
// Update returns ErrPreempted. Its commit is never interrupted: a push
// that arrives during it waits for it. Other stores ignore the mark.
// (docs/design/gc.md, "Preemptible collector transactions".)
func Preemptible(ctx context.Context) context.Context {
	return context.WithValue(ctx, preemptibleKey{}, true)
}

// IsPreemptible reports whether ctx was marked by Preemptible.
func IsPreemptible(ctx context.Context) bool {
	b, _ := ctx.Value(preemptibleKey{}).(bool)
	return b
}
