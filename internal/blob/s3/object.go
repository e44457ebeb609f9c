package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/berth/berth/internal/blob"
)

// Open implements blob.Store. It asks for the object's size with HeadObject;
// the bytes are fetched by the Reader's first Read, with a ranged GetObject
// from the current offset (again after every Seek that moves it).
func (s *Store) Open(ctx context.Context, key string) (_ blob.Reader, err error) {
	defer func() { err = unavailable(err) }()
	if err := blob.ValidKey(key); err != nil {
		return nil, fmt.Errorf("opening blob: %w", err)
	}
	info, err := s.head(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("opening blob %s: %w", key, err)
	}
	return &reader{ctx: ctx, s: s, key: key, size: info.Size}, nil
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (_ blob.Info, err error) {
	defer func() { err = unavailable(err) }()
	if err := blob.ValidKey(key); err != nil {
		return blob.Info{}, fmt.Errorf("stating blob: %w", err)
	}
	info, err := s.head(ctx, key)
	if err != nil {
		return blob.Info{}, fmt.Errorf("stating blob %s: %w", key, err)
	}
	return info, nil
}

func (s *Store) head(ctx context.Context, key string) (blob.Info, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.blobName(key)),
	})
	if isNotFound(err) {
		return blob.Info{}, blob.ErrNotFound
	}
	if err != nil {
		return blob.Info{}, err
	}
	return blob.Info{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// reader is the blob.Reader of Open. body, when not nil, is a GetObject
// response positioned at pos.
type reader struct {
	ctx  context.Context
	s    *Store
	key  string
	size int64
	pos  int64
	body io.ReadCloser
}

func (r *reader) Size() int64 { return r.size }

func (r *reader) Read(p []byte) (n int, err error) {
	defer func() { err = unavailable(err) }()
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.body == nil {
		out, err := r.s.client.GetObject(r.ctx, &s3.GetObjectInput{
			Bucket: aws.String(r.s.bucket),
			Key:    aws.String(r.s.blobName(r.key)),
			Range:  aws.String(fmt.Sprintf("bytes=%d-", r.pos)),
		})
		if isNotFound(err) {
			err = blob.ErrNotFound
		}
		if err != nil {
			return 0, fmt.Errorf("reading blob %s at %d: %w", r.key, r.pos, err)
		}
		r.body = out.Body
	}
	n, err = r.body.Read(p)
	r.pos += int64(n)
	if errors.Is(err, io.EOF) {
		r.body.Close()
		r.body = nil
		if r.pos < r.size {
			return n, fmt.Errorf("reading blob %s: %w at %d of %d bytes", r.key, io.ErrUnexpectedEOF, r.pos, r.size)
		}
		if n > 0 {
			return n, nil
		}
		return 0, io.EOF
	}
	if err != nil {
		return n, fmt.Errorf("reading blob %s at %d: %w", r.key, r.pos, err)
	}
	return n, nil
}

func (r *reader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return 0, fmt.Errorf("seeking blob %s: invalid whence %d", r.key, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("seeking blob %s: negative position %d", r.key, abs)
	}
	if abs != r.pos && r.body != nil {
		r.body.Close()
		r.body = nil
	}
	r.pos = abs
	return abs, nil
}

func (r *reader) Close() error {
	if r.body != nil {
		err := r.body.Close()
		r.body = nil
		return err
	}
	return nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) (err error) {
	defer func() { err = unavailable(err) }()
	if err := blob.ValidKey(key); err != nil {
		return fmt.Errorf("deleting blob: %w", err)
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.blobName(key)),
	})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("deleting blob %s: %w", key, err)
	}
	return nil
}

