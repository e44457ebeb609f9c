package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/policy"
)

// Listings for the web interface (docs/design/web.md): pages of
// namespaces, of a namespace's repositories and of a repository's live
// tags, each read in one snapshot (store.View: no lock) with a bounded
// number of statements, whatever the size of the registry (meta.BrowseTx).
// Who may see what is the caller's decision: it passes the namespaces a
// visitor may see (NamespaceQuery) and asks only for those.

// Sizes of the pages: a limit of 0 or less takes the default, one above
// the maximum the maximum.
const (
	DefaultNamespacePage  = 50
	MaxNamespacePage      = 500
	DefaultRepositoryPage = 50
	MaxRepositoryPage     = 500
	DefaultTagPage        = 100
	MaxTagPage            = 500
	// MaxCountedTags is how far a repository listing counts a
	// repository's tags (RepositorySummary.MoreTags).
	MaxCountedTags = 1000
)

// pageLimit clamps a page size to (0, max], 0 or less taking def.
func pageLimit(n, def, max int) int {
	switch {
	case n <= 0:
		return def
	case n > max:
		return max
	}
	return n
}

// NamespaceQuery asks for a page of namespaces. With neither Names nor
// PublicOnly it lists every namespace (a registry administrator, or access
// control off); PublicOnly alone the public ones (an anonymous visitor);
// both, the public ones and those named (a signed-in user: the namespaces
// it holds grants on).
type NamespaceQuery struct {
	// After is the Next of the previous page ("" for the first).
	After string
	// Limit is the page size (DefaultNamespacePage, at most
	// MaxNamespacePage).
	Limit int
	// Names, when not nil, admits these namespaces (an empty slice none).
	Names []string
	// PublicOnly admits the public namespaces.
	PublicOnly bool
}

// NamespaceSummary is a namespace as the web interface lists it.
type NamespaceSummary struct {
	Name   string
	Public bool
	// Deleting: a purge of the namespace is running.
	Deleting  bool
	Retention Retention
	// Repositories counts its active repositories that hold a manifest
	// (those the catalog lists).
	Repositories int
	// Usage is what it holds, by the usage counters (docs/design/usage.md).
	Usage meta.Usage
	// Quota is the quota in force: its own, or the registry default
	// (QuotaDefault); nil when neither exists.
	Quota        *meta.Quota
	QuotaDefault bool
}

// NamespacePage is a page of namespaces in name order.
type NamespacePage struct {
	Namespaces []NamespaceSummary
	// Next is the After of the next page; "" when this one is the last.
	Next string
}

// Namespaces lists a page of the namespaces q admits, in name order, with
// their usage and quota. Cost: the namespaces' name index from q.After (a
// filter by names alone probes it per name; the public ones are found by
// walking it), then per namespace listed a few index probes and a count of
// its repositories.
func (r *Registry) Namespaces(ctx context.Context, q NamespaceQuery) (NamespacePage, error) {
	limit := pageLimit(q.Limit, DefaultNamespacePage, MaxNamespacePage)
	var out NamespacePage
	err := r.store.View(ctx, func(tx meta.Tx) error {
		out = NamespacePage{}
		rows, err := tx.NamespacePage(ctx, meta.NamespaceFilter{After: q.After, Limit: limit + 1, Names: q.Names, PublicOnly: q.PublicOnly})
		if err != nil {
			return err
		}
		if len(rows) > limit {
			rows = rows[:limit]
			out.Next = rows[limit-1].Name
		}
		def, err := tx.Quota(ctx, "")
		hasDefault := err == nil
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("reading the default quota: %w", err)
		}
		for _, n := range rows {
			s := NamespaceSummary{Name: n.Name, Public: n.Public, Deleting: n.State == meta.RepoDeleting, Retention: r.retentionOf(n.Namespace),
				Repositories: n.Repositories, Usage: n.Usage, Quota: n.Quota}
			if s.Quota == nil && hasDefault {
				q := def
				s.Quota, s.QuotaDefault = &q, true
			}
			out.Namespaces = append(out.Namespaces, s)
		}
		return nil
	})
	if err != nil {
		return NamespacePage{}, err
	}
	return out, nil
}

