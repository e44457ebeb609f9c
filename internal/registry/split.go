package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
)

// Reading storage usage by reachability, and freeing the time machine's
// bytes at once (docs/design/usage.md).

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

// ErrScopeTooLarge: a split was asked of a scope holding more manifests
// than Options.SplitLimit.
var ErrScopeTooLarge = errors.New("scope too large to classify")

// Split is the bytes a repository or a namespace holds, classified by
// reachability at At (meta.HeldClass): manifests by their size, blobs by
// theirs, each blob once in the scope under the first class of any manifest
// of the scope that references it.
type Split struct {
	Scope string
	At    time.Time
	meta.Split
}

// UsageSplit classifies the bytes scope holds: a namespace ("team") or a
// repository ("team/app"), the way a purge names them. It is one read-only
// snapshot, never a lock, and costs in proportion to the scope:
// ErrScopeTooLarge when it holds more manifests than Options.SplitLimit,
// ErrNameUnknown or ErrNamespaceUnknown when it does not exist.
func (r *Registry) UsageSplit(ctx context.Context, scope string) (Split, error) {
	ns, rest := oci.SplitRepo(scope)
	if rest == "" {
		if err := validNamespace(ns); err != nil {
			return Split{}, err
		}
	} else if err := validName(scope); err != nil {
		return Split{}, err
	}
	limit := r.opts.SplitLimit
	if limit <= 0 {
		limit = MaxSplitManifests
	}
	now := r.now()
	p := meta.SplitPolicy{Now: now, Grace: r.opts.Policy.Grace, Retention: r.opts.Policy.TagRetention,
		KeepUntagged: !r.opts.Policy.CollectUntagged}
	out := Split{Scope: scope, At: now}
	err := r.store.View(meta.WithTxTimeout(ctx, splitTxTimeout), func(tx meta.Tx) error {
		var s meta.SplitScope
		if rest == "" {
			n, err := tx.Namespace(ctx, ns, meta.LockNone)
			if err != nil {
				return namespaceUnknown(ns, err)
			}
			s.NamespaceID = n.ID
		} else {
			rp, err := readRepo(ctx, tx, scope)
			if err != nil {
				return err
			}
			s.RepoID = rp.ID
		}
		n, err := tx.ScopeManifests(ctx, s, limit+1)
		if err != nil {
			return err
		}
		if n > limit {
			hint := "classify its repositories one at a time"
			if rest != "" {
				hint = "the counters (berth usage without --split) still say what it holds"
			}
			return fmt.Errorf("%q holds more than %d manifests, too many to classify in one read; %s: %w",
				scope, limit, hint, ErrScopeTooLarge)
		}
		out.Split, err = tx.UsageSplit(ctx, s, p)
		return err
	})
	if err != nil {
		return Split{}, err
	}
	return out, nil
}
