package meta

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// PolicyKind is what a policy's rule does (docs/design/policies.md,
// "Rules"). The strings are stored in policy.kind.
type PolicyKind string

// Rule kinds.
const (
	// PolicyKeepNewest prunes every tag after the Count newest (by the
	// start of the tag's current lifetime).
	PolicyKeepNewest PolicyKind = "keep_newest"
	// PolicyPruneOlderThan prunes every tag whose current lifetime started
	// more than Span ago.
	PolicyPruneOlderThan PolicyKind = "prune_older_than"
	// PolicyPruneNotPulled prunes every tag not pulled within Span (a tag
	// never pulled counts as pulled when its lifetime started).
	PolicyPruneNotPulled PolicyKind = "prune_not_pulled"
	// PolicyKeepRecentlyPulled prunes every tag after the Count most
	// recently pulled.
	PolicyKeepRecentlyPulled PolicyKind = "keep_recently_pulled"
	// PolicyImmutable prunes nothing: the tags it matches cannot be moved,
	// deleted, expired or pruned.
	PolicyImmutable PolicyKind = "immutable"
)

// PolicyKinds lists every rule kind, in the order of the table in
// docs/design/policies.md.
func PolicyKinds() []PolicyKind {
	return []PolicyKind{PolicyKeepNewest, PolicyPruneOlderThan, PolicyPruneNotPulled, PolicyKeepRecentlyPulled, PolicyImmutable}
}

// CausePolicy ends a tag lifetime a retention policy pruned; Tag.EndRule
// names the rule.
const CausePolicy EndCause = "policy"

// TagPolicy is one named rule at one scope: the registry (Namespace and
// Repository ""), a namespace (Repository "") or one repository (its full
// name). Scopes are names, like grants: a policy may precede the first push
// of its repository and outlives a purge.
type TagPolicy struct {
	ID         int64
	Namespace  string
	Repository string
	Name       string
	Kind       PolicyKind
	// Count is the N of the keep_* rules.
	Count int
	// Span is the span of the prune_* rules.
	Span time.Duration
	// TagPattern, when not "", narrows the rule to the tags whose name
	// matches it (PatternMatches) or does not (!PatternMatches). A Go
	// regular expression; policy.Compile checks it.
	TagPattern     string
	PatternMatches bool
	CreatedAt      time.Time
	CreatedBy      Actor
}

// RegistryScope is the Ref prefix of a registry-wide policy.
const RegistryScope = "*"

// Scope names the policy's scope: "*" (the registry), the namespace, or
// the repository.
func (p TagPolicy) Scope() string {
	switch {
	case p.Repository != "":
		return p.Repository
	case p.Namespace != "":
		return p.Namespace
	}
	return RegistryScope
}

// Ref names the policy in causes, events and logs: "scope:name".
func (p TagPolicy) Ref() string { return p.Scope() + ":" + p.Name }

// PolicyFilter narrows ListPolicies. Namespace "" lists every policy;
// otherwise the namespace's own and, when Repository is set, that
// repository's too. Registry adds the registry's policies to a filtered list.
type PolicyFilter struct {
	Namespace  string
	Repository string
	Registry   bool
}

// PolicyTx covers retention policies and pull tracking
// (docs/design/policies.md).
type PolicyTx interface {
	// PutPolicy creates the policy (Namespace, Repository, Name) or
	// replaces its rule, keeping its ID; created reports which. The caller
	// of a namespace or repository policy locks the namespace row first
	// (Namespace with LockUpdate): tag writes lock it FOR SHARE through
	// EnsureRepository, so a rule saved under it is seen by every later
	// tag write.
	PutPolicy(ctx context.Context, p TagPolicy) (row TagPolicy, created bool, err error)
	// DeletePolicy deletes a policy; ErrNotFound if there is none.
	DeletePolicy(ctx context.Context, namespace, repository, name string) (TagPolicy, error)
	// Policy reads one policy; ErrNotFound if there is none.
	Policy(ctx context.Context, namespace, repository, name string) (TagPolicy, error)
	// ListPolicies lists policies matching f, ordered by namespace,
	// repository and name.
	ListPolicies(ctx context.Context, f PolicyFilter) ([]TagPolicy, error)
	// PoliciesFor lists the policies that apply to the repository named
	// repository of namespace: the repository's and the namespace's, or,
	// when there are none, the registry's (docs/design/policies.md,
	// "Policies"). Ordered by scope (registry, namespace, repository),
	// then name.
	PoliciesFor(ctx context.Context, namespace, repository string) ([]TagPolicy, error)

	// LiveTags lists every live row of the repository at now (expiry not
	// passed), hidden ones included, with PulledAt, ordered by id.
	LiveTags(ctx context.Context, repoID int64, now time.Time) ([]Tag, error)
	// EndTags ends the live rows ids at at by actor for cause (and rule,
	// for CausePolicy) and returns the rows it ended; a row no longer live
	// is skipped.
	EndTags(ctx context.Context, ids []int64, at time.Time, actor Actor, cause EndCause, rule string) ([]Tag, error)
	// RecordPull sets the pull time of the live row id to at unless it
	// was recorded after at - interval; it reports whether it wrote.
	RecordPull(ctx context.Context, id int64, at time.Time, interval time.Duration) (bool, error)
	// RepositoryIDs lists the ids of the active repositories of the
	// namespace (every namespace when namespace is ""), or of the one
	// repository when repository is set, after id after, at most limit,
	// in id order: the repositories a policy change schedules.
	RepositoryIDs(ctx context.Context, namespace, repository string, after int64, limit int) ([]int64, error)
}

// ManifestNode is a manifest with the edges a policy preview walks
// (docs/design/policies.md, "Preview"): what reaches it and what it
// reaches, within its repository.
type ManifestNode struct {
	Digest    digest.Digest
	Size      int64
	Withdrawn bool
	// Subject is the manifest's subject ("" when none); SubjectStored
	// reports whether the subject's row exists in the repository.
	Subject       digest.Digest
	SubjectStored bool
	// Parents are the indexes of the repository that list it (withdrawn
	// ones too), Children the manifests it lists, Referrers the manifests
	// whose subject it is; each in digest order.
	Parents   []digest.Digest
	Children  []digest.Digest
	Referrers []digest.Digest
	// Blobs are its config and layers (an index's blob entries), with
	// their sizes, in digest order.
	Blobs []Blob
}

// PreviewTx holds the reads of a policy preview. Both take a bounded set
// of keys and answer in a fixed number of statements, whatever its size;
// neither locks.
type PreviewTx interface {
	// ManifestNodes reads the manifests ds of the repository with their
	// edges, in digest order; digests not stored there are left out.
	ManifestNodes(ctx context.Context, repoID int64, ds []digest.Digest) ([]ManifestNode, error)
	// BlobUses counts, for each of the blobs, the manifests of every
	// repository (withdrawn ones included) that reference it; a blob no
	// manifest references is left out.
	BlobUses(ctx context.Context, blobs []digest.Digest) (map[digest.Digest]int, error)
}
