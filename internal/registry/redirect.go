package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/berth/berth/internal/blob"
)

// Redirects reports whether the byte store can hand out URLs that serve a
// blob directly (blob.Redirector), so BlobURL works.
func (r *Registry) Redirects() bool {
	_, ok := r.blobs.(blob.Redirector)
	return ok
}

// BlobURL is OpenBlob for clients that fetch the bytes themselves: after the
// same checks and the same revival as OpenBlob (the repository exists, the
// blob is linked to it, a pending review is postponed), it returns a URL
// that serves the blob's bytes, Range requests included, for ttl. It wraps
// ErrUnsupported when the byte store is not a blob.Redirector.
//
// The URL is not checked against the store: the row was just read, and
// bytes are deleted only after their row (DESIGN.md §4). A collection that
// lands between this call and the client's fetch makes the fetch fail, as a
// stream cut short by the same collection would.
func (r *Registry) BlobURL(ctx context.Context, repo, d string, ttl time.Duration) (string, BlobInfo, error) {
	rd, ok := r.blobs.(blob.Redirector)
	if !ok {
		return "", BlobInfo{}, fmt.Errorf("redirecting to blob %s: the byte store cannot: %w", d, ErrUnsupported)
	}
	b, err := r.readBlob(ctx, repo, d)
	if err != nil {
		return "", BlobInfo{}, err
	}
	u, err := rd.RedirectURL(ctx, b.StorageKey, ttl)
	if err != nil {
		return "", BlobInfo{}, fmt.Errorf("presigning blob %s: %w", b.Digest, err)
	}
	return u, BlobInfo{Digest: b.Digest, Size: b.Size}, nil
}
