package web

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/registry"
)

// The policies page (GET /-/policies?scope=): the retention rules of a
// scope, which of them apply (docs/design/policies.md, "Policies"), and a
// preview of what a rule would prune now. Reading mirrors the management
// API (internal/api/mgmt_policies.go): read on a namespace or repository
// scope, registry administrator for the registry's. The page changes
// nothing: rules are set with berth policy set.

// maxPreviewRows bounds the pruned tags the page lists; the preview
// counts them all, and berth policy preview lists them all.
const maxPreviewRows = 500

// policiesView is the policies page's data.
type policiesView struct {
	// Scope is the scope as the query names it: "" (the registry), a
	// namespace or a repository.
	Scope      string
	Namespace  string
	Repository string
	// Hidden: the registry scope asked by a visitor who does not
	// administer the registry; the page shows only the scope form.
	Hidden bool
	Groups []policyGroup
	// Command is the berth policy set example for this scope.
	Command string
	Form    previewForm
	Kinds   []kindOption
	// Preview is the preview asked for, nil if none; PreviewError says
	// why it could not be made.
	Preview      *previewView
	PreviewError string
	// MaxTags and MaxRepos are the preview's bounds, in words.
	MaxTags  string
	MaxRepos string
}

// policyGroup is the rules of one scope as the page lists them, and
// whether they apply to the scope shown.
type policyGroup struct {
	Title string
	// Applies says, in words, to what the group's rules apply here.
	Applies string
	// ShowScope: the rules are of several scopes; each row names its own.
	ShowScope bool
	Rules     []policyRow
	// Empty is said when there are no rules.
	Empty string
}

// policyRow is one rule.
type policyRow struct {
	Name string
	Ref  string
	// Scope names the rule's scope in words; ScopeHref is its page.
	Scope     string
	ScopeHref string
	Kind      meta.PolicyKind
	// Parameter is "10 tags", "30d" or "".
	Parameter      string
	Pattern        string
	PatternMatches bool
	Immutable      bool
	CreatedBy      meta.Actor
	CreatedAt      time.Time
	// PreviewHref previews the saved rule; "" when the visitor may not
	// preview its scope.
	PreviewHref string
}

// previewForm holds the preview form's fields as the query gave them.
type previewForm struct {
	Name        string
	Kind        meta.PolicyKind
	Count       string
	Span        string
	Pattern     string
	NotMatching bool
}

type kindOption struct {
	Kind  meta.PolicyKind
	Label string
}

// kindLabels say what each kind of rule does, for the form.
var kindLabels = map[meta.PolicyKind]string{
	meta.PolicyKeepNewest:         "keep the N newest tags",
	meta.PolicyPruneOlderThan:     "prune tags older than an age",
	meta.PolicyPruneNotPulled:     "prune tags not pulled for an age",
	meta.PolicyKeepRecentlyPulled: "keep the N most recently pulled tags",
	meta.PolicyImmutable:          "protect the tags it covers, prune nothing",
}

// previewView is a preview's result.
type previewView struct {
	Ref          string
	Unsaved      bool
	Tags         []previewTag
	More         int // pruned tags not listed (past maxPreviewRows)
	Pruned       int
	Repositories int
	TagsExamined int
	Truncated    bool
	Manifests    int
	Bytes        int64
}

type previewTag struct {
	Repository string
	Tag        string
	Digest     string
	Start      time.Time
	// Pulled: PulledAt is the last recorded pull (else never pulled).
	Pulled   bool
	PulledAt time.Time
	Rule     string
	ThisRule bool
}

