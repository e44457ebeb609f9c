package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/registry"
)

// tagHistory serves GET .../_tags/history and .../_tags/<tag>/history, and
// DELETE .../_tags/<tag>/history (forgetTag).
func (h *handler) tagHistory(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if mr.Tag != "" && r.Method == http.MethodDelete {
		return h.forgetTag(w, r, mr)
	}
	methods := []string{http.MethodGet, http.MethodHead}
	if mr.Tag != "" {
		methods = append(methods, http.MethodDelete)
	}
	if err := allow(w, r, methods...); err != nil {
		return err
	}
	hist, err := h.reg.TagHistory(r.Context(), mr.Name, mr.Tag)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewTagHistory(mr.Name, mr.Tag, hist))
}

// forgetTag serves DELETE .../_tags/<tag>/history[?before=RFC 3339]: the
// ended lifetimes of the tag (those that ended before the time, if given)
// are deleted permanently, out of the time machine, and the collector
// reviews the manifests they kept at once. The live lifetime stays.
func (h *handler) forgetTag(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	var before *time.Time
	if s := r.URL.Query().Get("before"); s != "" {
		t, err := ParseTime(s)
		if err != nil {
			return err
		}
		before = &t
	}
	f, err := h.reg.ForgetTag(r.Context(), mr.Name, mr.Tag, before)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewTagForgotten(f))
}

// TagForgotten is the answer to a DELETE of a tag's history: how many
// ended lifetimes were deleted, and the manifests they pointed at, which
// the collector deletes at its next run unless something else keeps them.
type TagForgotten struct {
	Repository string          `json:"repository"`
	Tag        string          `json:"tag"`
	Forgotten  int             `json:"forgotten"`
	Manifests  []digest.Digest `json:"manifests"`
}

// NewTagForgotten is the document of a forget.
func NewTagForgotten(f registry.Forgotten) TagForgotten {
	out := TagForgotten{Repository: f.Repository, Tag: f.Tag, Forgotten: f.Lifetimes, Manifests: f.Manifests}
	if out.Manifests == nil {
		out.Manifests = []digest.Digest{}
	}
	return out
}

// restoreRequest is the body of POST .../restore: exactly one field.
type restoreRequest struct {
	Digest string `json:"digest,omitempty"`
	At     string `json:"at,omitempty"`
}

// restoreTag serves POST .../_tags/<tag>/restore.
func (h *handler) restoreTag(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodPost); err != nil {
		return err
	}
	var req restoreRequest
	if err := readBody(r, &req); err != nil {
		return err
	}
	target := registry.RestoreTarget{Digest: req.Digest}
	if req.At != "" {
		at, err := ParseTime(req.At)
		if err != nil {
			return err
		}
		target.At = &at
	}
	res, err := h.reg.RestoreTag(r.Context(), mr.Name, mr.Tag, target)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewTagRestore(res))
}

// TagRestore is the answer to a restore: the tag's live lifetime, and
// whether the restore changed anything (false when the tag already pointed
// at that manifest).
type TagRestore struct {
	TagLifetime
	Changed bool `json:"changed"`
}

// NewTagRestore is the document of a restore.
func NewTagRestore(r registry.Restored) TagRestore {
	return TagRestore{TagLifetime: NewTagLifetime(r.Lifetime), Changed: r.Changed}
}

// expiryRequest is the body of PUT .../expiry: exactly one field.
type expiryRequest struct {
	At string `json:"at,omitempty"`
	In string `json:"in,omitempty"`
}

// tagExpiry serves PUT and DELETE .../_tags/<tag>/expiry.
func (h *handler) tagExpiry(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodPut, http.MethodDelete); err != nil {
		return err
	}
	var e registry.Expiry
	if r.Method == http.MethodPut {
		var req expiryRequest
		if err := readBody(r, &req); err != nil {
			return err
		}
		switch {
		case (req.At == "") == (req.In == ""):
			return fmt.Errorf(`expiry needs exactly one of "at" or "in": %w`, registry.ErrInvalidArgument)
		case req.At != "":
			t, err := ParseTime(req.At)
			if err != nil {
				return err
			}
			e.At = &t
		default:
			d, err := parseDuration("in", req.In)
			if err != nil {
				return err
			}
			e.In = &d
		}
	}
	l, err := h.reg.SetTagExpiry(r.Context(), mr.Name, mr.Tag, e)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewTagLifetime(l))
}
