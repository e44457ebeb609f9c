package registry

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/policy"
	"github.com/berth/berth/internal/review"
)

// Retention policies (docs/design/policies.md): saving, deleting and
// reading them, and the preview of what a rule would prune. Rules end
// lifetimes, never rows, and only the collector ends them: a change here
// records a policy review, due now, for every repository of its scope,
// and the collector evaluates each.

const (
	// policyBatch is how many repositories one transaction schedules after
	// a policy change, and how many a preview lists at a time.
	policyBatch = 500
	// MaxPreviewTags bounds the live tags a preview examines. A repository
	// is examined whole or not at all (its rules rank its tags together),
	// so the first one is examined whatever its size.
	MaxPreviewTags = 100_000
	// MaxPreviewRepositories bounds the repositories a preview examines.
	MaxPreviewRepositories = 10_000
	// previewTxTimeout bounds the preview's one read-only transaction.
	previewTxTimeout = 2 * time.Minute
	// previewBatch is how many manifests or blobs one preview read asks
	// for.
	previewBatch = 500
)

// validPolicyScope checks a policy's scope: the registry (both ""), a
// namespace, or a repository of that namespace.
func validPolicyScope(ns, repo string) error {
	switch {
	case repo != "":
		if err := validName(repo); err != nil {
			return err
		}
		if n, rest := oci.SplitRepo(repo); n != ns || rest == "" {
			return fmt.Errorf("repository %q is not a repository of namespace %q: %w", repo, ns, ErrInvalidArgument)
		}
	case ns != "":
		return validNamespace(ns)
	}
	return nil
}

// compileRule is policy.Compile with its refusal wrapped as a request
// error.
func compileRule(p meta.TagPolicy) (policy.Rule, error) {
	if err := validPolicyScope(p.Namespace, p.Repository); err != nil {
		return policy.Rule{}, err
	}
	rule, err := policy.Compile(p)
	if err != nil {
		return policy.Rule{}, fmt.Errorf("%w (%w)", err, ErrInvalidArgument)
	}
	return rule, nil
}

// policyUnknown maps the store's not-found for the policy ref.
func policyUnknown(ref string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("policy %s: %w", ref, ErrPolicyUnknown)
	}
	return fmt.Errorf("reading policy %s: %w", ref, err)
}

// lockPolicyScope locks the namespace of a policy FOR UPDATE: tag writes
// lock it FOR SHARE (EnsureRepository) and read the immutable rules after,
// so a rule saved under this lock is seen by every later tag write
// (docs/design/policies.md, "The race"). A namespace that does not exist
// has nothing to lock: a policy may precede the first push.
func lockPolicyScope(ctx context.Context, tx meta.Tx, ns string) error {
	if ns == "" {
		return nil
	}
	if _, err := tx.Namespace(ctx, ns, meta.LockUpdate); err != nil && !isNotFound(err) {
		return fmt.Errorf("locking namespace %q: %w", ns, err)
	}
	return nil
}

// policyChange is the follow-up of a saved or deleted rule: a policy
// review due now for every repository of its scope, and for a saved
// immutable rule the expiry of the live tags it covers cleared.
type policyChange struct {
	rule   policy.Rule
	clear  bool // clear the expiries the immutable rule covers
	now    time.Time
	reason string
}

// schedule does the change for the repositories of the scope after the
// id after, at most policyBatch of them. It returns the last id done,
// whether none is left, and how many expiries it cleared.
func (c policyChange) schedule(ctx context.Context, tx meta.Tx, after int64) (last int64, done bool, cleared int, err error) {
	ids, err := tx.RepositoryIDs(ctx, c.rule.Namespace, c.rule.Repository, after, policyBatch)
	if err != nil {
		return after, false, 0, err
	}
	for _, id := range ids {
		if c.clear {
			n, err := clearExpiries(ctx, tx, c.rule, id, c.now)
			if err != nil {
				return after, false, 0, err
			}
			cleared += n
		}
		err := tx.ExpediteReview(ctx, meta.Review{Kind: review.KindPolicy, Object: review.PolicyObject(id),
			ReviewAfter: c.now, Cause: review.CausePolicyChanged, Reason: c.reason})
		if err != nil {
			return after, false, 0, fmt.Errorf("scheduling the policy review of repository %d: %w", id, err)
		}
		after = id
	}
	return after, len(ids) < policyBatch, cleared, nil
}

