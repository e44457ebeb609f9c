package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// Upload is the state of an upload session as the client sees it.
type Upload struct {
	Repo string
	ID   string
	Size int64 // bytes received so far
}

func newUploadID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b[:])
}

// StartUpload opens an upload session in repo, creating the repository if
// needed. The session is reviewed after the upload expiry; every append
// pushes that review later. The staging bytes are created by the first
// append. It returns ErrTooManyUploads, creating nothing, when the session
// would pass a cap of Options.Limits.
func (r *Registry) StartUpload(ctx context.Context, repo string) (Upload, error) {
	if err := validName(repo); err != nil {
		return Upload{}, err
	}
	id := newUploadID()
	now := r.now()
	err := r.store.Update(ctx, func(tx meta.Tx) error {
		rp, err := ensureRepo(ctx, tx, repo, now)
		if err != nil {
			return err
		}
		if err := r.checkSessionCaps(ctx, tx, rp, now); err != nil {
			return err
		}
		if err := tx.CreateUpload(ctx, meta.Upload{ID: id, RepoID: rp.ID, StartedAt: now, UpdatedAt: now}); err != nil {
			return fmt.Errorf("creating upload session: %w", err)
		}
		return tx.AddReview(ctx, meta.Review{Kind: review.KindUpload, Object: review.UploadObject(id), ReviewAfter: now.Add(r.opts.Policy.UploadExpiry),
			Cause: review.CauseUploadStarted, Reason: "upload started"})
	})
	if err != nil {
		return Upload{}, err
	}
	return Upload{Repo: repo, ID: id}, nil
}

// checkSessionCaps refuses one more session in repo when it would pass a
// cap of Options.Limits. Sessions idle longer than the upload expiry do not
// count: the collector deletes them whenever it gets to them. The
// per-repository count runs under LockRepoUploads, so two StartUploads of
// one repository cannot both see one slot left; the registry-wide count
// takes no lock (one would serialize every POST of the registry), so
// concurrent StartUploads in different repositories may overshoot it by at
// most their number (docs/design/limits.md).
func (r *Registry) checkSessionCaps(ctx context.Context, tx meta.Tx, repo meta.Repository, now time.Time) error {
	l := r.opts.Limits
	since := now.Add(-r.opts.Policy.UploadExpiry)
	if limit := l.UploadSessionsPerRepository; limit > 0 {
		if err := tx.LockRepoUploads(ctx, repo.ID); err != nil {
			return err
		}
		n, err := tx.CountUploads(ctx, repo.ID, since, limit)
		if err != nil {
			return err
		}
		if n >= limit {
			return fmt.Errorf("repository %q already has %d open upload sessions, the most allowed per repository; complete or cancel some, or wait for idle ones to expire: %w",
				repo.Name, n, ErrTooManyUploads)
		}
	}
	if limit := l.UploadSessions; limit > 0 {
		n, err := tx.CountUploads(ctx, 0, since, limit)
		if err != nil {
			return err
		}
		if n >= limit {
			return fmt.Errorf("the registry already has %d open upload sessions, the most allowed: %w", n, ErrTooManyUploads)
		}
	}
	return nil
}

// session checks that upload id is open in repo and returns the size of
// its staging bytes.
func (r *Registry) session(ctx context.Context, repo, id string) (int64, error) {
	if err := validName(repo); err != nil {
		return 0, err
	}
	if err := blob.ValidUploadID(id); err != nil {
		return 0, fmt.Errorf("upload %q: %w", id, ErrUploadUnknown)
	}
	err := r.store.View(ctx, func(tx meta.Tx) error {
		rp, err := readRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		_, err = uploadRow(ctx, tx, rp, id, meta.LockNone)
		return err
	})
	if err != nil {
		return 0, err
	}
	size, err := r.blobs.UploadSize(ctx, id)
	if errors.Is(err, blob.ErrNotFound) {
		return 0, nil // nothing appended yet
	}
	if err != nil {
		return 0, fmt.Errorf("reading upload %s: %w", id, err)
	}
	return size, nil
}

func uploadRow(ctx context.Context, tx meta.Tx, repo meta.Repository, id string, lock meta.Lock) (meta.Upload, error) {
	u, err := tx.Upload(ctx, id, lock)
	if isNotFound(err) || (err == nil && u.RepoID != repo.ID) {
		return u, fmt.Errorf("upload %s in repository %q: %w", id, repo.Name, ErrUploadUnknown)
	}
	if err != nil {
		return u, fmt.Errorf("reading upload %s: %w", id, err)
	}
	return u, nil
}

