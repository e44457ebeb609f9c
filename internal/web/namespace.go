package web

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/registry"
)

// namespaceRepoPage is how many repositories the namespace page lists at a
// time.
const namespaceRepoPage = 50

// splitAuto bounds the namespaces whose bytes the namespace page
// classifies by reachability at every visit. A split reads every tag row
// and manifest of its scope (docs/design/usage.md), so it is read at once
// only for a namespace whose repositories all fit on the page, holding at
// most this many manifests and live tags; any other namespace offers it
// on request (?split=1), as the collector page computes bytes reclaimable
// on request. That keeps the page's cost bounded whatever the
// namespace's size (BenchmarkWebPages). A variable for the tests alone
// (export_test.go).
var splitAuto int64 = 2000

// namespaceView is the namespace page's data.
type namespaceView struct {
	Name string
	// Limited: the visitor may not read the namespace, only some of its
	// repositories (grants on repositories alone); the page lists those
	// and nothing of the namespace itself.
	Limited   bool
	Granted   []string
	Public    bool
	Deleting  bool
	Retention registry.Retention
	Usage     meta.Usage
	Quota     *quotaView
	// Split is the classification by reachability, nil when not read;
	// SplitAt when it was read. SplitOffer: the namespace is too large to
	// classify at every visit, a link asks. SplitRefused says why a split
	// asked for was refused (too many manifests).
	Split        []splitRow
	SplitAt      time.Time
	SplitOffer   bool
	SplitRefused string
	Repositories []registry.RepositorySummary
	MaxTags      int
	// After is this page's ?after=, Next the next page's ("" on the
	// last).
	After, Next string
	// Split asked by the query: kept in the pager's links.
	SplitAsked bool
}

// quotaView is the quota in force on a namespace and its use.
type quotaView struct {
	Limit   int64
	Default bool // the registry default: the namespace has none of its own
	// WarnPercent is the warning threshold (0: none), WarnBytes the same
	// in bytes.
	WarnPercent int
	WarnBytes   int64
	Used        int64
	Percent     int64
	Warn, Full  bool
}

// newQuotaView is q's view for a namespace holding used bytes; nil for no
// quota.
func newQuotaView(q *meta.Quota, isDefault bool, used int64) *quotaView {
	if q == nil {
		return nil
	}
	v := &quotaView{Limit: q.Limit, Default: isDefault, Used: used, Percent: percent(used, q.Limit), Full: used >= q.Limit}
	if q.WarnPercent != nil {
		v.WarnPercent, v.WarnBytes = *q.WarnPercent, q.WarnBytes()
		v.Warn = !v.Full && used >= v.WarnBytes
	}
	return v
}

// splitRow is one class of a split: what it means, and what it holds.
type splitRow struct {
	Class string
	Note  string
	meta.Held
}

// splitClasses name the classes of meta.HeldClass, in its order.
var splitClasses = [...]struct{ name, note string }{
	meta.HeldLive:        {"Held by live tags", "what the live tags reach: their manifests, an index's children, their referrers"},
	meta.HeldTimeMachine: {"Only by the time machine", "reached only from ended tags still inside the retention window: restorable, counted until collected"},
	meta.HeldUntagged:    {"Untagged, within grace", "reached from no tag, kept while the untagged grace lasts (or pushed by digest, when untagged manifests are kept)"},
	meta.HeldReclaimable: {"Reclaimable now", "reached from nothing: the collector deletes it at its next run"},
}

func splitRows(s meta.Split) []splitRow {
	out := make([]splitRow, 0, len(s))
	for _, c := range meta.HeldClasses() {
		out = append(out, splitRow{Class: splitClasses[c].name, Note: splitClasses[c].note, Held: s[c]})
	}
	return out
}