// clearExpiries clears the expiry of every live tag of the repository the
// immutable rule covers: an immutable tag does not end, by expiry or
// otherwise. Hidden tags are berth's own, not a client's, and keep theirs.
// now is when the rule was saved: a later batch also keeps a covered tag
// whose expiry passed since, unless the collector already recorded its end.
func clearExpiries(ctx context.Context, tx meta.Tx, rule policy.Rule, repoID int64, now time.Time) (int, error) {
	tags, err := tx.LiveTags(ctx, repoID, now)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tags {
		if t.Hidden || t.ExpiresAt == nil || !rule.Sees(t.Name) {
			continue
		}
		if err := tx.SetTagExpiry(ctx, t.ID, nil); err != nil {
			return n, fmt.Errorf("clearing the expiry of tag %q: %w", t.Name, err)
		}
		n++
	}
	return n, nil
}

// applyPolicyChange runs first, which saves or deletes the rule, and
// the change's first batch in one transaction (the whole change for a
// repository, and for a namespace of up to policyBatch repositories),
// then the rest in transactions of policyBatch repositories each.
// committed reports whether the first transaction committed: a failure
// past it leaves the rule changed and some repositories unscheduled, and
// the error says so (saving the rule again schedules them all).
func (r *Registry) applyPolicyChange(ctx context.Context, c policyChange, first func(tx meta.Tx) error) (cleared int, committed bool, err error) {
	var after int64
	done := false
	err = r.store.Update(ctx, func(tx meta.Tx) error {
		if err := first(tx); err != nil {
			return err
		}
		var err error
		after, done, cleared, err = c.schedule(ctx, tx, 0)
		return err
	})
	if err != nil {
		return 0, false, err
	}
	for !done {
		var n int
		err := r.store.Update(ctx, func(tx meta.Tx) (err error) {
			var last int64
			last, done, n, err = c.schedule(ctx, tx, after)
			if err == nil {
				after = last
			}
			return err
		})
		if err != nil {
			return cleared, true, fmt.Errorf("%s, but scheduling its repositories after id %d failed (save it again to schedule them all): %w", c.reason, after, err)
		}
		cleared += n
	}
	return cleared, true, nil
}

// SetPolicy saves the rule p at its scope (the registry, a namespace or a
// repository, which need not exist yet), replacing the rule of that name;
// created reports which. The rule is checked first (policy.Compile):
// ErrInvalidArgument says what to change. The namespace is locked FOR
// UPDATE before saving, so every later tag write sees the rule. An
// immutable rule clears the expiry of the live tags it covers (cleared
// counts them). A policy review due now is recorded for every repository
// of the scope — for the registry scope, every repository: an
// administrator's rare change — in batches of policyBatch per
// transaction. CreatedAt and CreatedBy are the registry's clock and the
// actor of ctx.
func (r *Registry) SetPolicy(ctx context.Context, p meta.TagPolicy) (saved meta.TagPolicy, created bool, cleared int, err error) {
	rule, err := compileRule(p)
	if err != nil {
		return meta.TagPolicy{}, false, 0, err
	}
	now := r.now()
	p.ID, p.CreatedAt, p.CreatedBy = 0, now, ActorFrom(ctx)
	c := policyChange{rule: rule, clear: rule.Kind == meta.PolicyImmutable, now: now, reason: "policy " + p.Ref() + " saved"}
	cleared, committed, err := r.applyPolicyChange(ctx, c, func(tx meta.Tx) error {
		if err := lockPolicyScope(ctx, tx, p.Namespace); err != nil {
			return err
		}
		saved, created, err = tx.PutPolicy(ctx, p)
		if err != nil {
			return fmt.Errorf("saving policy %s: %w", p.Ref(), err)
		}
		return nil
	})
	if !committed {
		return meta.TagPolicy{}, false, 0, err
	}
	return saved, created, cleared, err
}

