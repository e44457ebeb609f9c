// Package meta defines berth's metadata store: the data model of DESIGN.md §2,
// the transaction interface the registry and the collector work through, and
// the sentinel errors every backend returns.
//
// A Store runs closures in transactions (Update, View); a write that can
// orphan something records its review inside the same closure. Locking is part
// of the contract: methods that take a Lock argument lock the rows they read
// (FOR SHARE / FOR UPDATE on PostgreSQL; on SQLite every Update holds the
// single writer lock, so the argument is satisfied by construction).
package meta

import (
	"context"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/review"
)

// Sentinel errors. Backends wrap them with %w; callers compare with errors.Is.
var (
	ErrNotFound       = errors.New("meta: not found")
	ErrRepoDeleting   = errors.New("meta: repository is being deleted")
	ErrConflict       = errors.New("meta: conflicting concurrent write")
	ErrSchemaUnknown  = errors.New("meta: database schema is newer than this berth")
	ErrSchemaOutdated = errors.New("meta: database schema needs migrating (run berth migrate)")
	// ErrPreempted: a Preemptible transaction was rolled back for a
	// foreground one; nothing it did was committed.
	ErrPreempted = errors.New("meta: background transaction rolled back for a foreground one")
)

// Lock says how a read inside an Update locks the rows it returns.
type Lock int

const (
	LockNone   Lock = iota // plain read
	LockShare              // FOR SHARE: the row cannot be deleted or changed until commit
	LockUpdate             // FOR UPDATE: exclusive; the collector takes it before deciding
)

// Repository states.
const (
	RepoActive   = "active"
	RepoDeleting = "deleting"
)

// Namespace owns repositories and holds the time-machine window.
type Namespace struct {
	ID    int64
	Name  string
	State string // RepoActive or RepoDeleting (a namespace purge is running)
	// TagRetention is the removed-tag retention window; nil means the
	// server's default (--tag-retention).
	TagRetention *time.Duration
	// Public lets anonymous clients pull (berth namespace visibility).
	Public bool
}

// Repository is namespace/name[/...].
type Repository struct {
	ID          int64
	NamespaceID int64
	Name        string // full name, "namespace/rest"
	State       string
	CreatedAt   time.Time
}

// Tag is one lifetime of a tag name. A tag is never updated in place except
// to end it (End) or to set its expiry (ExpiresAt).
type Tag struct {
	ID        int64
	RepoID    int64
	Name      string
	Manifest  digest.Digest
	Start     time.Time
	End       *time.Time // set when the lifetime ended (deleted, moved, expired)
	ExpiresAt *time.Time // a live tag with an expiry ends at this time
	Hidden    bool
	// StartActor started the lifetime (push, tag, restore); EndActor and
	// EndCause are set with End. "" is unknown (rows written before
	// actors were recorded).
	StartActor Actor
	EndActor   Actor
	EndCause   EndCause
	// EndRule is the ref of the policy that pruned the lifetime
	// (EndCause CausePolicy); "" otherwise.
	EndRule string
	// PulledAt is the last recorded pull of the lifetime (a GET or HEAD
	// by tag), written at most once per pull interval; nil: never.
	PulledAt *time.Time
}

// EffectiveEnd is when the lifetime ends or ended: End, else ExpiresAt, else nil.
func (t Tag) EffectiveEnd() *time.Time {
	if t.End != nil {
		return t.End
	}
	return t.ExpiresAt
}

// LiveAt reports whether the tag is live at now.
func (t Tag) LiveAt(now time.Time) bool {
	end := t.EffectiveEnd()
	return end == nil || end.After(now)
}

// Manifest is a manifest or index stored in one repository.
type Manifest struct {
	RepoID       int64
	Digest       digest.Digest
	MediaType    string
	ArtifactType string
	Subject      digest.Digest // "" when none
	Size         int64
	Body         []byte
	// PushedAt is when the manifest was last PUT; the untagged grace runs
	// from it (root 4 of DESIGN.md §3).
	PushedAt time.Time
	// DeletedAt is set when a DELETE by digest withdrew the manifest: it
	// answers 404 but its row and edges stay while the time machine can
	// bring it back (docs/design/gc.md). nil: not withdrawn.
	DeletedAt *time.Time
}

