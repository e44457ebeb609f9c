package api

import (
	"fmt"
	"net/http"

	"github.com/berth/berth/internal/registry"
)

// tagHistory serves GET .../_tags/history and .../_tags/<tag>/history.
func (h *handler) tagHistory(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	hist, err := h.reg.TagHistory(r.Context(), mr.Name, mr.Tag)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewTagHistory(mr.Name, mr.Tag, hist))
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
