// Package blob defines the byte store that holds blob contents: the Store
// interface, its sentinel errors and the storage-key helpers. It imports no
// backend; backends live in subpackages (blob/fs, later blob/s3) and are all
// checked by the behavioural suite in blob/blobtest.
//
// # Contract
//
// A Store holds two kinds of objects:
//
//   - staging objects, one per upload id, grown by UploadAppend and turned into
//     a committed object by UploadCommit (or dropped by UploadAbort);
//   - committed objects, addressed by the storage key UploadCommit returned,
//     immutable once committed, removed by Delete.
//
// The Store keeps no metadata of its own: which key holds which blob, and which
// upload sessions exist, is the metadata store's business (DESIGN.md §2, §4).
// In particular the Store serialises concurrent calls on one upload id only
// within one process; exclusion across processes or replicas is given by the
// upload session row in the metadata store.
//
// UploadAppend is all-or-nothing: when it returns an error (a read error from
// the client, a cancelled context, a write error), the staging object is
// brought back to the size it had before the call, so the client can resume
// at the offset it last saw acknowledged. Each successful append is durable
// before UploadAppend returns.
//
// An upload id with no staging object behaves as a staging object of size 0
// for UploadAppend (offset 0 creates it; any other offset is ErrOffset), and is
// ErrNotFound for UploadSize and UploadCommit.
//
// UploadCommit is atomic: a committed object is either absent or complete and
// durable; readers never see a partial object under a key.
package blob

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// Sentinel errors. Backends wrap them with %w and the operation; compare with
// errors.Is.
var (
	// ErrNotFound: the key or upload id names no object. Open, Stat,
	// UploadSize and UploadCommit return it; Delete and UploadAbort never do.
	ErrNotFound = errors.New("blob: not found")
	// ErrDigestMismatch: the staging bytes do not hash to the expected digest.
	ErrDigestMismatch = errors.New("blob: digest mismatch")
	// ErrOffset: UploadAppend at an offset that is not the current size.
	ErrOffset = errors.New("blob: upload offset mismatch")
	// ErrInvalidKey: a storage key that ValidKey rejects (empty, absolute,
	// with "." or ".." segments, or with characters outside [A-Za-z0-9._-]).
	ErrInvalidKey = errors.New("blob: invalid key")
	// ErrInvalidUploadID: an upload id that ValidUploadID rejects.
	ErrInvalidUploadID = errors.New("blob: invalid upload id")
	// ErrUnavailable: the backing storage cannot serve the request now but
	// may soon (unreachable, timing out, overloaded); the caller may retry.
	// Backends add it to the error they return; the API answers 503.
	ErrUnavailable = errors.New("blob: storage unavailable")
	// ErrUnsupportedDigest: UploadCommit with a digest that is malformed or
	// not sha256/sha512.
	ErrUnsupportedDigest = errors.New("blob: unsupported digest")
)