// Withdrawn reports whether a DELETE by digest withdrew the manifest.
func (m Manifest) Withdrawn() bool { return m.DeletedAt != nil }

// ManifestRefs are the rows DeleteManifest removed with a manifest: the
// collector reviews each of them next.
type ManifestRefs struct {
	Blobs    []digest.Digest
	Children []digest.Digest
	LabelIDs []int64
}

// ManifestEdges are the rows a manifest PUT records beside the manifest, so
// the collector can walk them without parsing JSON.
type ManifestEdges struct {
	Blobs    []digest.Digest   // config and layers; an index's blob entries
	Children []digest.Digest   // index / manifest-list entries that are manifests
	Labels   map[string]string // from annotations and config labels
}

// Blob is the one global row per digest.
type Blob struct {
	Digest     digest.Digest
	Size       int64
	StorageKey string
	CreatedAt  time.Time
}

// Upload is an in-progress upload session.
type Upload struct {
	ID        string
	RepoID    int64
	Size      int64 // bytes received so far
	StartedAt time.Time
	UpdatedAt time.Time
}

// Review is one pending decision for the collector. Kind, Object and Cause
// are internal/review's vocabulary: build Object with its constructors,
// read it with review.Parse.
type Review struct {
	Kind        review.Kind
	Object      string
	ReviewAfter time.Time
	Attempts    int
	// Cause is why the review was recorded; behaviour keys on it.
	Cause review.Cause
	// Reason says it in words, for people and logs.
	Reason string
}

// ReviewFilter narrows ClaimReviews to some kinds (all if empty). The
// collector claims one kind at a time with CollectTx.ClaimDue, which also
// takes an object prefix; ClaimReviews serves the purges.
type ReviewFilter struct {
	Kinds []review.Kind
}

// Tombstone is a deleted blob row whose bytes are not yet deleted.
type Tombstone struct {
	StorageKey string
	Since      time.Time
}

// ReviewStats summarizes the review queue.
type ReviewStats struct {
	Pending int64
	Due     int64 // review_after <= now
	Overdue int64 // review_after <= now - overdue threshold
}

// Store is the metadata store.
type Store interface {
	// Update runs fn in a read-write transaction and commits if fn returns
	// nil. It may run fn more than once when the database reports a
	// serialization conflict, so fn must not have side effects outside tx.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(tx Tx) error) error
	// SyncCommitted makes every transaction committed so far, by any
	// process, durable. A store may commit background transactions
	// (Background) without waiting for the disk (SQLite): whoever acts
	// outside the database on what one of them wrote calls it first — the
	// collector before it deletes the bytes of committed tombstones
	// (docs/design/gc.md, "The collector's commits wait for no fsync").
	SyncCommitted(ctx context.Context) error
	Close() error
}

// Tx is one transaction. Methods return ErrNotFound (wrapped) when the row
// they look for is absent.
type Tx interface {
	RepoTx
	TagTx
	ManifestTx
	BlobTx
	UploadTx
	ReviewTx
	AccountTx
	SessionTx
	PolicyTx
	PreviewTx
	UsageTx
	CollectTx
	DryRunTx
	SplitTx
	BrowseTx
}

