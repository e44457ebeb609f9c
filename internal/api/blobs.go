package api

import (
	"net/http"
	"strconv"
	"time"
)

// blob serves /v2/<name>/blobs/<digest>: GET (with Range, through
// http.ServeContent), HEAD and DELETE.
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
