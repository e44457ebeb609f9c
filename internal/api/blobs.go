package api

import (
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// blob serves /v2/<name>/blobs/<digest>: GET (with Range, through
// http.ServeContent, or a redirect to the byte store), HEAD and DELETE.
func (h *handler) blob(w http.ResponseWriter, r *http.Request, rt Route) error {
	ctx := r.Context()
	switch r.Method {
	case http.MethodHead:
		info, err := h.reg.StatBlob(ctx, rt.Repo, rt.Ref)
		if err != nil {
			return err
		}
		hd := w.Header()
		hd.Set("Docker-Content-Digest", info.Digest.String())
		hd.Set("ETag", `"`+info.Digest.String()+`"`)
		hd.Set("Content-Type", "application/octet-stream")
		hd.Set("Content-Length", strconv.FormatInt(info.Size, 10))
		hd.Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		return nil
	case http.MethodGet:
		if h.opts.BlobRedirectTTL > 0 && h.reg.Redirects() {
			return h.redirectBlob(w, r, rt)
		}
		rd, info, err := h.reg.OpenBlob(ctx, rt.Repo, rt.Ref)
		if err != nil {
			return err
		}
		defer rd.Close()
		hd := w.Header()
		hd.Set("Docker-Content-Digest", info.Digest.String())
		hd.Set("ETag", `"`+info.Digest.String()+`"`)
		hd.Set("Content-Type", "application/octet-stream")
		hd.Set("Cache-Control", "max-age=31536000")
		http.ServeContent(w, r, "", time.Time{}, rd)
		return nil
	case http.MethodDelete:
		if err := h.reg.DeleteBlob(ctx, rt.Repo, rt.Ref); err != nil {
			return err
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	return allow(w, r, http.MethodGet, http.MethodHead, http.MethodDelete)
}

// redirectBlob answers a blob GET with 307 Temporary Redirect to a URL of
// the byte store (a presigned S3 URL), after the checks and the revival of
// a streamed GET. 307 keeps the method, and the client resends its Range
// header to the new location, which honours it. The digest headers are set
// here too, for clients that read them from the first response.
func (h *handler) redirectBlob(w http.ResponseWriter, r *http.Request, rt Route) error {
	u, info, err := h.reg.BlobURL(r.Context(), rt.Repo, rt.Ref, h.opts.BlobRedirectTTL)
	if err != nil {
		return err
	}
	hd := w.Header()
	if badRange(r.Header.Get("Range"), info.Size) {
		// Answer as a streamed GET would (http.ServeContent). S3 ignores
		// a malformed Range and sends the whole object (RFC 9110 lets
		// it), which a client asking for bytes 500-0 does not expect.
		hd.Set("Content-Range", "bytes */"+strconv.FormatInt(info.Size, 10))
		http.Error(w, "invalid range", http.StatusRequestedRangeNotSatisfiable)
		return nil
	}
	hd.Set("Docker-Content-Digest", info.Digest.String())
	hd.Set("Location", u)
	// The URL expires: caches may not keep the redirect longer than it lives.
	hd.Set("Cache-Control", "private, max-age="+strconv.Itoa(int(h.opts.BlobRedirectTTL/time.Second/2)))
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusTemporaryRedirect)
	return nil
}

// badRange reports whether http.ServeContent would answer a Range header h
// on an object of size bytes with 416: a header that is not a list of
// byte ranges, a range whose end precedes its start, or, on a non-empty
// object, ranges that all start at or beyond its end. An empty header is
// not bad. FuzzBadRange holds it to http.ServeContent.
func badRange(h string, size int64) bool {
	if h == "" {
		return false
	}
	specs, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return true
	}
	seen, satisfiable := false, false
	for _, spec := range strings.Split(specs, ",") {
		spec = textproto.TrimString(spec)
		if spec == "" {
			continue
		}
		seen = true
		first, last, ok := strings.Cut(spec, "-")
		if !ok {
			return true
		}
		first, last = textproto.TrimString(first), textproto.TrimString(last)
		if first == "" { // suffix: the last n bytes
			n, err := strconv.ParseInt(last, 10, 64)
			if last == "" || last[0] == '-' || err != nil || n < 0 {
				return true
			}
			satisfiable = true
			continue
		}
		start, err := strconv.ParseInt(first, 10, 64)
		if err != nil || start < 0 {
			return true
		}
		if start >= size {
			continue // no overlap; the end is not read (as ServeContent)
		}
		satisfiable = true
		if last != "" {
			end, err := strconv.ParseInt(last, 10, 64)
			if err != nil || end < start {
				return true
			}
		}
	}
	// An empty object ignores ranges that miss it: some clients send a
	// Range on every request.
	return seen && !satisfiable && size > 0
}