// RepoTx covers namespaces and repositories.
type RepoTx interface {
	Namespace(ctx context.Context, name string, lock Lock) (Namespace, error)
	SetNamespaceState(ctx context.Context, id int64, state string) error
	DeleteNamespace(ctx context.Context, id int64) error
	// NamespaceRepositories lists repositories of the namespace (any state).
	NamespaceRepositories(ctx context.Context, nsID int64, limit int) ([]Repository, error)
	// CreateNamespace inserts an active namespace with the given window
	// (nil: the server's default) unless one of that name exists; created
	// reports which, and ns is the row either way.
	CreateNamespace(ctx context.Context, name string, retention *time.Duration) (ns Namespace, created bool, err error)
	// SetNamespaceRetention sets the window of an existing namespace;
	// ErrNotFound when there is none (it never creates one).
	SetNamespaceRetention(ctx context.Context, name string, retention *time.Duration) (Namespace, error)
	// Repository reads a repository by name with the given lock.
	Repository(ctx context.Context, name string, lock Lock) (Repository, error)
	RepositoryByID(ctx context.Context, id int64, lock Lock) (Repository, error)
	// EnsureRepository returns the repository for a write, creating it (and
	// its namespace) if needed, and locks it and its namespace FOR SHARE so
	// a purge cannot start under the write. ErrRepoDeleting if either is
	// being purged.
	EnsureRepository(ctx context.Context, name string, now time.Time) (Repository, error)
	// Repositories lists, in order, the names after last of the active
	// repositories that hold at least one manifest (the catalog): a
	// repository with only blobs, an upload session, or nothing is left out.
	Repositories(ctx context.Context, prefix, last string, n int) ([]string, error)
	SetRepositoryState(ctx context.Context, id int64, state string) error
	DeleteRepository(ctx context.Context, id int64) error
	// RepositoryIsEmpty reports whether no tag, manifest, link, uploaded
	// blob or upload row refers to the repository.
	RepositoryIsEmpty(ctx context.Context, id int64) (bool, error)
}

// TagTx covers tag lifetimes.
type TagTx interface {
	// LiveTag is the tag's live row at now.
	LiveTag(ctx context.Context, repoID int64, name string, now time.Time) (Tag, error)
	TagByID(ctx context.Context, id int64, lock Lock) (Tag, error)
	// PutTag ends the current row of (repo, name), if any, at now, moved
	// by t.StartActor (or at its expiry if that passed, expired by
	// ActorCollector) and inserts a new live row. It returns the row it
	// ended, or nil.
	PutTag(ctx context.Context, t Tag) (ended *Tag, err error)
	// EndTag sets lifetime_end of a live row, and who ended it and why.
	EndTag(ctx context.Context, id int64, at time.Time, actor Actor, cause EndCause) error
	SetTagExpiry(ctx context.Context, id int64, at *time.Time) error
	DeleteTag(ctx context.Context, id int64) error
	// Tags lists names of live tags after last, in order.
	Tags(ctx context.Context, repoID int64, now time.Time, last string, n int) ([]string, error)
	// TagHistory lists every row of a tag name (all names if name is ""),
	// newest first.
	TagHistory(ctx context.Context, repoID int64, name string, limit int) ([]Tag, error)
	// TagsForManifest lists the rows (live or ended) pointing at the
	// manifest: live rows first, then ended ones, most recently ended first,
	// so the first limit rows always hold the reasons it may be alive.
	TagsForManifest(ctx context.Context, repoID int64, d digest.Digest, limit int) ([]Tag, error)
	// ExpiredTags lists live rows whose expiry passed, oldest first: of
	// repository repoID, or of every repository when repoID is 0.
	ExpiredTags(ctx context.Context, repoID int64, now time.Time, limit int) ([]Tag, error)
	// RepoTags lists any rows of the repository (for purge).
	RepoTags(ctx context.Context, repoID int64, limit int) ([]Tag, error)
	// ForgetTags deletes up to limit ended rows of the tag name (those
	// whose lifetime_end is set and before before), oldest end first, and
	// returns them: a permanent delete out of the time machine. A row with
	// no lifetime_end, the live one, is never touched.
	ForgetTags(ctx context.Context, repoID int64, name string, before time.Time, limit int) ([]Tag, error)
}