// DeletePolicy deletes the policy name of the scope (namespace and
// repository "" for the registry's) and returns it: ErrPolicyUnknown if
// there is none. Deleting an immutable rule is what lifts its
// immutability. Like saving, it records a policy review due now for every
// repository of the scope (the registry's default, or tags the rule
// protected, may now apply).
func (r *Registry) DeletePolicy(ctx context.Context, ns, repo, name string) (meta.TagPolicy, error) {
	ref := meta.TagPolicy{Namespace: ns, Repository: repo, Name: name}
	if err := validPolicyScope(ns, repo); err != nil {
		return meta.TagPolicy{}, err
	}
	if err := policy.ValidName(name); err != nil {
		return meta.TagPolicy{}, fmt.Errorf("%w (%w)", err, ErrInvalidArgument)
	}
	var deleted meta.TagPolicy
	c := policyChange{rule: policy.Rule{TagPolicy: ref}, now: r.now(), reason: "policy " + ref.Ref() + " deleted"}
	_, committed, err := r.applyPolicyChange(ctx, c, func(tx meta.Tx) error {
		if err := lockPolicyScope(ctx, tx, ns); err != nil {
			return err
		}
		var err error
		deleted, err = tx.DeletePolicy(ctx, ns, repo, name)
		if err != nil {
			return policyUnknown(ref.Ref(), err)
		}
		return nil
	})
	if !committed {
		return meta.TagPolicy{}, err
	}
	return deleted, err
}

// Policy reads the policy name of the scope: ErrPolicyUnknown if there is
// none.
func (r *Registry) Policy(ctx context.Context, ns, repo, name string) (meta.TagPolicy, error) {
	ref := meta.TagPolicy{Namespace: ns, Repository: repo, Name: name}
	if err := validPolicyScope(ns, repo); err != nil {
		return meta.TagPolicy{}, err
	}
	if err := policy.ValidName(name); err != nil {
		return meta.TagPolicy{}, fmt.Errorf("%w (%w)", err, ErrInvalidArgument)
	}
	var p meta.TagPolicy
	err := r.store.View(ctx, func(tx meta.Tx) (err error) {
		p, err = tx.Policy(ctx, ns, repo, name)
		if err != nil {
			return policyUnknown(ref.Ref(), err)
		}
		return nil
	})
	return p, err
}

// Policies lists the policies f selects (meta.PolicyFilter): every one
// when f is empty; a namespace's own and its repositories' (or, with
// Repository, that repository's); the registry's too with f.Registry. A
// Repository alone implies its namespace.
func (r *Registry) Policies(ctx context.Context, f meta.PolicyFilter) ([]meta.TagPolicy, error) {
	if f.Repository != "" && f.Namespace == "" {
		f.Namespace, _ = oci.SplitRepo(f.Repository)
	}
	if err := validPolicyScope(f.Namespace, f.Repository); err != nil {
		return nil, err
	}
	var ps []meta.TagPolicy
	err := r.store.View(ctx, func(tx meta.Tx) (err error) {
		ps, err = tx.ListPolicies(ctx, f)
		return err
	})
	return ps, err
}

// Preview is what a rule would prune now (docs/design/policies.md,
// "Preview").
type Preview struct {
	// Policy is the rule previewed: as given, or as saved; a rule given
	// without a name is named unsavedName.
	Policy meta.TagPolicy
	// Tags are the live tags the policies of each repository of the
	// scope would prune now with the rule saved (it added, or replacing
	// the saved rule of its name), by repository then tag row.
	Tags []PrunedTag
	// Repositories and TagsExamined count the repositories (those the
	// rule applies to) and live tags the preview read.
	Repositories int
	TagsExamined int
	// Truncated: the preview stopped at MaxPreviewTags or
	// MaxPreviewRepositories; what it says covers the repositories it
	// examined.
	Truncated bool
	// Manifests counts the manifests only the pruned tags reach (children
	// and referrers included), and Bytes the size of the blobs only those
	// manifests use, in any repository: what the collector frees once the
	// pruned tags leave the time machine.
	Manifests int
	Bytes     int64
}

