package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/berth/berth/internal/meta"
)

// The split of what a scope holds by reachability (docs/design/usage.md,
// "Splitting by reachability").

// MaxSplitManifests is the default bound on the manifests a split
// classifies (Options.SplitLimit): a scope that holds more is refused
// (ErrScopeTooLarge) rather than read for longer than splitTxTimeout. One
// repository at a time splits what a large namespace cannot. A split of
// 42,000 manifests (120,000 blob edges) took 1.3 s of CPU on SQLite and
// 1.8 s on PostgreSQL on a 2-core machine (BenchmarkUsageSplit).
const MaxSplitManifests = 50_000

// splitTxTimeout bounds the split's one read-only transaction instead of
// the store's bound (10s): it takes no lock, and on a loaded machine a
// split of MaxSplitManifests takes longer than a write transaction may.
const splitTxTimeout = time.Minute

// Split is the bytes a repository or a namespace holds, classified by
// reachability at At (meta.HeldClass): manifests by their size, blobs by
// theirs, each blob once in the scope under the first class of any manifest
// of the scope that references it.
type Split struct {
	Scope string
	At    time.Time
	meta.Split
}

// split classifies what the scope s, named scope, holds, in tx: the
// registry's Usage with split. ErrScopeTooLarge when it holds more
// manifests than Options.SplitLimit.
func (r *Registry) split(ctx context.Context, tx meta.Tx, scope string, s meta.SplitScope) (*Split, error) {
	limit := r.opts.SplitLimit
	if limit <= 0 {
		limit = MaxSplitManifests
	}
	n, err := tx.ScopeManifests(ctx, s, limit+1)
	if err != nil {
		return nil, err
	}
	if n > limit {
		hint := "classify its repositories one at a time"
		if s.RepoID != 0 {
			hint = "the counters (without a split) still say what it holds"
		}
		return nil, fmt.Errorf("%q holds more than %d manifests, too many to classify in one read; %s: %w",
			scope, limit, hint, ErrScopeTooLarge)
	}
	now := r.now()
	out := &Split{Scope: scope, At: now}
	out.Split, err = tx.UsageSplit(ctx, s, meta.SplitPolicy{Now: now, Grace: r.opts.Policy.Grace,
		Retention: r.opts.Policy.TagRetention, KeepUntagged: !r.opts.Policy.CollectUntagged})
	if err != nil {
		return nil, err
	}
	return out, nil
}
