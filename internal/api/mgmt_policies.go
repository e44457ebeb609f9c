package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/registry"
)

// Retention policies under /berth/v1 (the list in mgmt.go's comment;
// docs/design/policies.md). A policy's scope is in its path; the list and
// the preview take it in the query, where none is the registry.

// Policy is a retention policy as the management API and the CLI show it.
type Policy struct {
	// Ref names it in causes, events and logs: "acme:keep-10".
	Ref string `json:"ref"`
	// Scope is "registry", "namespace" or "repository".
	Scope      string          `json:"scope"`
	Namespace  string          `json:"namespace,omitempty"`
	Repository string          `json:"repository,omitempty"`
	Name       string          `json:"name"`
	Kind       meta.PolicyKind `json:"kind"`
	// Count is the N of keep_newest and keep_recently_pulled; Span the
	// span of prune_older_than and prune_not_pulled ("30d").
	Count *int   `json:"count,omitempty"`
	Span  string `json:"span,omitempty"`
	// TagPattern narrows the rule to the tags matching it (or, with
	// PatternMatches false, not matching it).
	TagPattern     string     `json:"tag_pattern,omitempty"`
	PatternMatches bool       `json:"pattern_matches"`
	CreatedAt      time.Time  `json:"created_at"`
	CreatedBy      meta.Actor `json:"created_by,omitempty"`
}

// NewPolicy is the document of a policy.
func NewPolicy(p meta.TagPolicy) Policy {
	out := Policy{Ref: p.Ref(), Scope: policyScope(p), Namespace: p.Namespace, Repository: p.Repository, Name: p.Name, Kind: p.Kind,
		TagPattern: p.TagPattern, PatternMatches: p.PatternMatches, CreatedAt: p.CreatedAt.UTC(), CreatedBy: p.CreatedBy}
	switch p.Kind {
	case meta.PolicyKeepNewest, meta.PolicyKeepRecentlyPulled:
		n := p.Count
		out.Count = &n
	case meta.PolicyPruneOlderThan, meta.PolicyPruneNotPulled:
		out.Span = duration.Format(p.Span)
	}
	return out
}

func policyScope(p meta.TagPolicy) string {
	switch {
	case p.Repository != "":
		return "repository"
	case p.Namespace != "":
		return "namespace"
	}
	return "registry"
}

// Policies is a list of policies.
type Policies struct {
	Policies []Policy `json:"policies"`
}

// NewPolicies is the document of a list of policies.
func NewPolicies(ps []meta.TagPolicy) Policies {
	out := Policies{Policies: []Policy{}}
	for _, p := range ps {
		out.Policies = append(out.Policies, NewPolicy(p))
	}
	return out
}

// PolicySaved is the answer to a PUT: the policy, whether it was created
// (201) or replaced (200), and how many live tags' expiries an immutable
// rule cleared.
type PolicySaved struct {
	Policy
	Created         bool `json:"created"`
	ExpiriesCleared int  `json:"expiries_cleared"`
}

// PolicyRule is a rule as a request gives it: the body of a PUT, and of a
// preview beside the name.
type PolicyRule struct {
	Kind       meta.PolicyKind `json:"kind"`
	Count      *int            `json:"count,omitempty"`
	Span       string          `json:"span,omitempty"`
	TagPattern string          `json:"tag_pattern,omitempty"`
	// PatternMatches: the rule sees the tags matching TagPattern (the
	// default), or, false, those not matching it.
	PatternMatches *bool `json:"pattern_matches,omitempty"`
}

// Apply fills p's rule from the request. A count rule needs its count:
// a missing one is refused rather than read as "keep none".
func (req PolicyRule) Apply(p *meta.TagPolicy) error {
	p.Kind, p.TagPattern, p.PatternMatches = req.Kind, req.TagPattern, true
	if req.PatternMatches != nil {
		p.PatternMatches = *req.PatternMatches
	}
	if req.Count != nil {
		p.Count = *req.Count
	} else if p.Kind == meta.PolicyKeepNewest || p.Kind == meta.PolicyKeepRecentlyPulled {
		return fmt.Errorf(`%s needs "count", the number of tags it keeps: %w`, p.Kind, registry.ErrInvalidArgument)
	}
	if req.Span != "" {
		d, err := parseDuration("span", req.Span)
		if err != nil {
			return err
		}
		p.Span = d
	}
	return nil
}

// previewRequest is the body of POST /berth/v1/policies/_preview: a rule
// (with the name of the saved rule it would replace, if any), or only the
// name of a saved rule.
type previewRequest struct {
	Name string `json:"name,omitempty"`
	PolicyRule
}

// PolicyPreview is what a rule would prune now, and the bytes that frees
// once the pruned tags leave the time machine (registry.Preview).
type PolicyPreview struct {
	Policy       Policy      `json:"policy"`
	Tags         []PrunedTag `json:"tags"`
	Repositories int         `json:"repositories"`
	TagsExamined int         `json:"tags_examined"`
	// Truncated: the preview stopped at its bound (registry.MaxPreviewTags
	// live tags or registry.MaxPreviewRepositories repositories); the rest
	// covers the repositories it examined.
	Truncated      bool  `json:"truncated"`
	ManifestsFreed int   `json:"manifests_freed"`
	BytesFreed     int64 `json:"bytes_freed"`
}