// PrunedTag is a live tag a preview would prune.
type PrunedTag struct {
	meta.Tag
	Repository string
	// Rule is the ref of the rule that prunes it; ThisRule says it is the
	// rule previewed. The preview names the previewed rule first when
	// several prune a tag; the collector names the first in scope order.
	Rule     string
	ThisRule bool
}

// unsavedName stands in for the name of a previewed rule given without
// one: it is not a valid policy name, so it replaces no saved rule.
const unsavedName = "(unsaved)"

// PreviewPolicy says what the rule p would prune now, and the bytes that
// frees, in one read-only transaction that takes no lock. p is a rule
// saved or not: with a Kind it is previewed as given (replacing the saved
// rule of its name, if any; with no Name it replaces none); without, the
// saved rule Name of the scope is (ErrPolicyUnknown if none). Each
// repository of the scope is evaluated as the collector would evaluate it
// once p is saved: its policies (policy.Evaluate, a bad saved rule left
// out), immutable tags and attachments whose subject is stored protected.
// A registry rule does not apply to a repository with policies of its own
// or its namespace's, and such repositories are skipped. The preview
// stops at MaxPreviewTags live tags or MaxPreviewRepositories
// repositories and says so (Truncated).
func (r *Registry) PreviewPolicy(ctx context.Context, p meta.TagPolicy) (Preview, error) {
	if err := validPolicyScope(p.Namespace, p.Repository); err != nil {
		return Preview{}, err
	}
	useSaved := p.Kind == ""
	if useSaved && p.Name == "" {
		return Preview{}, fmt.Errorf("a preview needs a rule, or the name of a saved one: %w", ErrInvalidArgument)
	}
	if !useSaved {
		if _, err := compilePreview(p); err != nil {
			return Preview{}, err
		}
	}
	now := r.now()
	var pv Preview
	err := r.store.View(meta.WithTxTimeout(ctx, previewTxTimeout), func(tx meta.Tx) error {
		given := p
		if useSaved {
			var err error
			if given, err = tx.Policy(ctx, p.Namespace, p.Repository, p.Name); err != nil {
				return policyUnknown(p.Ref(), err)
			}
		}
		rule, err := compilePreview(given)
		if err != nil {
			return err
		}
		pr := &previewer{tx: tx, rule: rule, now: now, pv: Preview{Policy: rule.TagPolicy}, blobs: map[digest.Digest]*blobUse{}}
		if err := pr.run(ctx); err != nil {
			return err
		}
		pv = pr.pv
		return nil
	})
	return pv, err
}

// compilePreview compiles a previewed rule; one without a name is
// compiled under unsavedName, past the name check.
func compilePreview(p meta.TagPolicy) (policy.Rule, error) {
	if p.Name != "" {
		return compileRule(p)
	}
	p.Name = "unsaved"
	rule, err := compileRule(p)
	rule.Name = unsavedName
	return rule, err
}

// previewer is one preview: its transaction, the rule, and what it found.
type previewer struct {
	tx   meta.Tx
	rule policy.Rule
	now  time.Time
	pv   Preview
	// read counts the repositories read, the rule applying or not.
	read int
	// blobs are the blobs of the freed manifests, with how many of those
	// use each.
	blobs map[digest.Digest]*blobUse
	// nodes caches the manifests of the repository being examined;
	// absent digests map to nil.
	nodes map[digest.Digest]*meta.ManifestNode
}

type blobUse struct {
	size  int64
	users int
}

