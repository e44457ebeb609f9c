package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth/berth/internal/meta"
)

// Reading storage usage and managing quotas (docs/design/usage.md): the
// counters are read in one snapshot, never scanned; the quota a namespace's
// pushes are checked against is its own, else the registry default.

// Usage is what a scope holds by the usage counters: the registry (Scope
// ""), a namespace or a repository (Scope its name).
type Usage struct {
	Scope string
	meta.Usage
	// Quota is the quota in force on a namespace: its own, or the registry
	// default (QuotaDefault). nil for none, and for the registry and a
	// repository, which have no quota of their own.
	Quota        *meta.Quota
	QuotaDefault bool
	// Split classifies the bytes by reachability, when asked (not for the
	// registry: a split costs in proportion to its scope).
	Split *Split
}

// Usage reads what a scope holds: the repository repo when it is not "",
// else the namespace ns when it is not "", else the registry; for a
// namespace, with the quota in force. With split it also classifies the
// bytes by reachability (docs/design/usage.md, "Splitting by
// reachability"), in the same snapshot. ErrNamespaceUnknown or
// ErrNameUnknown when the scope does not exist; ErrScopeTooLarge when a
// split is asked of a scope holding more manifests than
// Options.SplitLimit; ErrInvalidArgument for a split of the registry.
func (r *Registry) Usage(ctx context.Context, ns, repo string, split bool) (Usage, error) {
	out := Usage{Scope: repo}
	switch {
	case repo != "":
		if err := validName(repo); err != nil {
			return Usage{}, err
		}
	case ns != "":
		if err := validNamespace(ns); err != nil {
			return Usage{}, err
		}
		out.Scope = ns
	case split:
		return Usage{}, fmt.Errorf("a split classifies a namespace or a repository, never the whole registry: %w", ErrInvalidArgument)
	}
	vctx := ctx
	if split {
		vctx = meta.WithTxTimeout(ctx, splitTxTimeout)
	}
	err := r.store.View(vctx, func(tx meta.Tx) error {
		out = Usage{Scope: out.Scope}
		var s meta.SplitScope
		var err error
		switch {
		case repo != "":
			rp, err := readRepo(ctx, tx, repo)
			if err != nil {
				return err
			}
			if out.Usage, err = tx.RepositoryUsage(ctx, rp.ID); err != nil {
				return err
			}
			s.RepoID = rp.ID
		case ns != "":
			n, err := tx.Namespace(ctx, ns, meta.LockNone)
			if err != nil {
				return namespaceUnknown(ns, err)
			}
			if out.Usage, err = tx.NamespaceUsage(ctx, n.ID); err != nil {
				return err
			}
			if out.Quota, out.QuotaDefault, err = effectiveQuota(ctx, tx, ns); err != nil {
				return err
			}
			s.NamespaceID = n.ID
		default:
			out.Usage, err = tx.RegistryUsage(ctx)
			return err
		}
		if split {
			out.Split, err = r.split(ctx, tx, out.Scope, s)
		}
		return err
	})
	if err != nil {
		return Usage{}, err
	}
	return out, nil
}

// effectiveQuota is the quota in force on namespace ns, and whether it is
// the registry default; nil when none is.
func effectiveQuota(ctx context.Context, tx meta.Tx, ns string) (*meta.Quota, bool, error) {
	q, err := tx.EffectiveQuota(ctx, ns)
	if isNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading the quota of namespace %q: %w", ns, err)
	}
	return &q, q.Namespace == "", nil
}

// Overview is the registry's usage and its largest namespaces.
type Overview struct {
	Registry meta.Usage
	// Top are the largest namespaces, largest first, each with the quota
	// in force on it.
	Top []Usage
	// Others is what the namespaces past Top hold together (a blob two of
	// them hold counts twice, as it does in each namespace's usage).
	Others meta.Usage
}

// UsageOverview reads the registry's usage and its top largest namespaces
// (namespaces holding nothing are left out) in one snapshot: a handful of
// indexed reads, whatever the registry's size.
func (r *Registry) UsageOverview(ctx context.Context, top int) (Overview, error) {
	var out Overview
	err := r.store.View(ctx, func(tx meta.Tx) error {
		out = Overview{}
		var err error
		if out.Registry, err = tx.RegistryUsage(ctx); err != nil {
			return err
		}
		ns, err := tx.TopNamespaces(ctx, top)
		if err != nil {
			return err
		}
		all, err := tx.NamespacesUsageSum(ctx)
		if err != nil {
			return err
		}
		quotas, err := tx.Quotas(ctx)
		if err != nil {
			return err
		}
		byName := map[string]meta.Quota{}
		for _, q := range quotas {
			byName[q.Namespace] = q
		}
		out.Others = all
		for _, n := range ns {
			u := Usage{Scope: n.Name, Usage: n.Usage}
			if q, ok := byName[n.Name]; ok {
				u.Quota = &q
			} else if q, ok := byName[""]; ok {
				u.Quota, u.QuotaDefault = &q, true
			}
			out.Top = append(out.Top, u)
			out.Others.Bytes -= n.Bytes
			out.Others.Manifests -= n.Manifests
			out.Others.Blobs -= n.Blobs
		}
		return nil
	})
	if err != nil {
		return Overview{}, err
	}
	return out, nil
}

