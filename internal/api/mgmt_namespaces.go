package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/berth/berth/internal/registry"
)

// retentionRequest is the body of PUT .../retention and, optionally, of
// PUT /berth/v1/namespaces/<ns>: a duration, or null for the server's
// default.
type retentionRequest struct {
	Retention json.RawMessage `json:"retention"`
}

// window reads the retention of the request: nil for null (the server's
// default). given is false when the body has no "retention".
func (req retentionRequest) window() (ret *time.Duration, given bool, err error) {
	switch string(req.Retention) {
	case "":
		return nil, false, nil
	case "null":
		return nil, true, nil
	}
	var s string
	if err := json.Unmarshal(req.Retention, &s); err != nil {
		return nil, false, fmt.Errorf("retention must be a string such as \"72h\" or null: %w", registry.ErrInvalidArgument)
	}
	d, err := parseDuration("retention", s)
	if err != nil {
		return nil, false, err
	}
	return &d, true, nil
}

// retention serves GET and PUT /berth/v1/namespaces/<ns>/retention. Both
// answer 404 NAME_UNKNOWN for a namespace that does not exist: setting a
// window never creates one (PUT /berth/v1/namespaces/<ns> does).
func (h *handler) retention(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead, http.MethodPut); err != nil {
		return err
	}
	if r.Method == http.MethodPut {
		var req retentionRequest
		if err := readBody(r, &req); err != nil {
			return err
		}
		ret, given, err := req.window()
		if err != nil {
			return err
		}
		if !given {
			return fmt.Errorf(`retention: the body needs "retention": a duration, or null for the server default: %w`, registry.ErrInvalidArgument)
		}
		if _, err := h.reg.SetNamespaceRetention(r.Context(), mr.Name, ret); err != nil {
			return err
		}
	}
	got, err := h.reg.NamespaceRetention(r.Context(), mr.Name)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewNamespaceRetention(got))
}

// namespace serves GET and PUT /berth/v1/namespaces/<ns>. GET answers the
// namespace (its window) or 404 NAME_UNKNOWN. PUT creates it: 201 when it
// did not exist, 200 when it did; a "retention" in the body (optional) is
// its window either way. Creating a namespace is an administrator's act
// once access control exists.
func (h *handler) namespace(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead, http.MethodPut); err != nil {
		return err
	}
	if r.Method != http.MethodPut {
		got, err := h.reg.NamespaceRetention(r.Context(), mr.Name)
		if err != nil {
			return err
		}
		return replyJSON(w, r, NewNamespaceRetention(got))
	}
	req, err := optionalBody(r)
	if err != nil {
		return err
	}
	ret, given, err := req.window()
	if err != nil {
		return err
	}
	got, created, err := h.reg.CreateNamespace(r.Context(), mr.Name, ret)
	if err != nil {
		return err
	}
	if !created && given {
		if _, err := h.reg.SetNamespaceRetention(r.Context(), mr.Name, ret); err != nil {
			return err
		}
		if got, err = h.reg.NamespaceRetention(r.Context(), mr.Name); err != nil {
			return err
		}
	}
	body, err := json.Marshal(NewNamespaceRetention(got))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, r, status, "application/json", body)
	return nil
}

// optionalBody reads a retentionRequest from a body that may be empty.
func optionalBody(r *http.Request) (retentionRequest, error) {
	var req retentionRequest
	b, err := io.ReadAll(io.LimitReader(r.Body, maxMgmtBody+1))
	if err != nil {
		return req, fmt.Errorf("reading body: %v: %w", err, registry.ErrInvalidArgument)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return req, nil
	}
	if len(b) > maxMgmtBody {
		return req, fmt.Errorf("body is larger than %d bytes: %w", maxMgmtBody, registry.ErrInvalidArgument)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("reading JSON body: %v: %w", err, registry.ErrInvalidArgument)
	}
	return req, nil
}