// run examines the repositories of the scope, then counts the bytes.
func (pr *previewer) run(ctx context.Context) error {
	var after int64
	for {
		ids, err := pr.tx.RepositoryIDs(ctx, pr.rule.Namespace, pr.rule.Repository, after, policyBatch)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if pr.read >= MaxPreviewRepositories {
				pr.pv.Truncated = true
				return pr.countBytes(ctx)
			}
			more, err := pr.repository(ctx, id)
			if err != nil {
				return err
			}
			if !more {
				pr.pv.Truncated = true
				return pr.countBytes(ctx)
			}
			after = id
		}
		if len(ids) < policyBatch {
			return pr.countBytes(ctx)
		}
	}
}

// rulesFor are the rules that would apply to a repository whose saved
// policies (PoliciesFor) are saved, with the previewed rule saved: first
// the previewed rule, then the others of the scopes that apply. ok is
// false when the previewed rule would not apply (a registry rule, where
// the repository or its namespace has policies of its own).
func (pr *previewer) rulesFor(saved []meta.TagPolicy) (rules []policy.Rule, ok bool) {
	p := pr.rule.TagPolicy
	var own, registry []meta.TagPolicy
	for _, q := range saved {
		switch {
		case q.Namespace == p.Namespace && q.Repository == p.Repository && q.Name == p.Name:
			// replaced by the previewed rule
		case q.Namespace == "":
			registry = append(registry, q)
		default:
			own = append(own, q)
		}
	}
	others := own
	if p.Namespace == "" {
		if len(own) > 0 {
			return nil, false
		}
		others = registry
	}
	compiled, _ := policy.CompileAll(others) // a rule that cannot be read does not prune
	return append([]policy.Rule{pr.rule}, compiled...), true
}

// repository evaluates one repository. It returns false, examining
// nothing, when its tags would take the preview past MaxPreviewTags.
func (pr *previewer) repository(ctx context.Context, id int64) (bool, error) {
	pr.read++
	repo, err := pr.tx.RepositoryByID(ctx, id, meta.LockNone)
	if err != nil {
		return false, fmt.Errorf("reading repository %d: %w", id, err)
	}
	ns, _ := oci.SplitRepo(repo.Name)
	saved, err := pr.tx.PoliciesFor(ctx, ns, repo.Name)
	if err != nil {
		return false, err
	}
	rules, ok := pr.rulesFor(saved)
	if !ok {
		return true, nil
	}
	tags, err := pr.tx.LiveTags(ctx, id, pr.now)
	if err != nil {
		return false, err
	}
	if pr.pv.TagsExamined > 0 && pr.pv.TagsExamined+len(tags) > MaxPreviewTags {
		return false, nil
	}
	pr.pv.Repositories++
	pr.pv.TagsExamined += len(tags)
	pr.nodes = map[digest.Digest]*meta.ManifestNode{}
	protected, err := pr.protected(ctx, id, tags)
	if err != nil {
		return false, err
	}
	prunes, _ := policy.Evaluate(policy.Input{Tags: tags, Rules: rules, Now: pr.now,
		Protected: func(t meta.Tag) bool { return protected[t.ID] }})
	if len(prunes) == 0 {
		return true, nil
	}
	pr.pv.Tags = slices.Grow(pr.pv.Tags, len(prunes))
	for _, p := range prunes {
		// The previewed rule replaced any saved one of its scope and name.
		this := p.Rule.Namespace == pr.rule.Namespace && p.Rule.Repository == pr.rule.Repository && p.Rule.Name == pr.rule.Name
		pr.pv.Tags = append(pr.pv.Tags, PrunedTag{Tag: p.Tag, Repository: repo.Name, Rule: p.Rule.Ref(), ThisRule: this})
	}
	return true, pr.free(ctx, id, tags, prunes)
}

// protected marks the attachment tags whose subject manifest is stored in
// the repository and not withdrawn: they live and die with it
// (docs/design/policies.md, "Protections").
func (pr *previewer) protected(ctx context.Context, repoID int64, tags []meta.Tag) (map[int64]bool, error) {
	subjects := map[int64]digest.Digest{}
	var ds []digest.Digest
	for _, t := range tags {
		if d, ok := oci.AttachmentSubject(t.Name); ok && !t.Hidden {
			subjects[t.ID] = d
			ds = append(ds, d)
		}
	}
	if err := pr.load(ctx, repoID, ds); err != nil {
		return nil, err
	}
	out := map[int64]bool{}
	for id, d := range subjects {
		if n := pr.nodes[d]; n != nil && !n.Withdrawn {
			out[id] = true
		}
	}
	return out, nil
}

