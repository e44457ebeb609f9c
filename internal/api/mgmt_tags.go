package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/registry"
)

// tagHistory serves GET .../_tags/history and .../_tags/<tag>/history.
func (h *handler) tagHistory(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	rows, err := h.reg.TagHistory(r.Context(), mr.Name, mr.Tag)
	if err != nil {
		return err
	}
	ret, err := h.repoRetention(r, mr.Name)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewTagHistory(mr.Name, mr.Tag, rows, ret, h.reg.Now()))
}

// repoRetention is the effective window of repo's namespace.
func (h *handler) repoRetention(r *http.Request, repo string) (time.Duration, error) {
	ns, _ := oci.SplitRepo(repo)
	ret, err := h.reg.NamespaceRetention(r.Context(), ns)
	if err != nil {
		return 0, err
	}
	return ret.Effective, nil
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
	t, err := h.reg.RestoreTag(r.Context(), mr.Name, mr.Tag, target)
	if err != nil {
		return err
	}
	ret, err := h.repoRetention(r, mr.Name)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewTagLifetime(t, ret, h.reg.Now()))
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
	var at *time.Time
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
			at = &t
		default:
			d, err := ParseDuration(req.In)
			if err != nil {
				return err
			}
			if d < 0 {
				return fmt.Errorf("expiry in %s is negative: %w", d, registry.ErrInvalidArgument)
			}
			t := h.reg.Now().Add(d)
			at = &t
		}
	}
	t, err := h.reg.SetTagExpiry(r.Context(), mr.Name, mr.Tag, at)
	if err != nil {
		return err
	}
	ret, err := h.repoRetention(r, mr.Name)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewTagLifetime(t, ret, h.reg.Now()))
}