// QuotaStatus is a quota and what its namespace holds against it.
type QuotaStatus struct {
	meta.Quota
	// Default: the quota is the registry default, in force on a namespace
	// that has none of its own (or, read for namespace "", the default
	// itself).
	Default bool
	// Used is what the namespace holds (0 for the registry default, and for
	// a namespace not yet pushed to).
	Used int64
}

// quotaNamespace checks the namespace of a quota: "" (the registry
// default) or a namespace name, which need not exist yet.
func quotaNamespace(ns string) error {
	if ns == "" {
		return nil
	}
	return validNamespace(ns)
}

// SetQuota gives namespace ns (the registry default when ns is "") a quota
// of limit bytes, with a warning at warnPercent of it when that is not nil
// (1–100), replacing any it had: pushes that would take the namespace past
// limit are refused from the next one on, the bytes it already holds stay.
// The namespace need not exist yet. ErrInvalidArgument for a negative limit
// or a percentage out of range.
func (r *Registry) SetQuota(ctx context.Context, ns string, limit int64, warnPercent *int) (QuotaStatus, error) {
	if err := quotaNamespace(ns); err != nil {
		return QuotaStatus{}, err
	}
	if limit < 0 {
		return QuotaStatus{}, fmt.Errorf("quota limit %d is negative: %w", limit, ErrInvalidArgument)
	}
	if warnPercent != nil && (*warnPercent < 1 || *warnPercent > 100) {
		return QuotaStatus{}, fmt.Errorf("quota warning at %d%%: want 1 to 100: %w", *warnPercent, ErrInvalidArgument)
	}
	q := meta.Quota{Namespace: ns, Limit: limit, WarnPercent: warnPercent, CreatedAt: r.now(), CreatedBy: ActorFrom(ctx)}
	err := r.store.Update(ctx, func(tx meta.Tx) error { return tx.PutQuota(ctx, q) })
	if err != nil {
		return QuotaStatus{}, err
	}
	return r.Quota(ctx, ns)
}

// DeleteQuota deletes the quota of namespace ns (the registry default when
// ns is ""): ErrQuotaUnknown when it has none of its own.
func (r *Registry) DeleteQuota(ctx context.Context, ns string) error {
	if err := quotaNamespace(ns); err != nil {
		return err
	}
	err := r.store.Update(ctx, func(tx meta.Tx) error { return tx.DeleteQuota(ctx, ns) })
	if isNotFound(err) {
		return fmt.Errorf("%s has no quota to delete: %w", quotaName(ns), ErrQuotaUnknown)
	}
	return err
}

func quotaName(ns string) string {
	if ns == "" {
		return "the registry"
	}
	return "namespace " + ns
}

// Quota reads the quota in force on namespace ns (its own, else the
// registry default) with what the namespace holds; for ns "" the registry
// default. ErrQuotaUnknown when none is in force.
func (r *Registry) Quota(ctx context.Context, ns string) (QuotaStatus, error) {
	if err := quotaNamespace(ns); err != nil {
		return QuotaStatus{}, err
	}
	var out QuotaStatus
	err := r.store.View(ctx, func(tx meta.Tx) error {
		q, def, err := effectiveQuota(ctx, tx, ns)
		if err != nil {
			return err
		}
		if q == nil {
			return fmt.Errorf("no quota applies to %s, and the registry has no default: %w", quotaName(ns), ErrQuotaUnknown)
		}
		out = QuotaStatus{Quota: *q, Default: def}
		out.Used, err = namespaceBytes(ctx, tx, ns)
		return err
	})
	return out, err
}

// Quotas lists every quota (the registry default first) with what each
// namespace holds.
func (r *Registry) Quotas(ctx context.Context) ([]QuotaStatus, error) {
	var out []QuotaStatus
	err := r.store.View(ctx, func(tx meta.Tx) error {
		out = nil
		qs, err := tx.Quotas(ctx)
		if err != nil {
			return err
		}
		for _, q := range qs {
			st := QuotaStatus{Quota: q, Default: q.Namespace == ""}
			if st.Used, err = namespaceBytes(ctx, tx, q.Namespace); err != nil {
				return err
			}
			out = append(out, st)
		}
		return nil
	})
	return out, err
}

// namespaceBytes is what namespace ns holds: 0 when it does not exist (yet),
// and for "" (the registry default).
func namespaceBytes(ctx context.Context, tx meta.Tx, ns string) (int64, error) {
	if ns == "" {
		return 0, nil
	}
	n, err := tx.Namespace(ctx, ns, meta.LockNone)
	if errors.Is(err, meta.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading namespace %q: %w", ns, err)
	}
	u, err := tx.NamespaceUsage(ctx, n.ID)
	return u.Bytes, err
}
