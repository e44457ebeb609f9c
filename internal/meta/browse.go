package meta

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// NamespaceFilter picks the page of namespaces NamespacePage lists. With
// neither restriction every namespace is listed; with one, the namespaces it
// admits; with both, those either admits (the public namespaces and the
// named ones: what a signed-in user may see).
type NamespaceFilter struct {
	// After is the last name of the previous page ("" for the first).
	After string
	// Limit is the most namespaces listed (> 0).
	Limit int
	// Names, when not nil, admits these namespaces (an empty slice none).
	Names []string
	// PublicOnly admits the public namespaces.
	PublicOnly bool
}

// NamespaceSummary is a namespace as a listing shows it.
type NamespaceSummary struct {
	Namespace
	// Usage is what the namespace holds, by its counters.
	Usage Usage
	// Quota is the namespace's own quota, nil when it has none (the
	// registry default, if any, then applies).
	Quota *Quota
	// Repositories counts its active repositories that hold a manifest
	// (those the catalog lists), by their usage counters.
	Repositories int
}

// RepositorySummary is a repository as a listing shows it.
type RepositorySummary struct {
	Repository
	// Usage is what the repository holds, by its counters.
	Usage Usage
	// Tags counts its live tags that are not hidden, up to the cap the
	// listing was given: Tags == cap+1 says "more than cap".
	Tags int
	// LastTagged is the latest start of a lifetime of any of its tags
	// (a push under a tag, a tag move or a restore), hidden and ended ones
	// included; nil when it never had a tag.
	LastTagged *time.Time
}

// ManifestSummary is what a tag listing shows of the manifest a tag names.
type ManifestSummary struct {
	Digest       digest.Digest
	MediaType    string
	ArtifactType string
	// Size is the manifest's own size.
	Size int64
	// IndexBody is the body of an index or manifest list (nil for other
	// manifests): its entries carry the platforms.
	IndexBody []byte
	Withdrawn bool
	// Children counts the manifests an index lists, ChildBytes sums
	// their sizes.
	Children   int
	ChildBytes int64
	// BlobBytes sums the sizes of the distinct blobs the manifest and its
	// children reference (config, layers, an index's blob entries), each
	// blob once.
	BlobBytes int64
}

// PullSize is what pulling the manifest and everything it lists downloads:
// the manifest, its children's manifests and each distinct blob once (every
// platform of an index; one platform's pull downloads less).
func (m ManifestSummary) PullSize() int64 { return m.Size + m.ChildBytes + m.BlobBytes }

// ReferrerCount counts the referrers of one subject of one artifact type.
type ReferrerCount struct {
	Subject digest.Digest
	// ArtifactType is the referrers' stored artifact type ("" when none:
	// an OCI image manifest with the standard config type, or an index
	// without artifactType); MediaType is their manifest media type.
	ArtifactType string
	MediaType    string
	Count        int
}

// BrowseTx holds the read-only listings of the web interface
// (docs/design/web.md, "Cost"). Each answers in one statement, reading by
// index a bounded number of rows per entry of the page, whatever the size of
// the registry; they take no locks and are meant for a View.
type BrowseTx interface {
	// NamespacePage lists up to f.Limit namespaces, in name order after
	// f.After, that f admits.
	NamespacePage(ctx context.Context, f NamespaceFilter) ([]NamespaceSummary, error)
	// RepositoryPage lists up to limit active repositories of the
	// namespace that hold a manifest, in name order after after, counting
	// the tags live at now up to tagCap+1.
	RepositoryPage(ctx context.Context, ns Namespace, now time.Time, after string, limit, tagCap int) ([]RepositorySummary, error)
	// LiveTagPage lists up to limit tags of the repository live at now and
	// not hidden, in name order after after, whose name starts with prefix
	// ("" any).
	LiveTagPage(ctx context.Context, repoID int64, now time.Time, after, prefix string, limit int) ([]Tag, error)
	// ManifestSummaries reads the manifests ds of the repository with
	// their children's and blobs' sizes, in digest order; digests not
	// stored there are left out.
	ManifestSummaries(ctx context.Context, repoID int64, ds []digest.Digest) ([]ManifestSummary, error)
	// ReferrerCounts counts the manifests of the repository, withdrawn ones
	// left out, whose subject is one of ds, by subject, artifact type and
	// media type, in that order.
	ReferrerCounts(ctx context.Context, repoID int64, ds []digest.Digest) ([]ReferrerCount, error)
}