// Info describes a committed object (or, from WalkUploads, a staging object,
// whose Key is then the upload id).
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Store is the byte store. Every method is safe for concurrent use.
type Store interface {
	// UploadAppend appends r to the staging object of upload id, creating it
	// when offset is 0 and it does not exist, and returns the new total size.
	// It returns ErrOffset, appending nothing, if offset is not the current
	// size. Ids are chosen by the caller and match [A-Za-z0-9-]+.
	// On any error the staging object keeps the size it had before the call
	// (all-or-nothing) and that size is returned with the error.
	UploadAppend(ctx context.Context, id string, offset int64, r io.Reader) (size int64, err error)

	// UploadSize returns the current size of the staging object of id, or
	// ErrNotFound if there is none.
	UploadSize(ctx context.Context, id string) (int64, error)

	// UploadCommit verifies that the staging bytes of id hash to want
	// (sha256 or sha512, by want.Algorithm()), makes them durable and
	// commits them atomically under a storage key the backend chooses,
	// unique to this commit (keys are never reused, DESIGN.md §4); the
	// staging object is gone afterwards. It returns the key and the size.
	// On ErrDigestMismatch (or any other error) the staging object is left
	// in place and nothing is committed; the caller decides whether to
	// abort. Backends choose the key because some must name the final
	// object before its digest is known (S3 writes a multipart upload
	// straight to its final key).
	UploadCommit(ctx context.Context, id string, want digest.Digest) (key string, size int64, err error)

	// UploadAbort removes the staging object of id. Idempotent: nil when
	// there is none.
	UploadAbort(ctx context.Context, id string) error

	// Open streams the committed object under key; it never loads the whole
	// object in memory. ErrNotFound if there is none.
	Open(ctx context.Context, key string) (Reader, error)

	// Stat describes the committed object under key. ErrNotFound if none.
	Stat(ctx context.Context, key string) (Info, error)

	// Delete removes the committed object under key. Idempotent: nil when
	// there is none.
	Delete(ctx context.Context, key string) error

	// Walk calls fn for every committed object (never for staging or
	// temporary objects), for the sweep of crash leftovers. Objects
	// committed or deleted during the walk may or may not be reported.
	// Order is unspecified. An error from fn stops the walk and is returned.
	Walk(ctx context.Context, fn func(Info) error) error

	// WalkUploads calls fn for every staging object, with its upload id;
	// info.Key is the upload id. An error from fn stops the walk and is
	// returned.
	WalkUploads(ctx context.Context, fn func(id string, info Info) error) error
}

// Reader reads a committed object. It is an io.ReadSeeker, so it can be
// handed to http.ServeContent for Range requests.
type Reader interface {
	io.ReadSeekCloser
	// Size is the object's size in bytes.
	Size() int64
}

// Redirector is implemented by stores whose committed objects a client can
// fetch directly, without the bytes passing through berth (S3: a presigned
// GET URL). The API redirects blob GETs to it when configured to.
type Redirector interface {
	// RedirectURL returns a URL that serves the object under key, Range
	// requests included, for at least ttl. It does not check that the
	// object exists; the caller has already found its row.
	RedirectURL(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// Pinger is implemented by stores that can say cheaply whether they can
// serve now: the server's readiness probe (/readyz) asks it every second
// or so, so Ping costs one small request at most (a stat, a HEAD) and
// reads or writes no object.
type Pinger interface {
	// Ping returns nil when the store is reachable and in place, and
	// otherwise why not (wrapping ErrUnavailable when it may come back by
	// itself).
	Ping(ctx context.Context) error
}

// BatchDeleter is implemented by stores that delete many committed objects
// in one request (S3 DeleteObjects). DeleteMany uses it when it can.
type BatchDeleter interface {
	// DeleteBatch deletes keys as Delete would each (idempotent, nil for a
	// missing key) and returns one error per key, nil where the key is
	// gone. A failure of the whole request is reported in every slot.
	DeleteBatch(ctx context.Context, keys []string) []error
}

// UploadKeyer is implemented by stores whose committed keys name the upload
// that wrote them (S3: "<upload id>/<random>", because the key is chosen
// when the upload starts). Sweep uses it to leave alone an object whose
// upload session is still open: that session's commit may yet record it
// (a retried commit whose first Complete landed but whose answer was lost),
// and the session row is deleted in the same transaction that inserts the
// blob row, so an object of a live session is never a leftover.
type UploadKeyer interface {
	// KeyUpload returns the upload id whose commit wrote key, or false for
	// a key this store did not make.
	KeyUpload(key string) (id string, ok bool)
}

// DeleteMany deletes keys from s, in batches when s is a BatchDeleter and
// one by one otherwise, and returns one error per key (nil: gone).
func DeleteMany(ctx context.Context, s Store, keys []string) []error {
	if bd, ok := s.(BatchDeleter); ok {
		return bd.DeleteBatch(ctx, keys)
	}
	errs := make([]error, len(keys))
	for i, k := range keys {
		errs[i] = s.Delete(ctx, k)
	}
	return errs
}
