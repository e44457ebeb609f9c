package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/registry"
)

// NamespaceLister lists one page of namespaces in name order, as
// meta.NamespaceFilter says (the registry's listing of the web interface).
type NamespaceLister interface {
	Namespaces(ctx context.Context, f meta.NamespaceFilter) ([]meta.NamespaceSummary, error)
}

// homePageSize is how many namespaces the home page lists at a time.
const homePageSize = 50

// homeView is the home page's data.
type homeView struct {
	Namespaces []namespaceRow
	// Next is the ?after= of the next page, "" on the last one.
	Next string
	// After is this page's ?after=, "" on the first.
	After string
}

// namespaceRow is one namespace on the home page.
type namespaceRow struct {
	Name         string
	Public       bool
	Repositories int
	Bytes        int64
	// Quota is the limit in force (its own, or the registry default when
	// QuotaDefault); 0: none.
	Quota        int64
	QuotaDefault bool
	Percent      int64
	// Warn: past the quota's warning; Full: at or past its limit.
	Warn, Full bool
}

// home lists the namespaces the visitor may see (GET /?after=): all of
// them with access control off or for a registry administrator; else the
// public ones and, signed in, the user's own and those of their grants.
// One listing query and at most one quota read, whatever the registry's
// size.
func (h *Handler) home(w http.ResponseWriter, r *http.Request) error {
	after := r.URL.Query().Get("after")
	if after != "" && (strings.Contains(after, "/") || oci.ValidateRepoName(after) != nil) {
		return fmt.Errorf("?after=%q is not a namespace name: %w", after, errBadForm)
	}
	view := homeView{After: after}
	if h.opts.Namespaces == nil {
		return h.render(w, r, http.StatusOK, "home", view)
	}
	f, err := h.visibleNamespaces(r)
	if err != nil {
		return err
	}
	f.After, f.Limit = after, homePageSize+1
	page, err := h.opts.Namespaces.Namespaces(r.Context(), f)
	if err != nil {
		return err
	}
	if len(page) > homePageSize {
		page = page[:homePageSize]
		view.Next = page[len(page)-1].Name
	}
	var def *meta.Quota
	defRead := false
	for _, ns := range page {
		row := namespaceRow{Name: ns.Name, Public: ns.Public, Repositories: ns.Repositories, Bytes: ns.Usage.Bytes}
		q := ns.Quota
		if q == nil {
			if !defRead {
				// The registry default, read once, when a namespace
				// has no quota of its own.
				if def, err = h.defaultQuota(r.Context()); err != nil {
					return err
				}
				defRead = true
			}
			q, row.QuotaDefault = def, def != nil
		}
		if q != nil {
			row.Quota = q.Limit
			row.Percent = percent(row.Bytes, q.Limit)
			row.Full = row.Bytes >= q.Limit
			row.Warn = !row.Full && q.WarnPercent != nil && row.Percent >= int64(*q.WarnPercent)
		}
		view.Namespaces = append(view.Namespaces, row)
	}
	return h.render(w, r, http.StatusOK, "home", view)
}

// visibleNamespaces is the filter of the namespaces the visitor may see.
// A signed-in user sees, besides the public ones, the namespace named
// after them (they administer it) and every namespace they hold a grant
// in (on the namespace or on one of its repositories).
func (h *Handler) visibleNamespaces(r *http.Request) (meta.NamespaceFilter, error) {
	v := visitOf(r)
	if h.opts.Auth == nil || v.subject.Admin {
		return meta.NamespaceFilter{}, nil
	}
	f := meta.NamespaceFilter{PublicOnly: true}
	name, ok := v.subject.Actor.Account()
	if !v.signedIn || !ok {
		return f, nil
	}
	f.Names = []string{name}
	grants, err := h.opts.Auth.AccountGrants(r.Context(), name)
	if errors.Is(err, auth.ErrAccountUnknown) {
		return meta.NamespaceFilter{PublicOnly: true}, nil // deleted meanwhile
	}
	if err != nil {
		return f, err
	}
	for _, g := range grants {
		if g.Namespace != f.Names[len(f.Names)-1] {
			f.Names = append(f.Names, g.Namespace)
		}
	}
	return f, nil
}

// defaultQuota is the registry's default quota, nil when there is none.
func (h *Handler) defaultQuota(ctx context.Context) (*meta.Quota, error) {
	q, err := h.reg.Quota(ctx, "")
	if errors.Is(err, registry.ErrQuotaUnknown) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &q.Quota, nil
}