// policies serves GET /-/policies?scope=[&preview=…].
func (h *Handler) policies(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	ns, repo, err := parseScope(q.Get("scope"))
	if err != nil {
		return err
	}
	view := policiesView{Scope: scopeParam(ns, repo), Namespace: ns, Repository: repo,
		MaxTags: thousands(registry.MaxPreviewTags), MaxRepos: thousands(registry.MaxPreviewRepositories)}
	preview := q.Get("preview")
	if err := h.authorize(r, scopeNeed(ns, repo)); err != nil {
		if ns != "" || preview != "" || !errors.Is(err, errForbidden) {
			return err
		}
		// The registry's rules are an administrator's; the menu's link
		// lands here, so others get the scope form, not an error.
		view.Hidden = true
		return h.render(w, r, http.StatusOK, "policies", view)
	}
	ps, err := h.reg.Policies(r.Context(), meta.PolicyFilter{Namespace: ns, Repository: repo, Registry: ns != ""})
	if err != nil {
		return err
	}
	mayPreview := h.previewScopes(r, ns, repo)
	view.Groups = groupPolicies(ns, repo, ps, mayPreview)
	view.Command = policyCommand(ns, repo)
	for _, k := range meta.PolicyKinds() {
		if k == meta.PolicyImmutable && ns == "" {
			continue // not at the registry's scope
		}
		view.Kinds = append(view.Kinds, kindOption{Kind: k, Label: kindLabels[k]})
	}
	view.Form = previewForm{Name: q.Get("name"), Kind: meta.PolicyKind(q.Get("kind")), Count: q.Get("count"),
		Span: q.Get("span"), Pattern: q.Get("pattern"), NotMatching: q.Get("match") == "not"}
	if view.Form.Kind == "" {
		// A fresh form previews the example of the page as it stands.
		view.Form.Kind, view.Form.Count = meta.PolicyKeepNewest, "10"
	}
	status := http.StatusOK
	if preview != "" {
		status, err = h.preview(r, &view, preview)
		if err != nil {
			return err
		}
	}
	return h.render(w, r, status, "policies", view)
}

// preview runs the preview the query asks for into view: the rule of the
// form (a kind given), or the saved rule named by preview. A rule that
// cannot be previewed is said on the page, with the status of its error.
func (h *Handler) preview(r *http.Request, view *policiesView, preview string) (int, error) {
	q := r.URL.Query()
	p := meta.TagPolicy{Namespace: view.Namespace, Repository: view.Repository}
	var err error
	if q.Get("kind") != "" {
		p.Name = view.Form.Name
		err = view.Form.apply(&p)
	} else {
		p.Name = preview
	}
	var pv registry.Preview
	if err == nil {
		pv, err = h.reg.PreviewPolicy(r.Context(), p)
	}
	switch {
	case err == nil:
	case errors.Is(err, registry.ErrInvalidArgument):
		view.PreviewError = err.Error()
		return http.StatusBadRequest, nil
	case errors.Is(err, registry.ErrPolicyUnknown):
		view.PreviewError = fmt.Sprintf("%s has no saved rule named %q.", scopeWords(view.Namespace, view.Repository), p.Name)
		return http.StatusNotFound, nil
	default:
		return 0, err
	}
	out := &previewView{Ref: pv.Policy.Ref(), Unsaved: q.Get("kind") != "" && p.Name == "", Pruned: len(pv.Tags),
		Repositories: pv.Repositories, TagsExamined: pv.TagsExamined, Truncated: pv.Truncated, Manifests: pv.Manifests, Bytes: pv.Bytes}
	for i, t := range pv.Tags {
		if i == maxPreviewRows {
			out.More = len(pv.Tags) - i
			break
		}
		pt := previewTag{Repository: t.Repository, Tag: t.Name, Digest: t.Manifest.String(), Start: t.Start, Rule: t.Rule, ThisRule: t.ThisRule}
		if t.PulledAt != nil {
			pt.Pulled, pt.PulledAt = true, *t.PulledAt
		}
		out.Tags = append(out.Tags, pt)
	}
	view.Preview = out
	return http.StatusOK, nil
}

