// Package registry holds berth's use cases — push, pull, tag, restore and
// delete — over the metadata store (meta.Store) and the byte store
// (blob.Store). It knows nothing of HTTP: the api package parses requests,
// calls one method here and maps the returned error with errors.Is.
//
// Every write follows docs/design/gc.md: it takes the locks of the "Locks"
// table and records the reviews of the "Who records which review" table in
// the same store.Update closure. Request bodies are streamed into the byte
// store outside any transaction (SQLite has a single writer), and bytes are
// written before the rows that name them, deleted only after the rows that
// named them are gone.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/review"
)

// Options configures a Registry.
type Options struct {
	// Policy holds the windows the registry records reviews at and
	// protects with (grace, upload expiry, tag retention). It must be the
	// collector's (internal/app gives both the same value) and valid
	// (Policy.Validate). Zero is zero: review.DefaultPolicy has the
	// production values.
	Policy review.Policy
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives debug notes about best-effort cleanups; default discards.
	Logger *slog.Logger
	// Events, if set, is called after each committed change.
	Events func(Event)
	// Limits bound the upload sessions and blob sizes clients may open and
	// send (docs/design/limits.md); the zero value limits nothing.
	Limits Limits
	// PullInterval is how often at most a tag's pull is recorded (a GET or
	// HEAD of a manifest by tag; docs/design/policies.md, "Pull
	// tracking"); 0 records every pull.
	PullInterval time.Duration
	// Registerer, if set, receives the registry's metrics (the pulls
	// recorded and dropped).
	Registerer prometheus.Registerer
	// SplitLimit is the most manifests a usage split classifies (Usage
	// with split); 0 is MaxSplitManifests.
	SplitLimit int
}

// Limits bound what clients may open and send. A zero field is unlimited.
type Limits struct {
	// UploadSessions caps the sessions open (active within the upload
	// expiry) in the whole registry. Enforced without a registry-wide
	// lock, so concurrent StartUploads may overshoot it by at most their
	// number.
	UploadSessions int
	// UploadSessionsPerRepository caps the sessions open in one
	// repository, exactly.
	UploadSessionsPerRepository int
	// BlobSize caps the bytes of one uploaded blob.
	BlobSize int64
}

// Event is a committed change, for in-process hooks: one of the registry's
// names of internal/event. The collector package defines its own, richer
// events.
type Event struct {
	Kind   event.Name
	Repo   string
	Digest string
	Tag    string
	At     time.Time
	// Actor made the change (the request context's, see WithActor).
	Actor meta.Actor
}

// Registry runs the use cases. Close it when done: it writes the pulls it
// has not yet recorded.
type Registry struct {
	store meta.Store
	blobs blob.Store
	opts  Options
	log   *slog.Logger
	pulls *pullRecorder
}

// New returns a Registry over store and blobs.
func New(store meta.Store, blobs blob.Store, opts Options) *Registry {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{store: store, blobs: blobs, opts: opts, log: log,
		pulls: newPullRecorder(store, opts.PullInterval, log, opts.Registerer)}
}

// Close stops the registry's background work: it writes the pulls not yet
// recorded, within ctx (the store must still be open). Pulls after Close
// are not recorded; the use cases keep working.
func (r *Registry) Close(ctx context.Context) error {
	if err := r.pulls.close(ctx); err != nil {
		return fmt.Errorf("recording the last tag pulls: %w", err)
	}
	return nil
}

func (r *Registry) now() time.Time { return r.opts.Now().UTC() }

func (r *Registry) emit(ctx context.Context, kind event.Name, repo string, d digest.Digest, tag string, at time.Time) {
	if r.opts.Events != nil {
		r.opts.Events(Event{Kind: kind, Repo: repo, Digest: d.String(), Tag: tag, At: at, Actor: ActorFrom(ctx)})
	}
}

func validName(name string) error {
	if err := oci.ValidateRepoName(name); err != nil {
		return err
	}
	return nil
}

func parseDigest(s string) (digest.Digest, error) {
	d, err := oci.ParseDigest(s)
	if err != nil {
		return "", err
	}
	return d, nil
}

// retention is the removed-tag window of the namespace of repo.
func (r *Registry) retention(ctx context.Context, tx meta.Tx, repo meta.Repository) (time.Duration, error) {
	return gc.Retention(ctx, tx, repo.Name, r.opts.Policy.TagRetention)
}

// readRepo reads a repository for a read: ErrNameUnknown if absent.
func readRepo(ctx context.Context, tx meta.Tx, name string) (meta.Repository, error) {
	repo, err := tx.Repository(ctx, name, meta.LockNone)
	if errors.Is(err, meta.ErrNotFound) {
		return repo, fmt.Errorf("repository %q: %w", name, ErrNameUnknown)
	}
	if err != nil {
		return repo, fmt.Errorf("reading repository %q: %w", name, err)
	}
	return repo, nil
}

// writeRepo returns the repository for a write that must not create it
// (deletes): it locks the repository and its namespace FOR SHARE so that a
// purge cannot start under the write, and refuses one being purged.
func writeRepo(ctx context.Context, tx meta.Tx, name string) (meta.Repository, error) {
	repo, err := tx.Repository(ctx, name, meta.LockShare)
	if errors.Is(err, meta.ErrNotFound) {
		return repo, fmt.Errorf("repository %q: %w", name, ErrNameUnknown)
	}
	if err != nil {
		return repo, fmt.Errorf("reading repository %q: %w", name, err)
	}
	ns, _ := oci.SplitRepo(name)
	n, err := tx.Namespace(ctx, ns, meta.LockShare)
	if err != nil {
		return repo, fmt.Errorf("reading namespace %q: %w", ns, err)
	}
	if repo.State == meta.RepoDeleting || n.State == meta.RepoDeleting {
		return repo, fmt.Errorf("repository %q is being deleted: %w (%w)", name, ErrDenied, meta.ErrRepoDeleting)
	}
	return repo, nil
}

// ensureRepo is tx.EnsureRepository with ErrRepoDeleting mapped to ErrDenied.
func ensureRepo(ctx context.Context, tx meta.Tx, name string, now time.Time) (meta.Repository, error) {
	repo, err := tx.EnsureRepository(ctx, name, now)
	if errors.Is(err, meta.ErrRepoDeleting) {
		return repo, fmt.Errorf("repository %q is being deleted and accepts no writes: %w (%w)", name, ErrDenied, err)
	}
	if err != nil {
		return repo, fmt.Errorf("opening repository %q for writing: %w", name, err)
	}
	return repo, nil
}

func isNotFound(err error) bool { return errors.Is(err, meta.ErrNotFound) }