// ManifestTx covers manifests, their edges and labels.
type ManifestTx interface {
	Manifest(ctx context.Context, repoID int64, d digest.Digest, lock Lock) (Manifest, error)
	// PutManifest inserts the manifest and its edges unless the digest is
	// already stored in the repository; created reports which.
	PutManifest(ctx context.Context, m Manifest, e ManifestEdges) (created bool, err error)
	// PutManifest on an existing digest refreshes PushedAt and clears
	// DeletedAt (a re-PUT brings a withdrawn manifest back).
	// WithdrawManifest marks a manifest withdrawn at (DELETE by digest);
	// RestoreManifest clears the mark, and that of the links of its blobs.
	// Both need the row locked FOR UPDATE.
	WithdrawManifest(ctx context.Context, repoID int64, d digest.Digest, at time.Time) error
	RestoreManifest(ctx context.Context, repoID int64, d digest.Digest) error
	// ManifestChildren lists the children of an index, in digest order.
	ManifestChildren(ctx context.Context, repoID int64, d digest.Digest) ([]digest.Digest, error)
	// DeleteManifest deletes the manifest row and the edges it owns
	// (children, blobs, labels) and returns what they pointed at.
	DeleteManifest(ctx context.Context, repoID int64, d digest.Digest) (ManifestRefs, error)
	// ManifestParents lists indexes in the repository that reference d;
	// withdrawn parents too when withdrawn is true.
	ManifestParents(ctx context.Context, repoID int64, d digest.Digest, withdrawn bool, limit int) ([]digest.Digest, error)
	// Referrers lists manifests whose subject is d, filtered by
	// artifactType when it is not "", locked with lock.
	Referrers(ctx context.Context, repoID int64, subject digest.Digest, artifactType string, lock Lock) ([]Manifest, error)
	// ManifestLabels returns the labels of a manifest.
	ManifestLabels(ctx context.Context, repoID int64, d digest.Digest) (map[string]string, error)
	// RepoManifests lists digests of manifests of the repository that no
	// other manifest of it references as a child (for purge, parents first).
	RepoManifests(ctx context.Context, repoID int64, limit int) ([]digest.Digest, error)
	// Label locks a label row and reports whether any manifest uses it.
	LabelInUse(ctx context.Context, id int64) (exists, used bool, err error)
	DeleteLabel(ctx context.Context, id int64) error
}

// BlobTx covers blobs, repository links, uploaded-blob markers and tombstones.
type BlobTx interface {
	Blob(ctx context.Context, d digest.Digest, lock Lock) (Blob, error)
	// InsertBlob inserts a blob row; if one exists for the digest it
	// returns that row (locked FOR SHARE) and created=false.
	InsertBlob(ctx context.Context, b Blob) (row Blob, created bool, err error)
	DeleteBlob(ctx context.Context, d digest.Digest) error
	// BlobLinked reports whether any repository links the blob.
	BlobLinked(ctx context.Context, d digest.Digest) (bool, error)
	// RepoBlob returns the blob if the repository links it (a withdrawn
	// link is ErrNotFound), locking the link and the blob row with lock.
	RepoBlob(ctx context.Context, repoID int64, d digest.Digest, lock Lock) (Blob, error)
	// Link locks the link row, withdrawn or not (for the collector), and
	// reports whether it is withdrawn.
	Link(ctx context.Context, repoID int64, d digest.Digest, lock Lock) (withdrawn bool, err error)
	// LinkBlob links the blob to the repository, bringing a withdrawn link
	// back.
	LinkBlob(ctx context.Context, repoID int64, d digest.Digest, now time.Time) error
	// WithdrawLink marks a link withdrawn at (a DELETE of a blob that only
	// withdrawn manifests reference): the blob answers 404 in the
	// repository, but the link stays while those manifests are stored.
	WithdrawLink(ctx context.Context, repoID int64, d digest.Digest, at time.Time) error
	// BlobReferenced reports whether a manifest of the repository that is
	// not withdrawn references the blob; withdrawn manifests count too when
	// withdrawn is true.
	BlobReferenced(ctx context.Context, repoID int64, d digest.Digest, withdrawn bool) (bool, error)
	UnlinkBlob(ctx context.Context, repoID int64, d digest.Digest) error
	// LinkInUse reports whether a manifest of the repository references the
	// blob or an unexpired uploaded_blob marker protects it at now.
	LinkInUse(ctx context.Context, repoID int64, d digest.Digest, now time.Time) (bool, error)
	// RepoLinks lists blobs linked to the repository (for purge).
	RepoLinks(ctx context.Context, repoID int64, limit int) ([]digest.Digest, error)
	// PutUploadedBlob creates or extends the marker to expiresAt.
	PutUploadedBlob(ctx context.Context, repoID int64, d digest.Digest, expiresAt time.Time) error
	UploadedBlobExpiry(ctx context.Context, repoID int64, d digest.Digest) (time.Time, error)
	DeleteUploadedBlob(ctx context.Context, repoID int64, d digest.Digest) error
	DeleteRepoUploadedBlobs(ctx context.Context, repoID int64) (int64, error)

	PutTombstone(ctx context.Context, t Tombstone) error
	Tombstones(ctx context.Context, limit int) ([]Tombstone, error)
	// DeleteTombstones clears the tombstones of keys (whose bytes are gone)
	// in one statement; keys without one are no error.
	DeleteTombstones(ctx context.Context, keys []string) error
	// StorageKeyKnown reports whether a blob row or a tombstone names key.
	StorageKeyKnown(ctx context.Context, key string) (bool, error)
}

