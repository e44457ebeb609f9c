package registry

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/berth/berth/internal/meta"
)

// Retention is a namespace's removed-tag window as the management API and
// CLI show it.
type Retention struct {
	Namespace string
	// Configured is the namespace's own window; nil means the server's
	// default.
	Configured *time.Duration
	// Effective is the window in force: Configured, else the default.
	Effective time.Duration
}

// NamespaceRetention reads the removed-tag window of namespace ns:
// ErrNameUnknown when no repository ever created it.
func (r *Registry) NamespaceRetention(ctx context.Context, ns string) (Retention, error) {
	if strings.Contains(ns, "/") {
		return Retention{}, fmt.Errorf("namespace %q contains '/': %w", ns, ErrNameInvalid)
	}
	if err := validName(ns); err != nil {
		return Retention{}, err
	}
	var n meta.Namespace
	err := r.store.View(ctx, func(tx meta.Tx) (err error) {
		n, err = tx.Namespace(ctx, ns, meta.LockNone)
		if isNotFound(err) {
			return fmt.Errorf("namespace %q: %w", ns, ErrNameUnknown)
		}
		if err != nil {
			return fmt.Errorf("reading namespace %q: %w", ns, err)
		}
		return nil
	})
	if err != nil {
		return Retention{}, err
	}
	return r.retentionOf(n), nil
}

func (r *Registry) retentionOf(n meta.Namespace) Retention {
	ret := Retention{Namespace: n.Name, Configured: n.TagRetention, Effective: r.opts.TagRetention}
	if n.TagRetention != nil {
		ret.Effective = *n.TagRetention
	}
	return ret
}

// Now is the registry's clock (UTC), for callers that compute windows
// against the same time the use cases do.
func (r *Registry) Now() time.Time { return r.now() }