// RepositorySummary is a repository as the web interface lists it.
type RepositorySummary struct {
	Name string
	// Usage is what it holds, by the usage counters (Bytes, Manifests,
	// Blobs; docs/design/usage.md).
	meta.Usage
	// Tags counts its live tags, hidden ones left out, up to
	// MaxCountedTags; MoreTags says it has more.
	Tags     int
	MoreTags bool
	// LastPush is when a lifetime of one of its tags last started: the
	// last push under a tag, tag move or restore (a push by digest alone
	// does not count; berth's hidden tags do). Zero when it never had a
	// tag.
	LastPush time.Time
}

// RepositoryPage is a page of repositories in name order.
type RepositoryPage struct {
	Repositories []RepositorySummary
	// Next is the after of the next page; "" when this one is the last.
	Next string
}

// Repositories lists a page of the active repositories of namespace ns that
// hold a manifest (those the catalog lists), in name order after after, with
// their usage, tag count and last push. ErrNamespaceUnknown when ns does not
// exist. Cost: a range of the repositories' name index, then per repository
// listed a probe of its usage row, at most MaxCountedTags+1 entries of the
// live-tag index and the entries of its tag-history index.
func (r *Registry) Repositories(ctx context.Context, ns, after string, limit int) (RepositoryPage, error) {
	if err := validNamespace(ns); err != nil {
		return RepositoryPage{}, err
	}
	limit = pageLimit(limit, DefaultRepositoryPage, MaxRepositoryPage)
	now := r.now()
	var out RepositoryPage
	err := r.store.View(ctx, func(tx meta.Tx) error {
		out = RepositoryPage{}
		n, err := tx.Namespace(ctx, ns, meta.LockNone)
		if err != nil {
			return namespaceUnknown(ns, err)
		}
		rows, err := tx.RepositoryPage(ctx, n, now, after, limit+1, MaxCountedTags)
		if err != nil {
			return err
		}
		if len(rows) > limit {
			rows = rows[:limit]
			out.Next = rows[limit-1].Name
		}
		for _, rp := range rows {
			s := RepositorySummary{Name: rp.Name, Usage: rp.Usage, Tags: min(rp.Tags, MaxCountedTags), MoreTags: rp.Tags > MaxCountedTags}
			if rp.LastTagged != nil {
				s.LastPush = *rp.LastTagged
			}
			out.Repositories = append(out.Repositories, s)
		}
		return nil
	})
	if err != nil {
		return RepositoryPage{}, err
	}
	return out, nil
}

// TagQuery asks for a page of a repository's live tags.
type TagQuery struct {
	// After is the Next of the previous page ("" for the first).
	After string
	// Prefix, when not "", narrows the page to the tags whose name starts
	// with it.
	Prefix string
	// Limit is the page size (DefaultTagPage, at most MaxTagPage).
	Limit int
}

// AttachmentKind is what an attachment tag holds, by its suffix
// (oci.AttachmentSubject).
type AttachmentKind string

// The kinds of cosign's attachment tags.
const (
	AttachmentSignature   AttachmentKind = "signature"   // "<alg>-<hex>.sig"
	AttachmentAttestation AttachmentKind = "attestation" // "<alg>-<hex>.att"
	AttachmentSBOM        AttachmentKind = "sbom"        // "<alg>-<hex>.sbom"
)

// attachmentSuffixes maps cosign's suffixes to their kinds, in the order a
// tag summary lists them.
var attachmentSuffixes = []struct {
	suffix string
	kind   AttachmentKind
}{{".sig", AttachmentSignature}, {".att", AttachmentAttestation}, {".sbom", AttachmentSBOM}}

// ReferrerCount counts what is attached to a manifest, of one kind.
type ReferrerCount struct {
	// ArtifactType is the artifact type of manifests whose subject is the
	// manifest, as the referrers API reports it; "" for an attachment tag.
	ArtifactType string
	// Attachment is the kind of a live attachment tag named after the
	// manifest's digest ("sha256-<hex>.sig"…: cosign without the referrers
	// API); "" for referrers.
	Attachment AttachmentKind
	Count      int
}

