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

// validNamespace checks that ns is a namespace name: one path component of
// the repository name grammar.
func validNamespace(ns string) error {
	if strings.Contains(ns, "/") {
		return fmt.Errorf("namespace %q contains '/': %w", ns, ErrNameInvalid)
	}
	return validName(ns)
}

// namespaceUnknown maps the store's not-found for namespace ns.
func namespaceUnknown(ns string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("namespace %q does not exist: a namespace appears when something is pushed to it or an operator creates it: %w", ns, ErrNamespaceUnknown)
	}
	return fmt.Errorf("reading namespace %q: %w", ns, err)
}

// NamespaceRetention reads the removed-tag window of namespace ns:
// ErrNamespaceUnknown when it does not exist.
func (r *Registry) NamespaceRetention(ctx context.Context, ns string) (Retention, error) {
	if err := validNamespace(ns); err != nil {
		return Retention{}, err
	}
	var n meta.Namespace
	err := r.store.View(ctx, func(tx meta.Tx) (err error) {
		n, err = tx.Namespace(ctx, ns, meta.LockNone)
		if err != nil {
			return namespaceUnknown(ns, err)
		}
		return nil
	})
	if err != nil {
		return Retention{}, err
	}
	return r.retentionOf(n), nil
}

// CreateNamespace creates namespace ns with the removed-tag window
// retention (nil: the server's default), as an operator does before anything
// is pushed to it. created is false, and nothing changes, when it already
// exists; ErrDenied when it exists and is being purged.
func (r *Registry) CreateNamespace(ctx context.Context, ns string, retention *time.Duration) (ret Retention, created bool, err error) {
	if err := validNamespace(ns); err != nil {
		return Retention{}, false, err
	}
	if retention != nil && *retention < 0 {
		return Retention{}, false, fmt.Errorf("retention %s is negative: %w", retention, ErrInvalidArgument)
	}
	var n meta.Namespace
	err = r.store.Update(ctx, func(tx meta.Tx) (err error) {
		n, created, err = tx.CreateNamespace(ctx, ns, retention)
		if err != nil {
			return fmt.Errorf("creating namespace %q: %w", ns, err)
		}
		if n.State != meta.RepoActive {
			return fmt.Errorf("namespace %q is being purged; create it again once the purge is done: %w (%w)", ns, ErrDenied, meta.ErrRepoDeleting)
		}
		return nil
	})
	if err != nil {
		return Retention{}, false, err
	}
	return r.retentionOf(n), created, nil
}

// SetNamespaceRetention sets the removed-tag window of namespace ns (nil:
// back to the server's default): ErrNamespaceUnknown, creating nothing, when
// it does not exist. Reviews already scheduled under the old window are
// re-checked by the collector against the new one.
func (r *Registry) SetNamespaceRetention(ctx context.Context, ns string, retention *time.Duration) (meta.Namespace, error) {
	if err := validNamespace(ns); err != nil {
		return meta.Namespace{}, err
	}
	if retention != nil && *retention < 0 {
		return meta.Namespace{}, fmt.Errorf("retention %s is negative: %w", retention, ErrInvalidArgument)
	}
	var n meta.Namespace
	err := r.store.Update(ctx, func(tx meta.Tx) (err error) {
		n, err = tx.SetNamespaceRetention(ctx, ns, retention)
		if err != nil {
			return namespaceUnknown(ns, err)
		}
		return nil
	})
	return n, err
}

func (r *Registry) retentionOf(n meta.Namespace) Retention {
	ret := Retention{Namespace: n.Name, Configured: n.TagRetention, Effective: r.opts.Policy.TagRetention}
	if n.TagRetention != nil {
		ret.Effective = *n.TagRetention
	}
	return ret
}

// Now is the registry's clock (UTC), for callers that compute windows
// against the same time the use cases do.
func (r *Registry) Now() time.Time { return r.now() }