// UploadStatus reports how many bytes upload id of repo holds.
func (r *Registry) UploadStatus(ctx context.Context, repo, id string) (Upload, error) {
	size, err := r.session(ctx, repo, id)
	if err != nil {
		return Upload{}, err
	}
	return Upload{Repo: repo, ID: id, Size: size}, nil
}

// AppendUpload streams body onto upload id of repo. offset is where the
// client says the chunk starts (Content-Range), or negative when it did not
// say; a chunk that does not start at the current size is a *RangeError.
// length is the body's announced size (Content-Length), or negative when
// unknown. The body is streamed outside any transaction; a failed read (a
// client that hangs up, a body shorter than announced) appends nothing, and
// so does a chunk that would bring the upload past Limits.BlobSize
// (ErrTooLarge): refused before reading when length announces it, cut as
// soon as the bytes pass it otherwise. The session keeps its size.
func (r *Registry) AppendUpload(ctx context.Context, repo, id string, offset, length int64, body io.Reader) (Upload, error) {
	size, err := r.session(ctx, repo, id)
	if err != nil {
		return Upload{}, err
	}
	if offset >= 0 && offset != size {
		return Upload{Repo: repo, ID: id, Size: size}, &RangeError{Size: size, Offset: offset}
	}
	size, err = r.appendBody(ctx, id, size, length, body)
	if err != nil {
		return Upload{Repo: repo, ID: id, Size: size}, err
	}
	now := r.now()
	err = r.store.Update(ctx, func(tx meta.Tx) error {
		rp, err := readRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		if _, err := uploadRow(ctx, tx, rp, id, meta.LockUpdate); err != nil {
			return err
		}
		if err := tx.SetUploadSize(ctx, id, size, now); err != nil {
			return fmt.Errorf("recording upload size: %w", err)
		}
		return tx.AddReview(ctx, meta.Review{Kind: review.KindUpload, Object: review.UploadObject(id), ReviewAfter: now.Add(r.opts.Policy.UploadExpiry),
			Cause: review.CauseUploadActive, Reason: "upload active"})
	})
	if err != nil {
		return Upload{}, err
	}
	return Upload{Repo: repo, ID: id, Size: size}, nil
}

// recordingReader remembers the first read error that is not io.EOF, so an
// append failure can be blamed on the client rather than on storage.
type recordingReader struct {
	r   io.Reader
	err error
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if err != nil && err != io.EOF && rr.err == nil {
		rr.err = err
	}
	return n, err
}

// sizeCap reads at most left bytes; one more is ErrTooLarge, which makes
// the all-or-nothing append fail and drop what it read.
type sizeCap struct {
	r     io.Reader
	left  int64
	limit int64
}

func (c *sizeCap) Read(p []byte) (int, error) {
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, fmt.Errorf("the blob would exceed %d bytes, the largest this registry accepts: %w", c.limit, ErrTooLarge)
	}
	return n, err
}

// checkBlobSize refuses, before reading, a body announced (length >= 0) to
// bring an upload holding offset bytes past Limits.BlobSize.
func (r *Registry) checkBlobSize(offset, length int64) error {
	limit := r.opts.Limits.BlobSize
	if limit > 0 && length >= 0 && length > limit-offset {
		return fmt.Errorf("%d more bytes would bring the blob to %d bytes, past %d, the largest this registry accepts: %w",
			length, offset+length, limit, ErrTooLarge)
	}
	return nil
}