// apply fills p's rule from the form, as the management API's PolicyRule
// does: a count rule needs its count, an age rule its span; the field
// the kind does not take is ignored (the form shows both).
func (f previewForm) apply(p *meta.TagPolicy) error {
	p.Kind, p.TagPattern, p.PatternMatches = f.Kind, f.Pattern, !f.NotMatching
	switch f.Kind {
	case meta.PolicyKeepNewest, meta.PolicyKeepRecentlyPulled:
		n, err := strconv.Atoi(strings.TrimSpace(f.Count))
		if err != nil {
			return fmt.Errorf("%s needs the number of tags it keeps (a whole number, 0 or more): %w", f.Kind, registry.ErrInvalidArgument)
		}
		p.Count = n
	case meta.PolicyPruneOlderThan, meta.PolicyPruneNotPulled:
		d, err := duration.Parse(strings.TrimSpace(f.Span))
		if err != nil {
			return fmt.Errorf("%s needs an age such as 30d or 12h: %v: %w", f.Kind, err, registry.ErrInvalidArgument)
		}
		p.Span = d
	}
	return nil
}

// parseScope reads ?scope=: "" or "*" is the registry, a name without a
// slash a namespace, else a repository of the namespace its first
// component names.
func parseScope(s string) (ns, repo string, err error) {
	switch {
	case s == "" || s == meta.RegistryScope:
		return "", "", nil
	case oci.ValidateRepoName(s) != nil:
		return "", "", fmt.Errorf("scope %q is neither a namespace nor a repository name: %w", s, errBadForm)
	case !strings.Contains(s, "/"):
		return s, "", nil
	}
	ns, _ = oci.SplitRepo(s)
	return ns, s, nil
}

// scopeParam is the ?scope= of a scope.
func scopeParam(ns, repo string) string {
	if repo != "" {
		return repo
	}
	return ns
}

// scopeNeed is what reading a scope's rules (and previewing one) needs,
// as the management API asks it (policyNeeds): read on the repository or
// namespace; for the registry's, a registry administrator.
func scopeNeed(ns, repo string) auth.Need {
	switch {
	case repo != "":
		return auth.Pull(repo)
	case ns != "":
		return auth.NamespaceNeed(ns, auth.ActionPull)
	}
	return auth.RegistryNeed(auth.RegistryAdmin)
}

// previewScopes reports, for the scopes whose rules the page lists,
// whether the visitor may preview there: the page's own scope (already
// authorized), and, asked once each, its namespace and the registry.
func (h *Handler) previewScopes(r *http.Request, ns, repo string) func(p meta.TagPolicy) bool {
	may := map[string]bool{scopeParam(ns, repo): true}
	return func(p meta.TagPolicy) bool {
		s := scopeParam(p.Namespace, p.Repository)
		ok, asked := may[s]
		if !asked {
			ok = h.may(r, scopeNeed(p.Namespace, p.Repository))
			may[s] = ok
		}
		return ok
	}
}

