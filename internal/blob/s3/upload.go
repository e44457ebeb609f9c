package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob"
)

const (
	stateVersion = 1
	// maxTailSegments bounds the tail list of a state: an append that
	// would add one more rewrites the whole tail as one segment.
	maxTailSegments = 32
	// cleanupTimeout bounds the best-effort cleanup after a failed call,
	// which runs even when the call's context is done.
	cleanupTimeout = 30 * time.Second
	// commitTimeout bounds an upload's commit point (the tail part and
	// CompleteMultipartUpload, which S3 may take minutes to answer for a
	// large object), which runs even when the call's context is done.
	commitTimeout = 5 * time.Minute
	// stateTimeout bounds the state write that is an append's commit point,
	// which runs even when the call's context is done.
	stateTimeout = time.Minute
)

// state is the JSON object at uploads/<id>/state: everything an upload is,
// so that any process can continue it. Writing it is the commit point of an
// append.
type state struct {
	Version int `json:"version"`
	// Key is the committed object's key (relative to blobs/), chosen when
	// the state is first written.
	Key string `json:"key"`
	// PartSize is the size of every part but the last, fixed for the
	// upload's life so processes with other settings agree.
	PartSize int64 `json:"part_size"`
	// UploadID is the S3 multipart upload writing Key; "" until the first
	// full part.
	UploadID string `json:"upload_id,omitempty"`
	// Parts are the completed parts, numbered from 1, each PartSize bytes.
	Parts []part `json:"parts,omitempty"`
	// Tail are the bytes past the last part (fewer than PartSize), in
	// order, each in its own object under uploads/<id>/.
	Tail []segment `json:"tail,omitempty"`
	// Size is the total: len(Parts)*PartSize + the tail's size.
	Size int64 `json:"size"`
	// SHA256 and SHA512 are the marshaled states of both hashes over all
	// Size bytes (the algorithm is known only at commit).
	SHA256 []byte `json:"sha256"`
	SHA512 []byte `json:"sha512"`
}

type part struct {
	Number int32  `json:"number"`
	ETag   string `json:"etag"`
	Size   int64  `json:"size"`
}

type segment struct {
	Name string `json:"name"` // object name relative to uploads/<id>/
	Size int64  `json:"size"`
}

func (st *state) tailSize() int64 {
	var n int64
	for _, t := range st.Tail {
		n += t.Size
	}
	return n
}

// check guards against a state this code did not write.
func (st *state) check() error {
	if st.Version != stateVersion {
		return fmt.Errorf("state format version %d, want %d", st.Version, stateVersion)
	}
	if blob.ValidKey(st.Key) != nil || st.PartSize < MinPartSize || st.PartSize > MaxPartSize {
		return fmt.Errorf("state: bad key %q or part size %d", st.Key, st.PartSize)
	}
	size := st.tailSize()
	for i, p := range st.Parts {
		if p.Number != int32(i+1) || p.Size != st.PartSize {
			return fmt.Errorf("state: part %d is number %d of %d bytes", i+1, p.Number, p.Size)
		}
		size += p.Size
	}
	if size != st.Size || st.tailSize() >= st.PartSize || len(st.Parts) > 0 && st.UploadID == "" {
		return errors.New("state: sizes do not add up")
	}
	return nil
}

// hashes restores both hash states.
func (st *state) hashes() (h256, h512 hash.Hash, err error) {
	h256, h512 = sha256.New(), sha512.New()
	if err := h256.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.SHA256); err != nil {
		return nil, nil, fmt.Errorf("state: sha256: %w", err)
	}
	if err := h512.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.SHA512); err != nil {
		return nil, nil, fmt.Errorf("state: sha512: %w", err)
	}
	return h256, h512, nil
}

func saveHashes(st *state, h256, h512 hash.Hash) error {
	var err error
	if st.SHA256, err = h256.(encoding.BinaryMarshaler).MarshalBinary(); err != nil {
		return err
	}
	st.SHA512, err = h512.(encoding.BinaryMarshaler).MarshalBinary()
	return err
}

// newState is the state of an upload id that has none yet: size 0.
func (s *Store) newState(id string) (*state, error) {
	st := &state{Version: stateVersion, Key: id + "/" + randomHex(), PartSize: s.partSize}
	if err := saveHashes(st, sha256.New(), sha512.New()); err != nil {
		return nil, err
	}
	return st, nil
}

// errBadState: a state object this code cannot use (corrupt, or written by
// a newer format). WalkUploads still reports its upload, so it can be
// aborted.
var errBadState = errors.New("unusable upload state")

