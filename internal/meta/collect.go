package meta

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/review"
)

// RepoDigest names a repository-scoped object: a manifest, a link
// (repository_blob) or an uploaded-blob marker.
type RepoDigest struct {
	RepoID int64
	Digest digest.Digest
}

// RepoTag names a tag of a repository.
type RepoTag struct {
	RepoID int64
	Name   string
}

// CollectTx is the collector's set-based work (docs/design/gc.md, "Deciding
// sets"). Every method takes a bounded set of keys — one batch, never a list
// that grows with the registry — and answers in a fixed number of
// statements, whatever the set's size.
//
// The Lock… methods lock the rows they return FOR UPDATE and skip rows that
// another transaction holds (PostgreSQL's SKIP LOCKED): the collector never
// waits for a candidate. A key they return in skipped exists but is held by
// another transaction (a writer adding an edge, or another collector); a key
// in neither list is absent. On SQLite every Update holds the single writer
// lock, so nothing is ever skipped.
type CollectTx interface {
	// ClaimDue returns up to limit due reviews of one kind whose object
	// starts with prefix ("" for all), locked for this transaction;
	// reviews another transaction holds are skipped.
	ClaimDue(ctx context.Context, kind review.Kind, now time.Time, prefix string, limit int) ([]Review, error)
	// StoredReviews returns when each pending review of kind among objects
	// is due.
	StoredReviews(ctx context.Context, kind review.Kind, objects []string) (map[string]time.Time, error)
	// DeleteDueReviews deletes the reviews of kind among objects that are
	// due at now and that no other transaction holds.
	DeleteDueReviews(ctx context.Context, kind review.Kind, objects []string, now time.Time) error
	// DeleteReviews deletes the reviews of kind among objects.
	DeleteReviews(ctx context.Context, kind review.Kind, objects []string) error
	// ScheduleReviews is AddReview for each review, in one statement; the
	// caller passes them sorted by (kind, object) without duplicates.
	ScheduleReviews(ctx context.Context, rs []Review) error

	LockTagRows(ctx context.Context, ids []int64) (rows []TagRow, skipped []int64, err error)
	DeleteTagRows(ctx context.Context, ids []int64) error

	LockManifestFacts(ctx context.Context, keys []RepoDigest) (facts []ManifestFacts, skipped []RepoDigest, err error)
	// DeleteManifests deletes the manifests with the edges they own and
	// returns what those edges, and the referrers of the manifests,
	// pointed at.
	DeleteManifests(ctx context.Context, keys []RepoDigest) (ManifestSetRefs, error)
	// EndLiveTags ends at at, by actor for cause, the rows of the named
	// tags that are live at at (no end, no expiry passed), and returns
	// them ended. A row another transaction holds is left to it.
	EndLiveTags(ctx context.Context, tags []RepoTag, at time.Time, actor Actor, cause EndCause) ([]Tag, error)

	LockUploadedBlobs(ctx context.Context, keys []RepoDigest) (rows []UploadedBlobRow, skipped []RepoDigest, err error)
	DeleteUploadedBlobs(ctx context.Context, keys []RepoDigest) error

	// LockLinkFacts locks links, withdrawn or not.
	LockLinkFacts(ctx context.Context, keys []RepoDigest) (facts []LinkFacts, skipped []RepoDigest, err error)
	// DeleteLinks deletes the links and their uploaded-blob markers.
	DeleteLinks(ctx context.Context, keys []RepoDigest) error

	LockBlobFacts(ctx context.Context, digests []digest.Digest) (facts []BlobFacts, skipped []digest.Digest, err error)
	// DeleteBlobs deletes the blob rows and records a tombstone for each
	// storage key.
	DeleteBlobs(ctx context.Context, digests []digest.Digest, tombs []Tombstone) error

	LockLabelFacts(ctx context.Context, ids []int64) (facts []LabelFacts, skipped []int64, err error)
	DeleteLabels(ctx context.Context, ids []int64) error

	LockUploads(ctx context.Context, ids []string) (rows []Upload, skipped []string, err error)
	DeleteUploads(ctx context.Context, ids []string) error
}

// TagRow is a tag row with what deciding it needs: its repository's name
// and its namespace's window.
type TagRow struct {
	Tag
	Repository string
	Retention  *time.Duration // nil: the server's default
}

// ManifestFacts are every root and edge of DESIGN.md §3 that can keep a
// manifest, read in one statement.
type ManifestFacts struct {
	RepoDigest
	Repository string
	Retention  *time.Duration // the namespace's window; nil: the default
	PushedAt   time.Time
	DeletedAt  *time.Time // withdrawn
	Subject    digest.Digest
	// LiveTag names a live tag row on the manifest ("" when none).
	LiveTag string
	// LastEnd and LastEndTag are the most recently ended tag row on it.
	LastEnd    *time.Time
	LastEndTag string
	// Parent is an index of the repository listing it, withdrawn or not.
	Parent digest.Digest
	// SubjectStored: the subject's row exists (withdrawn or not).
	SubjectStored bool
}

// ManifestSetRefs are what the deleted manifests' edges pointed at, each
// listed once.
type ManifestSetRefs struct {
	Blobs     []RepoDigest // links the manifests used
	Children  []RepoDigest
	Referrers []RepoDigest // manifests whose subject was deleted
	Labels    []int64
}

// UploadedBlobRow is an uploaded-blob marker.
type UploadedBlobRow struct {
	RepoDigest
	Repository string
	ExpiresAt  time.Time
}

// LinkFacts say what can keep a link.
type LinkFacts struct {
	RepoDigest
	Repository string
	// Used: a manifest of the repository (withdrawn or not) lists the blob.
	Used bool
	// Marker is the expiry of the uploaded-blob marker, if any.
	Marker *time.Time
}

// BlobFacts say what can keep a blob row.
type BlobFacts struct {
	Blob
	Linked bool // a repository links it
}

// LabelFacts say whether a label is used.
type LabelFacts struct {
	ID   int64
	Used bool
}