// namespace answers GET /-/namespaces/<ns>?after=&split=: the namespace's
// usage (split by reachability when small, or asked: splitAuto), its quota,
// retention window and visibility, and a page of its repositories. A
// visitor who may not read the namespace but holds roles on some of its
// repositories sees links to those only; anyone else 404, as for a
// namespace that does not exist. Cost: the namespace's summary, a page of
// its repositories (registry.Repositories), and the split when shown.
func (h *Handler) namespace(w http.ResponseWriter, r *http.Request) error {
	ns := routeOf(r).Namespace
	q := r.URL.Query()
	after := q.Get("after")
	if after != "" && (!strings.HasPrefix(after, ns+"/") || oci.ValidateRepoName(after) != nil) {
		return fmt.Errorf("?after=%q is not a repository of %s: %w", after, ns, errBadForm)
	}
	view := namespaceView{Name: ns, After: after, SplitAsked: q.Get("split") == "1", MaxTags: registry.MaxCountedTags}
	if err := h.authorize(r, auth.NamespaceNeed(ns, auth.ActionPull)); err != nil {
		if !errors.Is(err, errNotFound) {
			return err
		}
		granted, gerr := h.grantedRepositories(r, ns)
		if gerr != nil {
			return gerr
		}
		if len(granted) == 0 {
			return err
		}
		view.Limited, view.Granted = true, granted
		return h.render(w, r, http.StatusOK, "namespace", view)
	}
	ctx := r.Context()
	page, err := h.reg.Namespaces(ctx, registry.NamespaceQuery{Names: []string{ns}, Limit: 1})
	if err != nil {
		return err
	}
	if len(page.Namespaces) == 0 || page.Namespaces[0].Name != ns {
		return fmt.Errorf("namespace %q: %w", ns, registry.ErrNamespaceUnknown)
	}
	n := page.Namespaces[0]
	view.Public, view.Deleting, view.Retention, view.Usage = n.Public, n.Deleting, n.Retention, n.Usage
	view.Quota = newQuotaView(n.Quota, n.QuotaDefault, n.Usage.Bytes)
	repos, err := h.reg.Repositories(ctx, ns, after, namespaceRepoPage)
	if err != nil {
		return err
	}
	view.Repositories, view.Next = repos.Repositories, repos.Next
	if !view.SplitAsked && !smallNamespace(n, repos, after) {
		view.SplitOffer = true
		return h.render(w, r, http.StatusOK, "namespace", view)
	}
	u, err := h.reg.Usage(ctx, ns, "", true)
	switch {
	case errors.Is(err, registry.ErrScopeTooLarge):
		view.SplitRefused = err.Error()
	case err != nil:
		return err
	case u.Split != nil:
		view.Split, view.SplitAt = splitRows(u.Split.Split), u.Split.At
	}
	return h.render(w, r, http.StatusOK, "namespace", view)
}

// smallNamespace reports whether namespace n is small enough to split at
// every visit (splitAuto): its repositories, all of them on this page,
// hold at most splitAuto manifests and live tags together.
func smallNamespace(n registry.NamespaceSummary, repos registry.RepositoryPage, after string) bool {
	if after != "" || repos.Next != "" || n.Usage.Manifests > splitAuto {
		return false
	}
	var tags int64
	for _, rp := range repos.Repositories {
		if rp.MoreTags {
			return false
		}
		tags += int64(rp.Tags)
	}
	return tags <= splitAuto
}

// grantedRepositories are the repositories of namespace ns the signed-in
// visitor holds a role on, in name order; none for anyone else.
func (h *Handler) grantedRepositories(r *http.Request, ns string) ([]string, error) {
	v := visitOf(r)
	name, ok := v.subject.Actor.Account()
	if h.opts.Auth == nil || !v.signedIn || !ok {
		return nil, nil
	}
	grants, err := h.opts.Auth.AccountGrants(r.Context(), name)
	if errors.Is(err, auth.ErrAccountUnknown) {
		return nil, nil // deleted meanwhile
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range grants {
		if g.Namespace == ns && g.Repository != "" {
			out = append(out, g.Repository)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