// load reads the manifests ds of the repository not yet in pr.nodes.
func (pr *previewer) load(ctx context.Context, repoID int64, ds []digest.Digest) error {
	var want []digest.Digest
	asked := map[digest.Digest]bool{}
	for _, d := range ds {
		if _, ok := pr.nodes[d]; !ok && !asked[d] {
			asked[d] = true
			want = append(want, d)
		}
	}
	for len(want) > 0 {
		batch := want[:min(previewBatch, len(want))]
		want = want[len(batch):]
		nodes, err := pr.tx.ManifestNodes(ctx, repoID, batch)
		if err != nil {
			return err
		}
		for _, d := range batch {
			pr.nodes[d] = nil
		}
		for i := range nodes {
			pr.nodes[nodes[i].Digest] = &nodes[i]
		}
	}
	return nil
}

// free finds the manifests of the repository only the pruned tags reach
// and counts them and their blobs' users. From the pruned tags'
// manifests it follows children and referrers, stopping at manifests a
// remaining live tag names; then it keeps, until nothing changes, every
// manifest another manifest outside the set lists as a child, and every
// referrer whose stored subject is outside it. What is left only the
// pruned tags reach.
func (pr *previewer) free(ctx context.Context, repoID int64, tags []meta.Tag, prunes []policy.Prune) error {
	pruned := map[int64]bool{}
	for _, p := range prunes {
		pruned[p.Tag.ID] = true
	}
	kept := map[digest.Digest]bool{}
	for _, t := range tags {
		if !pruned[t.ID] {
			kept[t.Manifest] = true
		}
	}
	set := map[digest.Digest]bool{}
	var frontier []digest.Digest
	add := func(d digest.Digest) {
		if !kept[d] && !set[d] {
			set[d] = true
			frontier = append(frontier, d)
		}
	}
	for _, p := range prunes {
		add(p.Tag.Manifest)
	}
	for len(frontier) > 0 {
		level := frontier
		frontier = nil
		if err := pr.load(ctx, repoID, level); err != nil {
			return err
		}
		for _, d := range level {
			n := pr.nodes[d]
			if n == nil {
				delete(set, d)
				continue
			}
			for _, c := range n.Children {
				add(c)
			}
			for _, c := range n.Referrers {
				add(c)
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for d := range set {
			n := pr.nodes[d]
			outside := func(x digest.Digest) bool { return !set[x] }
			if slices.ContainsFunc(n.Parents, outside) || (n.Subject != "" && n.SubjectStored && outside(n.Subject)) {
				delete(set, d)
				changed = true
			}
		}
	}
	for d := range set {
		pr.pv.Manifests++
		for _, b := range pr.nodes[d].Blobs {
			u := pr.blobs[b.Digest]
			if u == nil {
				u = &blobUse{size: b.Size}
				pr.blobs[b.Digest] = u
			}
			u.users++
		}
	}
	return nil
}

// countBytes adds the size of every blob all of whose users are freed
// manifests: a layer any other manifest uses, in any repository, frees
// nothing (the collector keeps a blob while a repository links it).
func (pr *previewer) countBytes(ctx context.Context) error {
	ds := make([]digest.Digest, 0, len(pr.blobs))
	for d := range pr.blobs {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	for len(ds) > 0 {
		batch := ds[:min(previewBatch, len(ds))]
		ds = ds[len(batch):]
		uses, err := pr.tx.BlobUses(ctx, batch)
		if err != nil {
			return err
		}
		for _, d := range batch {
			if u := pr.blobs[d]; uses[d] == u.users {
				pr.pv.Bytes += u.size
			}
		}
	}
	return nil
}