// DeleteBatch implements blob.BatchDeleter with DeleteObjects, up to 1000
// keys per request, or one DeleteObject per key on a server without
// DeleteObjects. An invalid key fails only its own slot.
func (s *Store) DeleteBatch(ctx context.Context, keys []string) (errs []error) {
	defer func() {
		for i := range errs {
			errs[i] = unavailable(errs[i])
		}
	}()
	errs = make([]error, len(keys))
	slots := make(map[string][]int) // object name -> indexes in keys
	var names []string
	for i, k := range keys {
		if err := blob.ValidKey(k); err != nil {
			errs[i] = fmt.Errorf("deleting blob: %w", err)
			continue
		}
		name := s.blobName(k)
		if _, dup := slots[name]; !dup {
			names = append(names, name)
		}
		slots[name] = append(slots[name], i)
	}
	for j, err := range s.deleteNames(ctx, names) {
		if err != nil {
			for _, i := range slots[names[j]] {
				errs[i] = fmt.Errorf("deleting blob %s: %w", keys[i], err)
			}
		}
	}
	return errs
}

// deleteNames deletes object names (not keys), which must be distinct,
// and returns one error per name, nil where the object is gone (a missing
// object is not an error). It sends DeleteObjects, up to 1000 names per
// request; once a server has answered that it does not implement it (GCS's
// XML API, some gateways), it sends one DeleteObject per name for the
// store's life.
func (s *Store) deleteNames(ctx context.Context, names []string) []error {
	errs := make([]error, len(names))
	index := make(map[string]int, len(names))
	for i, name := range names {
		index[name] = i
	}
	for off := 0; off < len(names); {
		batch := names[off:min(len(names), off+maxDeleteBatch)]
		if s.noDeleteObjects.Load() {
			for i, name := range batch {
				errs[off+i] = s.deleteOne(ctx, name)
			}
			off += len(batch)
			continue
		}
		objs := make([]types.ObjectIdentifier, len(batch))
		for i, name := range batch {
			objs[i] = types.ObjectIdentifier{Key: aws.String(name)}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.bucket),
			Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
		})
		if unimplemented(err) {
			s.noDeleteObjects.Store(true)
			continue // the same batch, one by one
		}
		if err != nil {
			for i := range batch {
				errs[off+i] = err
			}
			off += len(batch)
			continue
		}
		for _, e := range out.Errors {
			if code := aws.ToString(e.Code); code != "NoSuchKey" {
				if i, ok := index[aws.ToString(e.Key)]; ok {
					errs[i] = fmt.Errorf("%s: %s", code, aws.ToString(e.Message))
				}
			}
		}
		off += len(batch)
	}
	return errs
}

// deleteOne deletes one object name; a missing object is not an error.
func (s *Store) deleteOne(ctx context.Context, name string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(name),
	})
	if err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

// unimplemented reports whether err says the server does not implement the
// request (rather than that it failed).
func unimplemented(err error) bool {
	if err == nil {
		return false
	}
	switch errorCode(err) {
	case "NotImplemented", "MethodNotAllowed":
		return true
	}
	switch httpStatus(err) {
	case http.StatusNotImplemented, http.StatusMethodNotAllowed:
		return true
	}
	return false
}

// Walk implements blob.Store: it lists the objects under blobs/ page by
// page.
func (s *Store) Walk(ctx context.Context, fn func(blob.Info) error) (err error) {
	defer func() { err = unavailable(err) }()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("walking blobs: %w", err)
	}
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.blobsPrefix()),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("walking blobs: %w", err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.blobsPrefix())
			if blob.ValidKey(key) != nil {
				continue // not an object of ours (e.g. a directory marker)
			}
			if err := fn(blob.Info{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return fmt.Errorf("walking blobs: %w", err)
			}
		}
	}
	return nil
}

// RedirectURL implements blob.Redirector with a presigned GET (SigV4: at
// most 7 days). Range requests work on it like on any GET.
func (s *Store) RedirectURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := blob.ValidKey(key); err != nil {
		return "", fmt.Errorf("presigning blob: %w", err)
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.blobName(key)),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presigning blob %s: %w", key, err)
	}
	return req.URL, nil
}