func isJSONError(err error) bool {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	return errors.As(err, &se) || errors.As(err, &te)
}

// loadState reads the state of id, and when it was written. An error
// wrapping blob.ErrNotFound means there is none (the upload's size is 0).
func (s *Store) loadState(ctx context.Context, id string) (*state, time.Time, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.stateName(id)),
	})
	if isNotFound(err) {
		return nil, time.Time{}, fmt.Errorf("no upload state: %w", blob.ErrNotFound)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("reading state: %w", err)
	}
	defer out.Body.Close()
	var st state
	if err := json.NewDecoder(io.LimitReader(out.Body, 4<<20)).Decode(&st); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || isJSONError(err) {
			err = fmt.Errorf("%w: %w", errBadState, err)
		}
		return nil, time.Time{}, fmt.Errorf("reading state: %w", err)
	}
	if err := st.check(); err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %w", errBadState, err)
	}
	return &st, aws.ToTime(out.LastModified), nil
}

func (s *Store) saveState(ctx context.Context, id string, st *state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.stateName(id)),
		Body:          bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))),
		ContentType:   aws.String("application/json"),
	})
	if err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	return nil
}

// readTail reads the tail segments of id into buf, which must hold them.
func (s *Store) readTail(ctx context.Context, id string, tail []segment, buf []byte) error {
	off := int64(0)
	for _, t := range tail {
		out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
			Bucket: aws.String(s.bucket),
			Key:    aws.String(s.uploadPrefix(id) + t.Name),
		})
		if err != nil {
			return fmt.Errorf("reading tail %s: %w", t.Name, err)
		}
		_, err = io.ReadFull(out.Body, buf[off:off+t.Size])
		out.Body.Close()
		if err != nil {
			return fmt.Errorf("reading tail %s: %w", t.Name, err)
		}
		off += t.Size
	}
	return nil
}

func (s *Store) putObject(ctx context.Context, name string, b []byte) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(name),
		Body:          bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))),
	})
	return err
}

func (s *Store) uploadPart(ctx context.Context, st *state, number int32, b []byte) (part, error) {
	out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.blobName(st.Key)),
		UploadId:      aws.String(st.UploadID),
		PartNumber:    aws.Int32(number),
		Body:          bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))),
	})
	if err != nil {
		return part{}, fmt.Errorf("uploading part %d: %w", number, err)
	}
	return part{Number: number, ETag: aws.ToString(out.ETag), Size: int64(len(b))}, nil
}

func (s *Store) buffer(size int64) (buf []byte, release func()) {
	if size != s.partSize {
		return make([]byte, size), func() {}
	}
	bp := s.bufs.Get().(*[]byte)
	return *bp, func() { s.bufs.Put(bp) }
}