// appendBody appends body, announced as length bytes (negative: unknown),
// to the staging bytes of id at offset.
func (r *Registry) appendBody(ctx context.Context, id string, offset, length int64, body io.Reader) (int64, error) {
	if err := r.checkBlobSize(offset, length); err != nil {
		return offset, err
	}
	if body == nil {
		body = eofReader{}
	}
	if limit := r.opts.Limits.BlobSize; limit > 0 {
		body = &sizeCap{r: body, left: limit - offset, limit: limit}
	}
	rr := &recordingReader{r: body}
	size, err := r.blobs.UploadAppend(ctx, id, offset, rr)
	switch {
	case err == nil:
		return size, nil
	case errors.Is(err, blob.ErrOffset):
		return size, &RangeError{Size: size, Offset: offset}
	case rr.err != nil && ctx.Err() != nil && !errors.Is(rr.err, io.ErrUnexpectedEOF):
		return size, fmt.Errorf("reading upload body: %w", ctx.Err())
	case rr.err != nil && (errors.Is(rr.err, ErrSizeInvalid) || errors.Is(rr.err, ErrUploadInvalid) || errors.Is(rr.err, ErrTooLarge)):
		return size, fmt.Errorf("reading upload body: %w", rr.err)
	case rr.err != nil:
		return size, fmt.Errorf("reading upload body: %v: %w", rr.err, ErrUploadInvalid)
	}
	return size, fmt.Errorf("appending to upload %s: %w", id, err)
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// FinishUpload appends body (which may be empty, or nil when the request
// has none: nothing is appended then), announced as length bytes as in
// AppendUpload and capped the same way, to upload id of repo,
// verifies the whole upload hashes to digest ds and commits it as a blob
// of repo. offset is as in AppendUpload. When the bytes do not match the
// digest the session is cancelled (its bytes deleted) and the error wraps
// ErrDigestInvalid: a client has to start over anyway, and nothing stays
// behind a rejected request.
func (r *Registry) FinishUpload(ctx context.Context, repo, id, ds string, offset, length int64, body io.Reader) (BlobInfo, error) {
	d, err := parseDigest(ds)
	if err != nil {
		return BlobInfo{}, err
	}
	size, err := r.session(ctx, repo, id)
	if err != nil {
		return BlobInfo{}, err
	}
	if offset >= 0 && offset != size {
		return BlobInfo{}, &RangeError{Size: size, Offset: offset}
	}
	// A request with no body appends nothing, unless the session has no
	// bytes at all: the append then creates its empty staging object.
	if body != nil || size == 0 {
		if _, err := r.appendBody(ctx, id, size, length, body); err != nil {
			return BlobInfo{}, err
		}
	}
	info, err := r.commit(ctx, repo, id, d, true)
	if errors.Is(err, ErrDigestInvalid) {
		if cerr := r.CancelUpload(ctx, repo, id); cerr != nil {
			r.log.DebugContext(ctx, "cancelling upload after digest mismatch", "upload", id, "error", cerr)
		}
	}
	return info, err
}

// PushBlob is a monolithic upload (POST ?digest= with the body, announced
// as length bytes, negative when unknown): the bytes go to a fresh staging
// object and are committed in one step, with no session row, so no session
// cap applies; Limits.BlobSize does, as in AppendUpload. On any failure the
// staging bytes are removed.
func (r *Registry) PushBlob(ctx context.Context, repo, ds string, length int64, body io.Reader) (BlobInfo, error) {
	if err := validName(repo); err != nil {
		return BlobInfo{}, err
	}
	d, err := parseDigest(ds)
	if err != nil {
		return BlobInfo{}, err
	}
	id := newUploadID()
	info, err := func() (BlobInfo, error) {
		if _, err := r.appendBody(ctx, id, 0, length, body); err != nil {
			return BlobInfo{}, err
		}
		return r.commit(ctx, repo, id, d, false)
	}()
	if err != nil {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		if aerr := r.blobs.UploadAbort(cctx, id); aerr != nil {
			r.log.DebugContext(ctx, "removing staging bytes of a failed push", "upload", id, "error", aerr)
		}
	}
	return info, err
}

// cleanupTimeout bounds the cleanups that outlive their request: deleting
// bytes that no row names after a failed or cancelled request. They run
// even when the client went away (the request's context is done), but
// never longer than this; what they leave, berth sweep finds.
const cleanupTimeout = 30 * time.Second

// cleanupContext is ctx without its cancellation, with cleanupTimeout.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// commit moves the staging bytes of id under a fresh storage key (outside
// any transaction), then records the blob, its link into repo and its
// uploaded-blob marker in one transaction (gc.md, "blob upload commit"). If
// the digest already had a blob row, that row is kept and the bytes just
// written are deleted after commit. If the transaction fails, the bytes
// just written are deleted (best effort; sweep covers a crash).
func (r *Registry) commit(ctx context.Context, repo, id string, d digest.Digest, hasSession bool) (BlobInfo, error) {
	key, size, err := r.blobs.UploadCommit(ctx, id, d)
	switch {
	case errors.Is(err, blob.ErrDigestMismatch):
		return BlobInfo{}, fmt.Errorf("uploaded content does not match digest %s: %w (%w)", d, ErrDigestMismatch, ErrDigestInvalid)
	case errors.Is(err, blob.ErrUnsupportedDigest):
		return BlobInfo{}, fmt.Errorf("digest %s: %v: %w", d, err, ErrDigestInvalid)
	case errors.Is(err, blob.ErrNotFound):
		// The staging bytes vanished under the session (S3: another
		// process completed or aborted its multipart upload): the client
		// must start over, which BLOB_UPLOAD_UNKNOWN tells it.
		return BlobInfo{}, fmt.Errorf("committing upload %s: %v: %w", id, err, ErrUploadUnknown)
	case err != nil:
		return BlobInfo{}, fmt.Errorf("committing upload %s: %w", id, err)
	}
	now := r.now()
	var duplicate bool
	err = r.store.Update(ctx, func(tx meta.Tx) error {
		duplicate = false
		rp, err := ensureRepo(ctx, tx, repo, now)
		if err != nil {
			return err
		}
		if hasSession {
			if _, err := uploadRow(ctx, tx, rp, id, meta.LockUpdate); err != nil {
				return err
			}
		}
		row, created, err := tx.InsertBlob(ctx, meta.Blob{Digest: d, Size: size, StorageKey: key, CreatedAt: now})
		if err != nil {
			return fmt.Errorf("recording blob %s: %w", d, err)
		}
		duplicate = !created && row.StorageKey != key
		if err := r.linkUploaded(ctx, tx, rp, d, now, "uploaded"); err != nil {
			return err
		}
		if hasSession {
			if err := tx.DeleteUpload(ctx, id); err != nil {
				return fmt.Errorf("closing upload session: %w", err)
			}
		}
		return nil
	})
	cleanup, cancel := cleanupContext(ctx)
	defer cancel()
	if err != nil {
		r.dropUnnamedBytes(cleanup, key)
		return BlobInfo{}, err
	}
	if duplicate {
		if derr := r.blobs.Delete(cleanup, key); derr != nil {
			r.log.DebugContext(ctx, "deleting duplicate bytes", "key", key, "error", derr)
		}
	}
	r.emit(ctx, event.BlobPushed, repo, d, "", now)
	return BlobInfo{Digest: d, Size: size}, nil
}

// dropUnnamedBytes deletes bytes written for a commit whose transaction
// failed — but only once the store confirms no row names the key: a commit
// that failed in doubt (connection lost while committing) may have landed,
// and deleting the bytes under a committed row would lose the blob. When
// the store cannot be asked, the bytes stay for `berth sweep`.
func (r *Registry) dropUnnamedBytes(ctx context.Context, key string) {
	var known bool
	err := r.store.View(ctx, func(tx meta.Tx) (err error) {
		known, err = tx.StorageKeyKnown(ctx, key)
		return err
	})
	if err != nil || known {
		r.log.DebugContext(ctx, "keeping bytes of a failed commit", "key", key, "named", known, "error", err)
		return
	}
	if derr := r.blobs.Delete(ctx, key); derr != nil {
		r.log.DebugContext(ctx, "deleting bytes of a failed commit", "key", key, "error", derr)
	}
}

// CancelUpload ends upload id of repo and deletes its staging bytes (rows
// first, then bytes).
func (r *Registry) CancelUpload(ctx context.Context, repo, id string) error {
	if err := validName(repo); err != nil {
		return err
	}
	if err := blob.ValidUploadID(id); err != nil {
		return fmt.Errorf("upload %q: %w", id, ErrUploadUnknown)
	}
	err := r.store.Update(ctx, func(tx meta.Tx) error {
		rp, err := readRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		if _, err := uploadRow(ctx, tx, rp, id, meta.LockUpdate); err != nil {
			return err
		}
		if err := tx.DeleteUpload(ctx, id); err != nil {
			return fmt.Errorf("deleting upload session: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := r.blobs.UploadAbort(cctx, id); err != nil {
		return fmt.Errorf("deleting staging bytes of upload %s: %w", id, err)
	}
	return nil
}