// TagSummary is a live tag as the web interface lists it.
type TagSummary struct {
	Name         string
	Digest       digest.Digest
	MediaType    string
	ArtifactType string
	// Size is what pulling the tag downloads: the manifest, and its config
	// and layers, each blob once; for an index, every child manifest and
	// every distinct blob of them (and the index's own blob entries), as a
	// pull of every platform would (one platform's pull downloads less).
	// Index children are counted one level deep.
	Size int64
	// Platforms are those of an index's entries ("linux/amd64",
	// "linux/arm64/v8"), in the index's order, each once; entries for
	// "unknown/unknown" (build attestations) are left out. Nil for an
	// image.
	Platforms []string
	// Referrers count the manifests whose subject is the tag's manifest,
	// by artifact type (in order), then its attachment tags by kind.
	Referrers []ReferrerCount
	// AttachedTo is, for an attachment tag, the digest it is named after.
	AttachedTo digest.Digest
	// Start is when the tag's current lifetime started, and StartActor who
	// started it.
	Start      time.Time
	StartActor meta.Actor
	// ExpiresAt is the tag's expiry, nil for none; PulledAt its last
	// recorded pull, nil for none.
	ExpiresAt *time.Time
	PulledAt  *time.Time
	// Immutable is the ref of the immutable rule protecting the tag
	// (docs/design/policies.md), "" when none does.
	Immutable string
}

// TagPage is a page of live tags in name order.
type TagPage struct {
	Tags []TagSummary
	// Next is the After of the next page; "" when this one is the last.
	Next string
}

// validTagPrefix reports whether some tag name may start with p: the tag
// grammar is closed under prefixes, so a prefix is a tag itself.
func validTagPrefix(p string) bool { return p == "" || oci.ValidateTag(p) == nil }

// TagPage lists a page of the live tags of repo that are not hidden, in name
// order, with what each names: digest, size, platforms, referrers, expiry,
// last pull, the immutable rule protecting it. ErrNameUnknown when repo does
// not exist; a prefix no tag can start with lists nothing. Cost: one range
// of the live-tag index (repository, name) for the page, then for the
// page's manifests one statement each for their rows, their children, their
// blobs, their referrers and their attachment tags, and one for the
// repository's rules: never a statement per tag, never a scan of the
// repository.
func (r *Registry) TagPage(ctx context.Context, repo string, q TagQuery) (TagPage, error) {
	if err := validName(repo); err != nil {
		return TagPage{}, err
	}
	limit := pageLimit(q.Limit, DefaultTagPage, MaxTagPage)
	now := r.now()
	var out TagPage
	err := r.store.View(ctx, func(tx meta.Tx) error {
		out = TagPage{}
		rp, err := readRepo(ctx, tx, repo)
		if err != nil || !validTagPrefix(q.Prefix) {
			return err
		}
		tags, err := tx.LiveTagPage(ctx, rp.ID, now, q.After, q.Prefix, limit+1)
		if err != nil {
			return err
		}
		if len(tags) > limit {
			tags = tags[:limit]
			out.Next = tags[limit-1].Name
		}
		if len(tags) == 0 {
			return nil
		}
		out.Tags, err = r.summarize(ctx, tx, rp, tags, now)
		return err
	})
	if err != nil {
		return TagPage{}, err
	}
	return out, nil
}