// UploadAppend implements blob.Store. See the package documentation for the
// protocol; the state write at the end is the append's commit point.
func (s *Store) UploadAppend(ctx context.Context, id string, offset int64, r io.Reader) (_ int64, err error) {
	defer func() { err = unavailable(err) }()
	if err := blob.ValidUploadID(id); err != nil {
		return 0, fmt.Errorf("appending to upload: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("appending to upload %s: %w", id, err)
	}
	unlock := s.locks.Lock(id)
	defer unlock()

	old, _, err := s.loadState(ctx, id)
	if errors.Is(err, blob.ErrNotFound) {
		old, err = nil, nil // size 0
	}
	if err != nil {
		return 0, fmt.Errorf("appending to upload %s: %w", id, err)
	}
	size := int64(0)
	if old != nil {
		size = old.Size
	}
	if offset != size {
		return size, fmt.Errorf("appending to upload %s at offset %d, size is %d: %w", id, offset, size, blob.ErrOffset)
	}
	st := old
	if st == nil {
		if st, err = s.newState(id); err != nil {
			return 0, fmt.Errorf("appending to upload %s: %w", id, err)
		}
	}
	a := appender{s: s, id: id, old: old, st: *st}
	a.st.Parts = slices.Clone(st.Parts)
	a.st.Tail = slices.Clone(st.Tail)
	if err := a.run(ctx, r); err != nil {
		a.undo()
		return size, fmt.Errorf("appending to upload %s: %w", id, err)
	}
	return a.st.Size, nil
}

// appender is one UploadAppend: st is the new state, built from old.
type appender struct {
	s   *Store
	id  string
	old *state // nil: the upload had no state
	st  state

	newUpload string   // a multipart upload this call created
	written   []string // tail objects this call wrote
	keep      bool     // the state write's outcome is unknown: undo nothing
}

// saved reports whether the stored state is a.st, after a state write
// that returned an error.
func (a *appender) saved() (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	stored, _, err := a.s.loadState(ctx, a.id)
	if errors.Is(err, blob.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	want, err := json.Marshal(&a.st)
	if err != nil {
		return false, err
	}
	got, err := json.Marshal(stored)
	if err != nil {
		return false, err
	}
	return bytes.Equal(got, want), nil
}

func (a *appender) run(ctx context.Context, r io.Reader) error {
	st := &a.st
	h256, h512, err := st.hashes()
	if err != nil {
		return err
	}
	buf, release := a.s.buffer(st.PartSize)
	defer release()
	buf = buf[:st.PartSize]

	// buf[:tail] stands for the tail segments, fetched only when a part
	// fills up; new bytes go after them.
	tail := st.tailSize()
	fetched := tail == 0
	fill := tail
	total := int64(0)
	src := blob.ContextReader(ctx, r)
	for {
		n, rerr := io.ReadFull(src, buf[fill:])
		h256.Write(buf[fill : fill+int64(n)])
		h512.Write(buf[fill : fill+int64(n)])
		fill += int64(n)
		total += int64(n)
		if fill < st.PartSize {
			if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
				return rerr
			}
			break // EOF
		}
		if !fetched {
			if err := a.s.readTail(ctx, a.id, st.Tail, buf[:tail]); err != nil {
				return err
			}
		}
		if err := a.flushPart(ctx, buf); err != nil {
			return err
		}
		st.Tail, tail, fill, fetched = nil, 0, 0, true
	}
	if a.old != nil && total == 0 {
		a.st = *a.old // nothing to write
		return nil
	}
	if fill > tail {
		from := tail
		if len(st.Tail) >= maxTailSegments {
			// Rewrite the tail as one segment, so the state stays small.
			if !fetched {
				if err := a.s.readTail(ctx, a.id, st.Tail, buf[:tail]); err != nil {
					return err
				}
			}
			st.Tail, from = nil, 0
		}
		name := "tail-" + randomHex()
		a.written = append(a.written, a.s.uploadPrefix(a.id)+name)
		if err := a.s.putObject(ctx, a.s.uploadPrefix(a.id)+name, buf[from:fill]); err != nil {
			return fmt.Errorf("writing tail: %w", err)
		}
		st.Tail = append(st.Tail, segment{Name: name, Size: fill - from})
	}
	st.Size += total
	if err := saveHashes(st, h256, h512); err != nil {
		return err
	}
	// Every byte is in: the state write, the commit point, runs to its
	// end even if the caller goes away, for a write that lands while the
	// caller sees an error must not be undone.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateTimeout)
	defer cancel()
	if err := a.s.saveState(sctx, a.id, st); err != nil {
		// The write may have landed all the same (its answer lost). Undo
		// only what the stored state does not name; if it cannot be read,
		// undo nothing: garbage is better than a state naming nothing.
		switch saved, lerr := a.saved(); {
		case lerr != nil:
			a.keep = true
			return fmt.Errorf("%w (and the state could not be read back, so what this append wrote is left: %w)", err, lerr)
		case !saved:
			return err
		}
	}
	// Committed. The old tail segments no longer in the state are garbage;
	// what this misses, commit and abort remove.
	ctx = sctx
	if a.old != nil {
		var garbage []string
		for _, t := range a.old.Tail {
			if !slices.Contains(st.Tail, t) {
				garbage = append(garbage, a.s.uploadPrefix(a.id)+t.Name)
			}
		}
		_ = a.s.deleteObjects(ctx, garbage)
	}
	return nil
}

// flushPart uploads buf as the next part, creating the multipart upload
// first if the upload has none.
func (a *appender) flushPart(ctx context.Context, buf []byte) error {
	st := &a.st
	if len(st.Parts) >= MaxParts {
		return fmt.Errorf("upload exceeds S3's %d parts of %d bytes (raise the part size)", MaxParts, st.PartSize)
	}
	if st.UploadID == "" {
		out, err := a.s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket: aws.String(a.s.bucket),
			Key:    aws.String(a.s.blobName(st.Key)),
		})
		if err != nil {
			return fmt.Errorf("creating multipart upload: %w", err)
		}
		st.UploadID = aws.ToString(out.UploadId)
		a.newUpload = st.UploadID
	}
	p, err := a.s.uploadPart(ctx, st, int32(len(st.Parts)+1), buf)
	if err != nil {
		return err
	}
	st.Parts = append(st.Parts, p)
	return nil
}

