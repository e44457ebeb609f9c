package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// BlobInfo describes a blob as a repository serves it.
type BlobInfo struct {
	Digest digest.Digest
	Size   int64
}

// StatBlob reports the blob d of repo, reviving it if the collector has a
// review pending on it.
func (r *Registry) StatBlob(ctx context.Context, repo, d string) (BlobInfo, error) {
	b, err := r.readBlob(ctx, repo, d)
	if err != nil {
		return BlobInfo{}, err
	}
	return BlobInfo{Digest: b.Digest, Size: b.Size}, nil
}

// OpenBlob streams the blob d of repo. The caller closes the reader.
func (r *Registry) OpenBlob(ctx context.Context, repo, d string) (blob.Reader, BlobInfo, error) {
	b, err := r.readBlob(ctx, repo, d)
	if err != nil {
		return nil, BlobInfo{}, err
	}
	rd, err := r.blobs.Open(ctx, b.StorageKey)
	if errors.Is(err, blob.ErrNotFound) {
		// Collected between the metadata read and the open.
		return nil, BlobInfo{}, fmt.Errorf("blob %s of %q: bytes are gone: %w", b.Digest, repo, ErrBlobUnknown)
	}
	if err != nil {
		return nil, BlobInfo{}, fmt.Errorf("opening blob %s: %w", b.Digest, err)
	}
	return rd, BlobInfo{Digest: b.Digest, Size: b.Size}, nil
}

// readBlob is the read path of gc.md ("a read that revives"): a read-only
// lookup, and only if a review of the link, its upload marker or the blob is
// due within the grace, a write that re-reads the link under a share lock
// and postpones those reviews to now + 1.5 × grace.
func (r *Registry) readBlob(ctx context.Context, name, ds string) (meta.Blob, error) {
	if err := validName(name); err != nil {
		return meta.Blob{}, err
	}
	d, err := parseDigest(ds)
	if err != nil {
		return meta.Blob{}, err
	}
	var b meta.Blob
	var repoID int64
	var reviews []reviewKey
	stale := false
	err = r.store.View(ctx, func(tx meta.Tx) error {
		repo, err := readRepo(ctx, tx, name)
		if err != nil {
			return err
		}
		repoID = repo.ID
		if b, err = repoBlob(ctx, tx, repo, d, meta.LockNone); err != nil {
			return err
		}
		// A blob uploaded but not yet referenced is protected by its
		// marker's review: when it fires, the link is decided at once.
		// The order is the order in which deciding one records the next
		// (marker, then link, then blob): on PostgreSQL, postponing the
		// marker's review waits for a collector deciding it, and the
		// link's review that decision recorded is then there to postpone.
		// The other way round, the read postponed a link review that did
		// not exist yet, answered 200, and the link went (gc.md, "A read
		// that revives").
		reviews = []reviewKey{
			{review.KindUploadedBlob, review.RepoDigestObject(repo.ID, d)},
			{review.KindLink, review.RepoDigestObject(repo.ID, d)},
			{review.KindBlob, review.BlobObject(d)},
		}
		stale, err = r.reviveDue(ctx, tx, reviews)
		return err
	})
	if err != nil || !stale {
		return b, err
	}
	err = r.store.Update(ctx, func(tx meta.Tx) error {
		// The link may have been collected since the View: re-read it under
		// a share lock first (lock order: link and blob rows, then reviews).
		var err error
		if b, err = repoBlob(ctx, tx, meta.Repository{ID: repoID, Name: name}, d, meta.LockShare); err != nil {
			return err
		}
		return r.revive(ctx, tx, reviews)
	})
	return b, err
}

// reviewKey names one review row.
type reviewKey struct {
	kind   review.Kind
	object string
}

// reviveDue reports whether a read must revive the object: a review of it
// is pending and due within the grace. revive then postpones it to one and a
// half graces from now, so a read writes at most once per half grace per
// object however hot it is, and whoever read it always keeps a full grace
// before the collector decides it — time to reference what it saw. With no
// grace there is nothing to extend.
func (r *Registry) reviveDue(ctx context.Context, tx meta.Tx, keys []reviewKey) (bool, error) {
	if r.opts.Policy.Grace <= 0 {
		return false, nil
	}
	horizon := r.now().Add(r.opts.Policy.Grace)
	for _, k := range keys {
		after, pending, err := tx.PendingReview(ctx, k.kind, k.object)
		if err != nil {
			return false, err
		}
		if pending && after.Before(horizon) {
			return true, nil
		}
	}
	return false, nil
}

// revive postpones the pending reviews of keys to now + 1.5 × grace.
func (r *Registry) revive(ctx context.Context, tx meta.Tx, keys []reviewKey) error {
	until := r.now().Add(r.opts.Policy.Grace + r.opts.Policy.Grace/2)
	for _, k := range keys {
		if _, err := tx.PostponeReview(ctx, k.kind, k.object, until); err != nil {
			return fmt.Errorf("postponing %s review: %w", k.kind, err)
		}
	}
	return nil
}

func repoBlob(ctx context.Context, tx meta.Tx, repo meta.Repository, d digest.Digest, lock meta.Lock) (meta.Blob, error) {
	b, err := tx.RepoBlob(ctx, repo.ID, d, lock)
	if isNotFound(err) {
		return b, fmt.Errorf("blob %s in repository %q: %w", d, repo.Name, ErrBlobUnknown)
	}
	if err != nil {
		return b, fmt.Errorf("reading blob %s: %w", d, err)
	}
	return b, nil
}

