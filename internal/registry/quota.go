package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/berth/berth/internal/bytesize"
	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
)

// QuotaError is a manifest PUT refused because it would take its namespace
// past its quota (docs/design/usage.md, "Quotas"). It wraps ErrDenied, which
// the API answers with OCI DENIED (403) and this message.
type QuotaError struct {
	Namespace string
	// Used is what the namespace held before the PUT, Pushed what the PUT
	// would add, Limit the quota's reject limit: Used + Pushed > Limit.
	Used, Pushed, Limit int64
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("namespace %s is over its quota: %s used + %s pushed > %s limit",
		e.Namespace, bytesize.Format(e.Used), bytesize.Format(e.Pushed), bytesize.Format(e.Limit))
}

func (e *QuotaError) Unwrap() error { return ErrDenied }

// quotaWarning is a warning threshold a committed PUT crossed upwards.
type quotaWarning struct {
	namespace    string
	used, before int64
	quota        *meta.Quota
}

// applyUsage applies the usage counters of the PUT's writes, last in its
// transaction, and enforces the quota of the namespace of repo (the one in
// force, which ApplyUsage reads with the namespace's usage): the
// namespace's counter row, which ApplyUsage changed, is locked until the
// transaction ends, so two PUTs racing for the last bytes serialize on it and
// the second sees the first's bytes. A PUT that adds nothing (a re-PUT, a
// manifest whose blobs the namespace holds and that frees as much) is never
// refused. It returns the warning threshold crossed, if any, to report after
// the commit.
func (r *Registry) applyUsage(ctx context.Context, tx meta.Tx, repo meta.Repository) (*quotaWarning, error) {
	changes, err := tx.ApplyUsage(ctx)
	if err != nil {
		return nil, fmt.Errorf("updating usage: %w", err)
	}
	for _, c := range changes {
		if c.NamespaceID != repo.NamespaceID || c.Added.Bytes <= 0 || c.Within {
			continue
		}
		q := c.Quota
		if q == nil {
			return nil, nil
		}
		ns, _, _ := strings.Cut(repo.Name, "/")
		before := c.After.Bytes - c.Added.Bytes
		if c.After.Bytes > q.Limit {
			return nil, &QuotaError{Namespace: ns, Used: before, Pushed: c.Added.Bytes, Limit: q.Limit}
		}
		if warn := q.WarnBytes(); warn >= 0 && before < warn && c.After.Bytes >= warn {
			return &quotaWarning{namespace: ns, used: c.After.Bytes, before: before, quota: q}, nil
		}
	}
	return nil, nil
}

// warnQuota reports a warning threshold crossed by a committed PUT: a log
// line and the event quota.warning (its Repo the repository pushed to).
func (r *Registry) warnQuota(ctx context.Context, w *quotaWarning, repo string) {
	if w == nil {
		return
	}
	r.log.WarnContext(ctx, "namespace crossed its quota's warning threshold", "namespace", w.namespace, "repo", repo,
		"used", bytesize.Format(w.used), "limit", bytesize.Format(w.quota.Limit), "warn_percent", *w.quota.WarnPercent)
	r.emit(ctx, event.QuotaWarning, repo, "", "", r.now())
}