// undo removes, best effort, what a failed append created, unless keep is
// set; the old state is untouched. Parts uploaded to the old multipart
// upload stay: the state does not list them, and the next append
// overwrites them.
func (a *appender) undo() {
	if a.keep {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if a.newUpload != "" {
		_ = a.s.abortMultipart(ctx, a.s.blobName(a.st.Key), a.newUpload)
	}
	_ = a.s.deleteObjects(ctx, a.written)
}

// UploadSize implements blob.Store.
func (s *Store) UploadSize(ctx context.Context, id string) (_ int64, err error) {
	defer func() { err = unavailable(err) }()
	if err := blob.ValidUploadID(id); err != nil {
		return 0, fmt.Errorf("sizing upload: %w", err)
	}
	st, _, err := s.loadState(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("sizing upload %s: %w", id, err)
	}
	return st.Size, nil
}

// UploadCommit implements blob.Store. The digest is checked against the
// saved hash state, without reading the bytes back; the multipart upload is
// completed with exactly the parts the state lists, so S3 refuses it if any
// part was overwritten since (ETag mismatch).
func (s *Store) UploadCommit(ctx context.Context, id string, want digest.Digest) (_ string, _ int64, err error) {
	defer func() { err = unavailable(err) }()
	if err := blob.ValidUploadID(id); err != nil {
		return "", 0, fmt.Errorf("committing upload: %w", err)
	}
	if _, err := blob.NewHash(want); err != nil {
		return "", 0, fmt.Errorf("committing upload %s: %w", id, err)
	}
	unlock := s.locks.Lock(id)
	defer unlock()

	st, _, err := s.loadState(ctx, id)
	if err != nil {
		return "", 0, fmt.Errorf("committing upload %s: %w", id, err)
	}
	h256, h512, err := st.hashes()
	if err != nil {
		return "", 0, fmt.Errorf("committing upload %s: %w", id, err)
	}
	h := h256
	if want.Algorithm() == digest.SHA512 {
		h = h512
	}
	if got := digest.NewDigest(want.Algorithm(), h); got != want {
		return "", 0, fmt.Errorf("committing upload %s: got %s, want %s: %w", id, got, want, blob.ErrDigestMismatch)
	}
	if err := ctx.Err(); err != nil {
		return "", 0, fmt.Errorf("committing upload %s: %w", id, err)
	}

	tail := st.tailSize()
	buf, release := s.buffer(st.PartSize)
	defer release()
	if err := s.readTail(ctx, id, st.Tail, buf[:tail]); err != nil {
		return "", 0, fmt.Errorf("committing upload %s: %w", id, err)
	}
	// The commit point runs to its end even if the caller goes away:
	// a Complete that lands while the caller sees an error would leave a
	// state naming a multipart upload that is no more.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := s.complete(cctx, st, buf[:tail]); err != nil {
		return "", 0, fmt.Errorf("committing upload %s: %w", id, err)
	}
	// The object is committed. Drop the staging: the state first, so a
	// crash never leaves a state naming missing tails; then the tails and
	// anything a failed append left behind. A failure here does not undo
	// the commit: what is left is reported by WalkUploads, and sweep
	// aborts it once the upload session is gone.
	ctx = context.WithoutCancel(ctx)
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.stateName(id)),
	}); (err == nil || isNotFound(err)) && len(st.Tail) > 0 {
		names := make([]string, len(st.Tail))
		for i, t := range st.Tail {
			names[i] = s.uploadPrefix(id) + t.Name
		}
		_ = s.deleteObjects(ctx, names)
	}
	return st.Key, st.Size, nil
}

// complete writes the object of st, whose tail bytes are tail: one
// PutObject below one part, else the tail as the last part and
// CompleteMultipartUpload. When the multipart upload is gone, it succeeds
// only if the object under st's name is the one completing it would have
// made (an earlier commit whose answer was lost); otherwise it returns
// ErrUploadGone.
func (s *Store) complete(ctx context.Context, st *state, tail []byte) error {
	name := s.blobName(st.Key)
	if st.UploadID == "" {
		return s.putObject(ctx, name, tail)
	}
	parts := st.Parts
	if len(tail) > 0 {
		p, err := s.uploadPart(ctx, st, int32(len(parts)+1), tail)
		if isNoSuchUpload(err) {
			return s.completed(ctx, st, tail)
		}
		if err != nil {
			return err
		}
		parts = append(slices.Clone(parts), p)
	}
	completed := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		completed[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
	}
	_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(name),
		UploadId:        aws.String(st.UploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	})
	if isNoSuchUpload(err) {
		return s.completed(ctx, st, tail)
	}
	if err != nil {
		return fmt.Errorf("completing multipart upload: %w", err)
	}
	return nil
}