// DeleteBlob unlinks blob d from repo. It is refused with ErrDenied while a
// manifest of the repository references the blob. The blob row and its bytes
// go later, through the collector's blob review, if no other repository
// links it. An uploaded-blob marker protecting the link is removed with it:
// an explicit DELETE overrides the upload grace. When only manifests
// deleted by digest (withdrawn, still restorable) reference the blob, the
// link is withdrawn instead: the blob answers 404 in repo, and a restore of
// one of those manifests brings the link back (docs/design/gc.md).
func (r *Registry) DeleteBlob(ctx context.Context, repo, ds string) error {
	if err := validName(repo); err != nil {
		return err
	}
	d, err := parseDigest(ds)
	if err != nil {
		return err
	}
	now := r.now()
	err = r.store.Update(ctx, func(tx meta.Tx) error {
		rp, err := writeRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		if _, err := repoBlob(ctx, tx, rp, d, meta.LockUpdate); err != nil {
			return err
		}
		// A refusal rolls the marker deletion back.
		if err := tx.DeleteUploadedBlob(ctx, rp.ID, d); err != nil && !isNotFound(err) {
			return fmt.Errorf("deleting uploaded-blob marker: %w", err)
		}
		used, err := tx.BlobReferenced(ctx, rp.ID, d, false)
		if err != nil {
			return err
		}
		if used {
			return fmt.Errorf("blob %s is referenced by a manifest of %q; delete the manifest first: %w", d, repo, ErrDenied)
		}
		// Referenced only by manifests deleted by digest, which the time
		// machine keeps restorable: withdraw the link with them (404 from
		// now on; a restore of one of them brings it back).
		withdrawn, err := tx.BlobReferenced(ctx, rp.ID, d, true)
		if err != nil {
			return err
		}
		if withdrawn {
			return tx.WithdrawLink(ctx, rp.ID, d, now)
		}
		if err := tx.UnlinkBlob(ctx, rp.ID, d); err != nil {
			return fmt.Errorf("unlinking blob %s: %w", d, err)
		}
		return tx.AddReview(ctx, meta.Review{Kind: review.KindBlob, Object: review.BlobObject(d), ReviewAfter: now,
			Cause: review.CauseUnlinked, Reason: "unlinked from " + repo + " by DELETE"})
	})
	if err != nil {
		return err
	}
	r.emit(ctx, event.BlobUnlinked, repo, d, "", now)
	return nil
}

// errNotMountable makes the mount transaction roll back.
var errNotMountable = errors.New("not mountable")

// MountBlob links blob d into repo from repository from (OCI cross-repository
// mount). When the blob cannot be mounted it starts a normal upload instead
// and returns it; mounted reports which. With from == "" (allowed by OCI
// 1.1) the blob counts as mountable only if repo already links it.
func (r *Registry) MountBlob(ctx context.Context, repo, from, ds string) (mounted bool, up Upload, err error) {
	if err := validName(repo); err != nil {
		return false, Upload{}, err
	}
	d, err := parseDigest(ds)
	if err != nil {
		return false, Upload{}, err
	}
	if from != "" {
		if err := validName(from); err != nil {
			return false, Upload{}, err
		}
	} else {
		from = repo
	}
	now := r.now()
	err = r.store.Update(ctx, func(tx meta.Tx) error {
		to, err := ensureRepo(ctx, tx, repo, now)
		if err != nil {
			return err
		}
		src := to
		if from != repo {
			src, err = tx.Repository(ctx, from, meta.LockShare)
			if isNotFound(err) {
				return errNotMountable
			}
			if err != nil {
				return fmt.Errorf("reading repository %q: %w", from, err)
			}
			if src.State != meta.RepoActive {
				return errNotMountable
			}
		}
		if _, err := tx.RepoBlob(ctx, src.ID, d, meta.LockShare); isNotFound(err) {
			return errNotMountable
		} else if err != nil {
			return fmt.Errorf("reading blob %s of %q: %w", d, from, err)
		}
		return r.linkUploaded(ctx, tx, to, d, now, "mounted from "+from)
	})
	switch {
	case errors.Is(err, errNotMountable):
		up, err := r.StartUpload(ctx, repo)
		return false, up, err
	case err != nil:
		return false, Upload{}, err
	}
	r.emit(ctx, event.BlobPushed, repo, d, "", now)
	return true, Upload{}, nil
}

// linkUploaded records blob d as committed into repo: the link, the
// uploaded-blob marker for the grace and its review (gc.md, first row).
func (r *Registry) linkUploaded(ctx context.Context, tx meta.Tx, repo meta.Repository, d digest.Digest, now time.Time, reason string) error {
	if err := tx.LinkBlob(ctx, repo.ID, d, now); err != nil {
		return fmt.Errorf("linking blob %s: %w", d, err)
	}
	until := now.Add(r.opts.Policy.Grace)
	if err := tx.PutUploadedBlob(ctx, repo.ID, d, until); err != nil {
		return fmt.Errorf("marking blob %s uploaded: %w", d, err)
	}
	return tx.AddReview(ctx, meta.Review{Kind: review.KindUploadedBlob, Object: review.RepoDigestObject(repo.ID, d), ReviewAfter: until,
		Cause: review.CauseUploaded, Reason: reason})
}
