package api

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/registry"
)

func uploadLocation(repo, id string) string {
	return "/v2/" + repo + "/blobs/uploads/" + id
}

// setRange sets the Range header of an upload holding size bytes:
// "0-<size-1>", and "0-0" when it is empty (as distribution does).
func setRange(w http.ResponseWriter, size int64) {
	end := size - 1
	if end < 0 {
		end = 0
	}
	w.Header().Set("Range", "0-"+strconv.FormatInt(end, 10))
}

// writeUpload answers with the state of an upload session.
func writeUpload(w http.ResponseWriter, status int, up registry.Upload) {
	hd := w.Header()
	hd.Set("Location", uploadLocation(up.Repo, up.ID))
	hd.Set("Docker-Upload-UUID", up.ID)
	setRange(w, up.Size)
	hd.Set("Content-Length", "0")
	w.WriteHeader(status)
}

func writeBlobCreated(w http.ResponseWriter, repo, digest string) {
	hd := w.Header()
	hd.Set("Location", "/v2/"+repo+"/blobs/"+digest)
	hd.Set("Docker-Content-Digest", digest)
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// uploads serves POST /v2/<name>/blobs/uploads/: a cross-repository mount
// (?mount=&from=), a monolithic upload (?digest=), or a new session.
func (h *handler) uploads(w http.ResponseWriter, r *http.Request, rt Route) error {
	if err := allow(w, r, http.MethodPost); err != nil {
		return err
	}
	ctx := r.Context()
	q := r.URL.Query()
	if q.Has("mount") {
		from := q.Get("from")
		if from != "" && !accessOf(ctx).may(ctx, auth.Pull(from)) {
			// Not permitted to read the source: no mount, and no hint
			// whether the blob is there; a plain upload starts instead,
			// as distribution does. "" mounts only what the repository
			// already links.
			from = ""
		}
		mounted, up, err := h.reg.MountBlob(ctx, rt.Repo, from, q.Get("mount"))
		if err != nil {
			return err
		}
		if mounted {
			writeBlobCreated(w, rt.Repo, q.Get("mount"))
			return nil
		}
		writeUpload(w, http.StatusAccepted, up)
		return nil
	}
	if q.Has("digest") {
		info, err := h.reg.PushBlob(ctx, rt.Repo, q.Get("digest"), r.ContentLength, r.Body)
		if err != nil {
			return err
		}
		writeBlobCreated(w, rt.Repo, info.Digest.String())
		return nil
	}
	up, err := h.reg.StartUpload(ctx, rt.Repo)
	if err != nil {
		return err
	}
	writeUpload(w, http.StatusAccepted, up)
	return nil
}

// upload serves /v2/<name>/blobs/uploads/<id>: GET (status), PATCH (a
// chunk, streamed), PUT (?digest=, with an optional last chunk) and DELETE.
func (h *handler) upload(w http.ResponseWriter, r *http.Request, rt Route) error {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet:
		up, err := h.reg.UploadStatus(ctx, rt.Repo, rt.UploadID)
		if err != nil {
			return err
		}
		writeUpload(w, http.StatusNoContent, up)
		return nil
	case http.MethodPatch:
		offset, body, err := chunk(r)
		if err != nil {
			return err
		}
		up, err := h.reg.AppendUpload(ctx, rt.Repo, rt.UploadID, offset, r.ContentLength, body)
		if err != nil {
			return err
		}
		writeUpload(w, http.StatusAccepted, up)
		return nil
	case http.MethodPut:
		q := r.URL.Query()
		if !q.Has("digest") {
			return fmt.Errorf("closing an upload needs the digest query parameter: %w", registry.ErrDigestInvalid)
		}
		offset, body, err := chunk(r)
		if err != nil {
			return err
		}
		if r.ContentLength == 0 {
			body = nil // the usual close after PATCHes: no bytes, no append
		}
		info, err := h.reg.FinishUpload(ctx, rt.Repo, rt.UploadID, q.Get("digest"), offset, r.ContentLength, body)
		if err != nil {
			return err
		}
		writeBlobCreated(w, rt.Repo, info.Digest.String())
		return nil
	case http.MethodDelete:
		if err := h.reg.CancelUpload(ctx, rt.Repo, rt.UploadID); err != nil {
			return err
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return allow(w, r, http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete)
}

// chunk reads the Content-Range of a PATCH or PUT: the offset where the
// chunk starts (-1 without the header) and a body that must hold exactly the
// announced range (parseContentRange says which headers are accepted). A
// header that is not one, or whose length does not fit in an int64, is
// refused before a byte of the body is read.
func chunk(r *http.Request) (int64, io.Reader, error) {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return -1, r.Body, nil
	}
	start, n, ok := parseContentRange(cr)
	if !ok {
		return 0, nil, fmt.Errorf("Content-Range %q is not <start>-<end> with 0 <= start <= end < 2^63-1: %w", cr, registry.ErrRangeInvalid)
	}
	if r.ContentLength >= 0 && r.ContentLength != n {
		return 0, nil, fmt.Errorf("Content-Range %q announces %d bytes, Content-Length %d: %w", cr, n, r.ContentLength, registry.ErrSizeInvalid)
	}
	return start, &exactReader{r: r.Body, want: n, cr: cr}, nil
}

// parseContentRange reads the Content-Range of an upload chunk:
// "<start>-<end>", inclusive, as the distribution spec writes it, with an
// optional "bytes=" or "bytes " prefix and "/<total>" or "/*" suffix (what
// some clients send; the total is checked for form only). The numbers are
// plain decimal digits, with no sign, and start <= end < math.MaxInt64, so
// that the length, end-start+1, is a positive int64. It returns the start
// and the length.
func parseContentRange(h string) (start, length int64, ok bool) {
	s := textproto.TrimString(h)
	if rest, found := strings.CutPrefix(s, "bytes="); found {
		s = rest
	} else if rest, found := strings.CutPrefix(s, "bytes "); found {
		s = rest
	}
	s, total, hasTotal := strings.Cut(s, "/")
	if hasTotal && total != "*" {
		if _, ok := parseDecimal(total); !ok {
			return 0, 0, false
		}
	}
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, ok1 := parseDecimal(a)
	end, ok2 := parseDecimal(b)
	if !ok1 || !ok2 || end < start || end == math.MaxInt64 {
		return 0, 0, false
	}
	return start, end - start + 1, true
}

// parseDecimal reads a non-negative int64 written as decimal digits only
// (strconv.ParseInt also takes a sign).
func parseDecimal(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// exactReader fails, so that the append is rolled back, when the body does
// not hold exactly want bytes. It reads at most one byte past want, to
// see a body that is too long.
type exactReader struct {
	r    io.Reader
	want int64
	got  int64
	cr   string
}

func (e *exactReader) Read(p []byte) (int, error) {
	// rem+1 cannot overflow: rem < len(p).
	if rem := e.want - e.got; rem < int64(len(p)) {
		p = p[:rem+1]
	}
	n, err := e.r.Read(p)
	e.got += int64(n)
	if e.got > e.want {
		return n, fmt.Errorf("body is longer than Content-Range %q: %w", e.cr, registry.ErrSizeInvalid)
	}
	if err == io.EOF && e.got != e.want {
		return n, fmt.Errorf("body is %d bytes, Content-Range %q announces %d: %w", e.got, e.cr, e.want, registry.ErrSizeInvalid)
	}
	return n, err
}