// ErrUploadGone: UploadCommit found the upload's S3 multipart upload gone,
// and no object under its name that completing it would have made.
var ErrUploadGone = fmt.Errorf("the multipart upload is gone: committed or aborted by another process; start the upload again: %w", blob.ErrNotFound)

// completed is complete's answer when the multipart upload of st is gone:
// nil if the object under its name has st's size and the ETag S3 gives a
// multipart object made of st's parts and tail (the MD5 of the part ETags'
// MD5s, "-" and the number of parts), so it is the object this commit
// makes; else ErrUploadGone. On a server whose ETags are not MD5s
// (SSE-KMS, SSE-C) the ETags never match, and the commit fails with
// ErrUploadGone: never a false success.
func (s *Store) completed(ctx context.Context, st *state, tail []byte) error {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.blobName(st.Key)),
	})
	if isNotFound(err) {
		return ErrUploadGone
	}
	if err != nil {
		return fmt.Errorf("%w (checking the object: %w)", ErrUploadGone, err)
	}
	if aws.ToInt64(out.ContentLength) != st.Size || aws.ToString(out.ETag) != multipartETag(st.Parts, tail) {
		return ErrUploadGone
	}
	return nil
}

// multipartETag is the ETag S3 gives the multipart object made of parts and
// then tail (when not empty), or "" if a part ETag is not a hex MD5.
func multipartETag(parts []part, tail []byte) string {
	h := md5.New()
	for _, p := range parts {
		sum, err := hex.DecodeString(strings.Trim(p.ETag, `"`))
		if err != nil || len(sum) != md5.Size {
			return ""
		}
		h.Write(sum)
	}
	n := len(parts)
	if len(tail) > 0 {
		sum := md5.Sum(tail)
		h.Write(sum[:])
		n++
	}
	return fmt.Sprintf(`"%x-%d"`, h.Sum(nil), n)
}

// UploadAbort implements blob.Store. It aborts every multipart upload under
// blobs/<id>/ (the state's, and any a crash left without a state) and
// deletes everything under uploads/<id>/.
func (s *Store) UploadAbort(ctx context.Context, id string) (err error) {
	defer func() { err = unavailable(err) }()
	if err := blob.ValidUploadID(id); err != nil {
		return fmt.Errorf("aborting upload: %w", err)
	}
	unlock := s.locks.Lock(id)
	defer unlock()
	// The state's multipart upload by name (a listing may lag on some
	// servers), then any other under blobs/<id>/. An unreadable state is
	// deleted all the same.
	if st, _, lerr := s.loadState(ctx, id); lerr == nil && st.UploadID != "" {
		err = s.abortMultipart(ctx, s.blobName(st.Key), st.UploadID)
	}
	if err == nil {
		err = s.listMultipart(ctx, s.blobsPrefix()+id+"/", func(u types.MultipartUpload) error {
			return s.abortMultipart(ctx, aws.ToString(u.Key), aws.ToString(u.UploadId))
		})
	}
	if err == nil {
		err = s.deletePrefix(ctx, s.uploadPrefix(id))
	}
	if err != nil {
		return fmt.Errorf("aborting upload %s: %w", id, err)
	}
	return nil
}

func (s *Store) abortMultipart(ctx context.Context, name, uploadID string) error {
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.bucket),
		Key:      aws.String(name),
		UploadId: aws.String(uploadID),
	})
	if err != nil && !isNoSuchUpload(err) {
		return fmt.Errorf("aborting multipart upload of %s: %w", name, err)
	}
	return nil
}