// PrunedTag is one tag a preview would prune, and the rule that would.
type PrunedTag struct {
	Repository string        `json:"repository"`
	Tag        string        `json:"tag"`
	Digest     digest.Digest `json:"digest"`
	Start      time.Time     `json:"start"`
	// LastPull is the last recorded pull of the lifetime (none: never).
	LastPull *time.Time `json:"last_pull,omitempty"`
	Rule     string     `json:"rule"`
	// ThisRule: the rule previewed prunes it (several may).
	ThisRule bool `json:"this_rule"`
}

// NewPolicyPreview is the document of a preview.
func NewPolicyPreview(pv registry.Preview) PolicyPreview {
	out := PolicyPreview{Policy: NewPolicy(pv.Policy), Tags: []PrunedTag{}, Repositories: pv.Repositories, TagsExamined: pv.TagsExamined,
		Truncated: pv.Truncated, ManifestsFreed: pv.Manifests, BytesFreed: pv.Bytes}
	for _, t := range pv.Tags {
		out.Tags = append(out.Tags, PrunedTag{Repository: t.Repository, Tag: t.Name, Digest: t.Manifest, Start: t.Start.UTC(),
			LastPull: utc(t.PulledAt), Rule: t.Rule, ThisRule: t.ThisRule})
	}
	return out
}

// policyTarget is the scope and name a policy path names.
func policyTarget(mr mgmtRoute) meta.TagPolicy {
	switch mr.Kind {
	case mgmtNSPolicy:
		return meta.TagPolicy{Namespace: mr.Name, Name: mr.Policy}
	case mgmtRepoPolicy:
		ns, _ := oci.SplitRepo(mr.Name)
		return meta.TagPolicy{Namespace: ns, Repository: mr.Name, Name: mr.Policy}
	}
	return meta.TagPolicy{Name: mr.Policy}
}

// queryScope is the scope of the list and the preview: ?namespace= and
// ?repository= (which implies its namespace; both must then agree).
func queryScope(r *http.Request) (ns, repo string, err error) {
	q := r.URL.Query()
	ns, repo = q.Get("namespace"), q.Get("repository")
	if repo != "" {
		n, _ := oci.SplitRepo(repo)
		if ns != "" && ns != n {
			return "", "", fmt.Errorf("repository %q is not in namespace %q: %w", repo, ns, registry.ErrInvalidArgument)
		}
		ns = n
	}
	return ns, repo, nil
}

// policyNeeds is what the policy endpoints need: read on the scope to
// list, read and preview; admin to save and delete; the registry's scope
// needs a registry administrator.
func policyNeeds(r *http.Request, mr mgmtRoute) []auth.Need {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead || mr.Preview
	var ns, repo string
	if mr.Kind == mgmtPolicies {
		q := r.URL.Query()
		ns, repo = q.Get("namespace"), q.Get("repository")
	} else {
		p := policyTarget(mr)
		ns, repo = p.Namespace, p.Repository
	}
	switch {
	case repo != "" && read:
		return []auth.Need{auth.Pull(repo)}
	case repo != "":
		return []auth.Need{{Type: auth.TypeRepository, Name: repo, Action: auth.ActionAll}}
	case ns != "" && read:
		return []auth.Need{auth.NamespaceNeed(ns, auth.ActionPull)}
	case ns != "":
		return []auth.Need{auth.NamespaceNeed(ns, auth.ActionAll)}
	}
	return []auth.Need{auth.RegistryNeed(auth.RegistryAdmin)}
}

// policies serves the policy endpoints.
func (h *handler) policies(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	ctx := r.Context()
	switch {
	case mr.Kind == mgmtPolicies && mr.Preview:
		if err := allow(w, r, http.MethodPost); err != nil {
			return err
		}
		ns, repo, err := queryScope(r)
		if err != nil {
			return err
		}
		var req previewRequest
		if err := readBody(r, &req); err != nil {
			return err
		}
		p := meta.TagPolicy{Namespace: ns, Repository: repo, Name: req.Name}
		if req.Kind != "" {
			if err := req.Apply(&p); err != nil {
				return err
			}
		} else if req.PolicyRule != (PolicyRule{}) {
			return fmt.Errorf(`a rule needs its "kind"; to preview a saved rule give only its "name": %w`, registry.ErrInvalidArgument)
		}
		pv, err := h.reg.PreviewPolicy(ctx, p)
		if err != nil {
			return err
		}
		return replyJSON(w, r, NewPolicyPreview(pv))
	case mr.Kind == mgmtPolicies:
		if err := allow(w, r, http.MethodGet, http.MethodHead); err != nil {
			return err
		}
		ns, repo, err := queryScope(r)
		if err != nil {
			return err
		}
		ps, err := h.reg.Policies(ctx, meta.PolicyFilter{Namespace: ns, Repository: repo, Registry: ns != ""})
		if err != nil {
			return err
		}
		return replyJSON(w, r, NewPolicies(ps))
	}
	if err := allow(w, r, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete); err != nil {
		return err
	}
	target := policyTarget(mr)
	switch r.Method {
	case http.MethodPut:
		var req PolicyRule
		if err := readBody(r, &req); err != nil {
			return err
		}
		p := target
		if err := req.Apply(&p); err != nil {
			return err
		}
		saved, created, cleared, err := h.reg.SetPolicy(ctx, p)
		if err != nil {
			return err
		}
		body, err := json.Marshal(PolicySaved{Policy: NewPolicy(saved), Created: created, ExpiriesCleared: cleared})
		if err != nil {
			return err
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, r, status, "application/json", body)
		return nil
	case http.MethodDelete:
		if _, err := h.reg.DeletePolicy(ctx, target.Namespace, target.Repository, target.Name); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	p, err := h.reg.Policy(ctx, target.Namespace, target.Repository, target.Name)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewPolicy(p))
}
