package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/registry"
)

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
	Name   string
	Public bool
	// Deleting: a purge of the namespace is running.
	Deleting     bool
	Repositories int
	Bytes        int64
	// Quota is the limit in force when HasQuota: its own, or the
	// registry default when QuotaDefault.
	HasQuota     bool
	Quota        int64
	QuotaDefault bool
	Percent      int64
	// Warn: past the quota's warning; Full: at or past its limit.
	Warn, Full bool
}

// home lists the namespaces the visitor may see (GET /?after=): all of
// them with access control off or for a registry administrator; else the
// public ones and, signed in, the user's own and those of their grants.
// One registry listing (registry.Namespaces: one snapshot, a bounded
// number of index reads), whatever the registry's size.
func (h *Handler) home(w http.ResponseWriter, r *http.Request) error {
	after := r.URL.Query().Get("after")
	if after != "" && (strings.Contains(after, "/") || oci.ValidateRepoName(after) != nil) {
		return fmt.Errorf("?after=%q is not a namespace name: %w", after, errBadForm)
	}
	q, err := h.visibleNamespaces(r)
	if err != nil {
		return err
	}
	q.After, q.Limit = after, homePageSize
	page, err := h.reg.Namespaces(r.Context(), q)
	if err != nil {
		return err
	}
	view := homeView{After: after, Next: page.Next}
	for _, ns := range page.Namespaces {
		row := namespaceRow{Name: ns.Name, Public: ns.Public, Deleting: ns.Deleting, Repositories: ns.Repositories, Bytes: ns.Usage.Bytes,
			QuotaDefault: ns.QuotaDefault}
		if q := ns.Quota; q != nil {
			row.HasQuota = true
			row.Quota = q.Limit
			row.Percent = percent(row.Bytes, q.Limit)
			row.Full = row.Bytes >= q.Limit
			row.Warn = !row.Full && q.WarnPercent != nil && row.Percent >= int64(*q.WarnPercent)
		}
		view.Namespaces = append(view.Namespaces, row)
	}
	return h.render(w, r, http.StatusOK, "home", view)
}

// visibleNamespaces is the query of the namespaces the visitor may see.
// A signed-in user sees, besides the public ones, the namespace named
// after them (they administer it) and every namespace they hold a grant
// in (on the namespace or on one of its repositories).
func (h *Handler) visibleNamespaces(r *http.Request) (registry.NamespaceQuery, error) {
	v := visitOf(r)
	if h.opts.Auth == nil || v.subject.Admin {
		return registry.NamespaceQuery{}, nil
	}
	f := registry.NamespaceQuery{PublicOnly: true}
	name, ok := v.subject.Actor.Account()
	if !v.signedIn || !ok {
		return f, nil
	}
	f.Names = []string{name}
	grants, err := h.opts.Auth.AccountGrants(r.Context(), name)
	if errors.Is(err, auth.ErrAccountUnknown) {
		return registry.NamespaceQuery{PublicOnly: true}, nil // deleted meanwhile
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