// listMultipart calls fn for every multipart upload in progress under
// prefix.
func (s *Store) listMultipart(ctx context.Context, prefix string, fn func(types.MultipartUpload) error) error {
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)}
	for {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return fmt.Errorf("listing multipart uploads: %w", err)
		}
		for _, u := range out.Uploads {
			if err := fn(u); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// deletePrefix deletes every object whose name starts with prefix.
func (s *Store) deletePrefix(ctx context.Context, prefix string) error {
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(prefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		names := make([]string, 0, len(page.Contents))
		for _, o := range page.Contents {
			names = append(names, aws.ToString(o.Key))
		}
		if err := s.deleteObjects(ctx, names); err != nil {
			return err
		}
	}
	return nil
}

// deleteObjects deletes object names (not keys); a missing object is not
// an error.
func (s *Store) deleteObjects(ctx context.Context, names []string) error {
	return errors.Join(s.deleteNames(ctx, names)...)
}

// lastPart returns when the newest part of multipart upload u was
// uploaded, or when u started if it has no part. A monolithic push writes
// its state only at the end of its one append, so until then this is what
// tells sweep that its multipart upload is still growing.
func (s *Store) lastPart(ctx context.Context, u types.MultipartUpload) (time.Time, error) {
	mod := aws.ToTime(u.Initiated)
	pages := s3.NewListPartsPaginator(s.client, &s3.ListPartsInput{
		Bucket:   aws.String(s.bucket),
		Key:      u.Key,
		UploadId: u.UploadId,
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if isNoSuchUpload(err) {
			return mod, nil // completed or aborted since the listing
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("listing parts of %s: %w", aws.ToString(u.Key), err)
		}
		for _, p := range page.Parts {
			if t := aws.ToTime(p.LastModified); t.After(mod) {
				mod = t
			}
		}
	}
	return mod, nil
}

// WalkUploads implements blob.Store. It reports every id with objects under
// uploads/<id>/ (its size is the state's, 0 without one), then every id with
// a multipart upload under blobs/<id>/ and nothing under uploads/ — an
// upload whose first append crashed before writing its state — so sweep can
// abort it. ModTime is the state's (the last append), else the newest object;
// for a multipart upload without a state, its newest part's (ListParts), or
// its start when it has none.
func (s *Store) WalkUploads(ctx context.Context, fn func(id string, info blob.Info) error) (err error) {
	defer func() { err = unavailable(err) }()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("walking uploads: %w", err)
	}
	seen := make(map[string]bool)
	// One id's objects are adjacent in the listing (they share the prefix
	// uploads/<id>/); report an id when the listing moves past it.
	var cur string
	var curInfo blob.Info
	var curState string
	report := func() error {
		if cur == "" {
			return nil
		}
		seen[cur] = true
		info := curInfo
		if curState != "" {
			// A state gone since the listing (committed or aborted)
			// or unusable leaves the listing's size and time.
			st, mod, err := s.loadState(ctx, cur)
			switch {
			case err == nil:
				info.Size, info.ModTime = st.Size, mod
			case !errors.Is(err, errBadState) && !errors.Is(err, blob.ErrNotFound):
				return err
			}
		}
		id := cur
		cur, curState = "", ""
		return fn(id, info)
	}
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.uploadsPrefix()),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("walking uploads: %w", err)
		}
		for _, o := range page.Contents {
			id, rest, ok := strings.Cut(strings.TrimPrefix(aws.ToString(o.Key), s.uploadsPrefix()), "/")
			if !ok || blob.ValidUploadID(id) != nil || rest == "" {
				continue
			}
			if id != cur {
				if err := report(); err != nil {
					return fmt.Errorf("walking uploads: %w", err)
				}
				cur, curInfo = id, blob.Info{Key: id}
			}
			if mod := aws.ToTime(o.LastModified); mod.After(curInfo.ModTime) {
				curInfo.ModTime = mod
			}
			if rest == "state" {
				curState = rest
			}
		}
	}
	if err := report(); err != nil {
		return fmt.Errorf("walking uploads: %w", err)
	}
	// An id may have several multipart uploads (one a crash left, one
	// running): it is as recent as the newest part of any.
	var orphans []string
	mods := make(map[string]time.Time)
	err = s.listMultipart(ctx, s.blobsPrefix(), func(u types.MultipartUpload) error {
		id, _, ok := strings.Cut(strings.TrimPrefix(aws.ToString(u.Key), s.blobsPrefix()), "/")
		if !ok || blob.ValidUploadID(id) != nil || seen[id] {
			return nil
		}
		mod, err := s.lastPart(ctx, u)
		if err != nil {
			return err
		}
		if prev, ok := mods[id]; !ok {
			orphans = append(orphans, id)
		} else if prev.After(mod) {
			mod = prev
		}
		mods[id] = mod
		return nil
	})
	if err != nil {
		return fmt.Errorf("walking uploads: %w", err)
	}
	for _, id := range orphans {
		if err := fn(id, blob.Info{Key: id, ModTime: mods[id]}); err != nil {
			return fmt.Errorf("walking uploads: %w", err)
		}
	}
	return nil
}
