package api

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth/berth/internal/registry"
)

// manifest serves /v2/<name>/manifests/<reference>.
//
// GET and HEAD answer the stored media type whatever the Accept header
// says: berth converts nothing, and clients check the Content-Type.
func (h *handler) manifest(w http.ResponseWriter, r *http.Request, rt Route) error {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		m, err := h.reg.GetManifest(ctx, rt.Repo, rt.Ref)
		if err != nil {
			return err
		}
		hd := w.Header()
		hd.Set("Docker-Content-Digest", m.Digest.String())
		hd.Set("ETag", `"`+m.Digest.String()+`"`)
		writeJSON(w, r, http.StatusOK, m.MediaType, m.Body)
		return nil
	case http.MethodPut:
		body, err := h.readManifest(r)
		if err != nil {
			return err
		}
		pushed, err := h.reg.PutManifest(ctx, rt.Repo, rt.Ref, r.Header.Get("Content-Type"), body)
		if err != nil {
			return err
		}
		hd := w.Header()
		hd.Set("Location", "/v2/"+rt.Repo+"/manifests/"+pushed.Digest.String())
		hd.Set("Docker-Content-Digest", pushed.Digest.String())
		if pushed.Subject != "" {
			hd.Set("OCI-Subject", pushed.Subject.String())
		}
		hd.Set("Content-Length", "0")
		w.WriteHeader(http.StatusCreated)
		return nil
	case http.MethodDelete:
		var err error
		if strings.Contains(rt.Ref, ":") {
			err = h.reg.DeleteManifest(ctx, rt.Repo, rt.Ref)
		} else {
			err = h.reg.DeleteTag(ctx, rt.Repo, rt.Ref)
		}
		if err != nil {
			return err
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	return allow(w, r, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete)
}

// readManifest reads a manifest body of at most MaxManifestBytes. A body
// shorter than its Content-Length is SIZE_INVALID; a longer one, or a
// Content-Length over the limit, is ErrTooLarge (413).
func (h *handler) readManifest(r *http.Request) ([]byte, error) {
	limit := h.opts.MaxManifestBytes
	if r.ContentLength > limit {
		return nil, fmt.Errorf("manifest Content-Length %d is more than the %d-byte limit: %w", r.ContentLength, limit, registry.ErrTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading manifest body (%d bytes read, Content-Length %d): %v: %w", len(body), r.ContentLength, err, registry.ErrSizeInvalid)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("manifest is more than the %d-byte limit: %w", limit, registry.ErrTooLarge)
	}
	if r.ContentLength >= 0 && int64(len(body)) != r.ContentLength {
		return nil, fmt.Errorf("manifest body is %d bytes, Content-Length said %s: %w", len(body), strconv.FormatInt(r.ContentLength, 10), registry.ErrSizeInvalid)
	}
	return body, nil
}