// summarize reads what the tags name, for all of them at once.
func (r *Registry) summarize(ctx context.Context, tx meta.Tx, rp meta.Repository, tags []meta.Tag, now time.Time) ([]TagSummary, error) {
	var ds []digest.Digest
	for _, t := range tags {
		ds = append(ds, t.Manifest)
	}
	slices.Sort(ds)
	ds = slices.Compact(ds)
	ms, err := tx.ManifestSummaries(ctx, rp.ID, ds)
	if err != nil {
		return nil, err
	}
	byDigest := make(map[digest.Digest]meta.ManifestSummary, len(ms))
	for _, m := range ms {
		byDigest[m.Digest] = m
	}
	referrers, err := r.referrerCounts(ctx, tx, rp, ds, now)
	if err != nil {
		return nil, err
	}
	rules, err := r.immutableRules(ctx, tx, rp.Name)
	if err != nil {
		return nil, err
	}
	out := make([]TagSummary, 0, len(tags))
	for _, t := range tags {
		s := TagSummary{Name: t.Name, Digest: t.Manifest, Start: t.Start, StartActor: t.StartActor, ExpiresAt: t.ExpiresAt, PulledAt: t.PulledAt,
			Referrers: referrers[t.Manifest]}
		if m, ok := byDigest[t.Manifest]; ok {
			s.MediaType, s.ArtifactType, s.Size = m.MediaType, m.ArtifactType, m.PullSize()
			s.Platforms = platforms(m)
		}
		if d, ok := oci.AttachmentSubject(t.Name); ok {
			s.AttachedTo = d
		}
		if rule, ok := policy.Immutable(rules, t.Name); ok {
			s.Immutable = rule.Ref()
		}
		out = append(out, s)
	}
	return out, nil
}

// referrerCounts counts, for each of ds, its referrers by artifact type and
// its live attachment tags (not hidden) by kind.
func (r *Registry) referrerCounts(ctx context.Context, tx meta.Tx, rp meta.Repository, ds []digest.Digest, now time.Time) (map[digest.Digest][]ReferrerCount, error) {
	rows, err := tx.ReferrerCounts(ctx, rp.ID, ds)
	if err != nil {
		return nil, err
	}
	out := map[digest.Digest][]ReferrerCount{}
	for _, c := range rows {
		at := c.ArtifactType
		if at == "" && c.MediaType == oci.MediaTypeOCIManifest {
			// What the referrers API reports: the config's type, the
			// standard one (another would be the stored artifact type).
			at = oci.MediaTypeOCIConfig
		}
		rcs := out[c.Subject]
		if i := slices.IndexFunc(rcs, func(rc ReferrerCount) bool { return rc.ArtifactType == at }); i >= 0 {
			rcs[i].Count += c.Count
		} else {
			rcs = append(rcs, ReferrerCount{ArtifactType: at, Count: c.Count})
		}
		out[c.Subject] = rcs
	}
	for d, rcs := range out {
		slices.SortFunc(rcs, func(a, b ReferrerCount) int { return strings.Compare(a.ArtifactType, b.ArtifactType) })
		out[d] = rcs
	}
	var names []meta.RepoTag
	for _, d := range ds {
		for _, a := range attachmentSuffixes {
			names = append(names, meta.RepoTag{RepoID: rp.ID, Name: d.Algorithm().String() + "-" + d.Encoded() + a.suffix})
		}
	}
	live, err := tx.LiveTagsNamed(ctx, names, now)
	if err != nil {
		return nil, err
	}
	found := map[string]bool{}
	for _, t := range live {
		found[t.Name] = !t.Hidden
	}
	for _, d := range ds {
		for _, a := range attachmentSuffixes {
			if found[d.Algorithm().String()+"-"+d.Encoded()+a.suffix] {
				out[d] = append(out[d], ReferrerCount{Attachment: a.kind, Count: 1})
			}
		}
	}
	return out, nil
}

// platforms lists the platforms of an index's entries, each once, in
// order; nil for anything else (or a body that no longer parses).
func platforms(m meta.ManifestSummary) []string {
	if m.IndexBody == nil {
		return nil
	}
	pm, err := oci.ParseManifest(m.MediaType, m.IndexBody)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range pm.Manifests {
		p := e.Platform
		if p == nil || p.OS == "" && p.Architecture == "" || p.OS == "unknown" && p.Architecture == "unknown" {
			continue
		}
		s := p.OS + "/" + p.Architecture
		if p.Variant != "" {
			s += "/" + p.Variant
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
