package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/registry"
)

// purge serves POST /berth/v1/purge/<ns>[/<repo>]: it runs the purge to
// the end and answers its gc.Summary. A target already being purged is
// resumed. A purge that stops early (the client went away, a write raced
// it) is answered 409 PURGE_INCOMPLETE and is resumable: send the request
// again, or let the collector's workers finish it.
func (h *handler) purge(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodPost); err != nil {
		return err
	}
	if h.opts.Collector == nil {
		return errNoCollector
	}
	if err := oci.ValidateRepoName(mr.Name); err != nil {
		return err
	}
	s, err := h.opts.Collector.Purge(r.Context(), mr.Name, nil)
	if errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("nothing named %q to purge: %w", mr.Name, registry.ErrNameUnknown)
	}
	if err != nil {
		return err
	}
	return replyJSON(w, r, s)
}

// gcStatusReply is the answer of GET /berth/v1/gc/status: the queue, and
// with ?activity=true the record of this process's collector.
type gcStatusReply struct {
	gc.Status
	Activity *gc.Activity `json:"activity,omitempty"`
}

// gcStatus serves GET /berth/v1/gc/status[?reclaimable=true][&activity=true].
// With reclaimable it runs a dry run, whose cost follows the garbage due
// now; with activity it adds what this process's collector did lately
// (gc.Activity: recent deletions, runs, errors, throughput), read from
// memory — a replica answers its own.
func (h *handler) gcStatus(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	if h.opts.Collector == nil {
		return errNoCollector
	}
	reclaimable, err := boolQuery(r, "reclaimable")
	if err != nil {
		return err
	}
	activity, err := boolQuery(r, "activity")
	if err != nil {
		return err
	}
	st, err := h.opts.Collector.Status(r.Context(), reclaimable)
	if err != nil {
		return err
	}
	reply := gcStatusReply{Status: st}
	if activity {
		a := h.opts.Collector.Activity()
		reply.Activity = &a
	}
	return replyJSON(w, r, reply)
}