// groupPolicies sorts the rules of the listing into the page's groups,
// saying which apply: a repository follows its own rules and its
// namespace's; the registry's only when neither has any (PoliciesFor).
func groupPolicies(ns, repo string, ps []meta.TagPolicy, mayPreview func(meta.TagPolicy) bool) []policyGroup {
	var reg, own, repos, others []policyRow
	nsHasRules := false
	reposWithRules := map[string]bool{}
	for _, p := range ps {
		row := policyRowOf(p, mayPreview(p))
		switch {
		case p.Namespace == "":
			reg = append(reg, row)
		case repo != "" && p.Repository == repo, repo == "" && ns != "" && p.Namespace == ns && p.Repository == "":
			own = append(own, row)
		case ns == "":
			others = append(others, row)
		case p.Repository == "":
			nsHasRules = true
			others = append(others, row)
		default:
			reposWithRules[p.Repository] = true
			repos = append(repos, row)
		}
	}
	registryGroup := policyGroup{Title: "Registry default", Rules: reg, Empty: "The registry has no default rules."}
	switch {
	case repo != "":
		registryGroup.Applies = "Not applied to " + repo + ": it or its namespace has rules of its own."
		if len(own) == 0 && !nsHasRules {
			registryGroup.Applies = "Applied to " + repo + ": neither it nor " + ns + " has rules of its own."
		}
		return []policyGroup{
			{Title: "Rules of repository " + repo, Rules: own, Applies: "Applied to " + repo + ".", Empty: repo + " has no rules of its own."},
			{Title: "Rules of namespace " + ns, Rules: others, Applies: "Applied to every repository of " + ns + ", " + repo + " included.",
				Empty: ns + " has no rules of its own."},
			registryGroup,
		}
	case ns != "":
		switch {
		case len(own) > 0:
			registryGroup.Applies = "Not applied in " + ns + ": it has rules of its own."
		case len(reposWithRules) > 0:
			registryGroup.Applies = "Applied to the repositories of " + ns + " that have no rules of their own (not to " +
				strings.Join(slices.Sorted(maps.Keys(reposWithRules)), ", ") + ")."
		default:
			registryGroup.Applies = "Applied to every repository of " + ns + ": neither it nor its repositories have rules of their own."
		}
		return []policyGroup{
			{Title: "Rules of namespace " + ns, Rules: own, Applies: "Applied to every repository of " + ns + ".", Empty: ns + " has no rules of its own."},
			{Title: "Rules of its repositories", Rules: repos, ShowScope: true, Applies: "Each applied to its repository, with the namespace's.",
				Empty: "No repository of " + ns + " has rules of its own."},
			registryGroup,
		}
	}
	registryGroup.Applies = "Applied to every repository that has no rules of its own and whose namespace has none."
	return []policyGroup{
		registryGroup,
		{Title: "Rules of namespaces and repositories", Rules: others, ShowScope: true,
			Applies: "Each applied in its scope; where a scope has rules, the registry default is not applied.",
			Empty:   "No namespace or repository has rules of its own."},
	}
}

func policyRowOf(p meta.TagPolicy, mayPreview bool) policyRow {
	row := policyRow{Name: p.Name, Ref: p.Ref(), Scope: scopeWords(p.Namespace, p.Repository), Kind: p.Kind,
		Pattern: p.TagPattern, PatternMatches: p.PatternMatches, Immutable: p.Kind == meta.PolicyImmutable,
		CreatedBy: p.CreatedBy, CreatedAt: p.CreatedAt}
	switch p.Kind {
	case meta.PolicyKeepNewest, meta.PolicyKeepRecentlyPulled:
		row.Parameter = strconv.Itoa(p.Count) + " tags"
		if p.Count == 1 {
			row.Parameter = "1 tag"
		}
	case meta.PolicyPruneOlderThan, meta.PolicyPruneNotPulled:
		row.Parameter = duration.Format(p.Span)
	}
	scope := scopeParam(p.Namespace, p.Repository)
	row.ScopeHref = policiesPath(scope, nil)
	if mayPreview {
		row.PreviewHref = policiesPath(scope, url.Values{"preview": {p.Name}}) + "#preview"
	}
	return row
}

// policiesPath is the policies page of a scope with the query q.
func policiesPath(scope string, q url.Values) string {
	v := url.Values{}
	for k, vs := range q {
		v[k] = vs
	}
	if scope != "" {
		v.Set("scope", scope)
	}
	if len(v) == 0 {
		return "/-/policies"
	}
	return "/-/policies?" + v.Encode()
}

// scopeWords names a scope in a sentence.
func scopeWords(ns, repo string) string {
	switch {
	case repo != "":
		return "repository " + repo
	case ns != "":
		return "namespace " + ns
	}
	return "the registry"
}

// policyCommand is an example of berth policy set for the scope.
func policyCommand(ns, repo string) string {
	switch {
	case repo != "":
		return "berth policy set keep-10 --repository " + repo + " --keep-newest 10"
	case ns != "":
		return "berth policy set keep-10 --namespace " + ns + " --keep-newest 10"
	}
	return "berth policy set keep-10 --keep-newest 10"
}

// thousands writes n with a comma every three digits: 100,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