// UploadTx covers upload sessions.
type UploadTx interface {
	CreateUpload(ctx context.Context, u Upload) error
	Upload(ctx context.Context, id string, lock Lock) (Upload, error)
	SetUploadSize(ctx context.Context, id string, size int64, now time.Time) error
	DeleteUpload(ctx context.Context, id string) error
	RepoUploads(ctx context.Context, repoID int64, limit int) ([]Upload, error)
	UploadKnown(ctx context.Context, id string) (bool, error)
	// LockRepoUploads serializes, until the transaction ends, the
	// transactions that open upload sessions in the repository, so that
	// counting its sessions and inserting one is atomic (PostgreSQL: a
	// transaction-scoped advisory lock; SQLite: the single writer already
	// does it). It conflicts with nothing else.
	LockRepoUploads(ctx context.Context, repoID int64) error
	// CountUploads counts the sessions of the repository (of every
	// repository when repoID is 0) last active after since (UpdatedAt >
	// since), stopping at limit: the result is min(count, limit).
	CountUploads(ctx context.Context, repoID int64, since time.Time, limit int) (int, error)
}

// ReviewTx covers the collector's work queue.
type ReviewTx interface {
	// AddReview upserts a review: a new row, or an existing one whose
	// review_after moves forward to after if that is later, taking r's
	// cause and reason with it. A pending review is never dropped or moved
	// earlier by AddReview.
	AddReview(ctx context.Context, r Review) error
	// ScheduleReview is AddReview returning the review_after now stored:
	// r.ReviewAfter, or a later time a pending review already had.
	ScheduleReview(ctx context.Context, r Review) (time.Time, error)
	// RescheduleReview sets the review of (r.Kind, r.Object) to
	// r.ReviewAfter (earlier or later), counts an attempt and records
	// r.Cause and r.Reason; it inserts the review if none is pending. A
	// caller that only moves a claimed review passes its cause back.
	RescheduleReview(ctx context.Context, r Review) error
	// ExpediteReview upserts a review due at r.ReviewAfter or earlier: a
	// new row, or an existing one moved earlier to r.ReviewAfter (never
	// later), taking r's cause and reason when it moves. Evaluations that
	// must happen soon (a push to a repository with a count rule) use it.
	ExpediteReview(ctx context.Context, r Review) error
	// PostponeReview moves a pending review to until if it is due earlier;
	// it reports whether a review was pending. Reads call it only after
	// PendingReview says one exists, so hot paths stay read-only.
	PostponeReview(ctx context.Context, kind review.Kind, object string, until time.Time) (bool, error)
	// PendingReview reports whether a review of the object is pending, and
	// when it is due.
	PendingReview(ctx context.Context, kind review.Kind, object string) (after time.Time, pending bool, err error)
	// ClaimReviews returns up to limit due reviews matching f, locked for
	// this transaction; other claimers skip them.
	ClaimReviews(ctx context.Context, now time.Time, f ReviewFilter, limit int) ([]Review, error)
	DeleteReview(ctx context.Context, kind review.Kind, object string) error
	ReviewStats(ctx context.Context, now time.Time, overdue time.Duration) (ReviewStats, error)
	// NextReview is the earliest review_after in the queue, if any.
	NextReview(ctx context.Context) (*time.Time, error)
}
