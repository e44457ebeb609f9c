package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/bytesize"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
)

// Storage usage and quotas under /berth/v1 (the list in mgmt.go's comment;
// docs/design/usage.md). Usage is read from the counters; ?split=true also
// classifies a namespace's or repository's bytes by reachability.

// Usage is what a scope holds, as the management API and the CLI show it.
type Usage struct {
	// Scope is "registry", "namespace" or "repository"; Name the
	// namespace or repository ("" for the registry).
	Scope     string `json:"scope"`
	Name      string `json:"name,omitempty"`
	Bytes     int64  `json:"bytes"`
	Size      string `json:"size"` // Bytes for people: "9.8 GiB"
	Manifests int64  `json:"manifests"`
	Blobs     int64  `json:"blobs"`
	// Quota is the quota in force on a namespace, its own or the registry
	// default; absent when none is.
	Quota *Quota `json:"quota,omitempty"`
	// Split classifies the bytes by reachability, when asked.
	Split *UsageSplit `json:"split,omitempty"`
}

// NewUsage is the document of a scope's usage; scope is "registry",
// "namespace" or "repository".
func NewUsage(scope string, u registry.Usage) Usage {
	out := Usage{Scope: scope, Name: u.Scope, Bytes: u.Bytes, Size: bytesize.Format(u.Bytes), Manifests: u.Manifests, Blobs: u.Blobs}
	if u.Quota != nil {
		q := NewQuota(registry.QuotaStatus{Quota: *u.Quota, Default: u.QuotaDefault, Used: u.Bytes})
		out.Quota = &q
	}
	if u.Split != nil {
		s := NewUsageSplit(*u.Split)
		out.Split = &s
	}
	return out
}

// Held is what one class of a split holds.
type Held struct {
	Bytes         int64  `json:"bytes"`
	Size          string `json:"size"`
	Manifests     int64  `json:"manifests"`
	ManifestBytes int64  `json:"manifest_bytes"`
	Blobs         int64  `json:"blobs"`
	BlobBytes     int64  `json:"blob_bytes"`
}

func newHeld(h meta.Held) Held {
	return Held{Bytes: h.Bytes(), Size: bytesize.Format(h.Bytes()), Manifests: h.Manifests, ManifestBytes: h.ManifestBytes,
		Blobs: h.Blobs, BlobBytes: h.BlobBytes}
}

// UsageSplit is the bytes of a scope by reachability at At
// (docs/design/usage.md, "Splitting by reachability"): held by live tags,
// only by the time machine, untagged within the grace, reclaimable now.
// Each blob counts once, in the first class of the manifests holding it.
type UsageSplit struct {
	At          time.Time `json:"at"`
	Live        Held      `json:"live"`
	TimeMachine Held      `json:"time_machine"`
	Untagged    Held      `json:"untagged"`
	Reclaimable Held      `json:"reclaimable"`
}

// NewUsageSplit is the document of a split.
func NewUsageSplit(s registry.Split) UsageSplit {
	return UsageSplit{At: s.At.UTC(), Live: newHeld(s.Split[meta.HeldLive]), TimeMachine: newHeld(s.Split[meta.HeldTimeMachine]),
		Untagged: newHeld(s.Split[meta.HeldUntagged]), Reclaimable: newHeld(s.Split[meta.HeldReclaimable])}
}

// UsageOverview is the registry's usage, its largest namespaces (largest
// first) and what the others hold together.
type UsageOverview struct {
	Registry   Usage   `json:"registry"`
	Namespaces []Usage `json:"namespaces"`
	Others     Usage   `json:"others"`
}

// NewUsageOverview is the document of an overview.
func NewUsageOverview(o registry.Overview) UsageOverview {
	out := UsageOverview{Registry: NewUsage("registry", registry.Usage{Usage: o.Registry}), Namespaces: []Usage{},
		Others: NewUsage("others", registry.Usage{Usage: o.Others})}
	for _, u := range o.Top {
		out.Namespaces = append(out.Namespaces, NewUsage("namespace", u))
	}
	return out
}

// Quota is a namespace's quota, or the registry default (Namespace ""),
// with what the namespace holds against it.
type Quota struct {
	Namespace string `json:"namespace"`
	// Default: the registry default, in force where a namespace has none.
	Default     bool   `json:"default"`
	LimitBytes  int64  `json:"limit_bytes"`
	Limit       string `json:"limit"` // LimitBytes for people
	WarnPercent *int   `json:"warn_percent,omitempty"`
	// UsedBytes is what the namespace holds, UsedPercent its share of
	// the limit (to one decimal; 0 for the default itself).
	UsedBytes   int64      `json:"used_bytes"`
	UsedPercent float64    `json:"used_percent"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   meta.Actor `json:"created_by,omitempty"`
}

// NewQuota is the document of a quota.
func NewQuota(q registry.QuotaStatus) Quota {
	out := Quota{Namespace: q.Namespace, Default: q.Default, LimitBytes: q.Limit, Limit: bytesize.Format(q.Limit),
		WarnPercent: q.WarnPercent, UsedBytes: q.Used, CreatedAt: q.CreatedAt.UTC(), CreatedBy: q.CreatedBy}
	if q.Limit > 0 {
		out.UsedPercent = math.Floor(float64(q.Used)/float64(q.Limit)*1000) / 10
	}
	return out
}

// Quotas is a list of quotas, the registry default first.
type Quotas struct {
	Quotas []Quota `json:"quotas"`
}

// QuotaRequest is the body of a quota PUT: the limit as an operator types
// a size ("50GiB", "1TiB", bytes alone), and the warning threshold in
// percent of it (1–100), none when absent.
type QuotaRequest struct {
	Limit       string `json:"limit"`
	WarnPercent *int   `json:"warn_percent,omitempty"`
}

// maxUsageTop bounds ?top= of GET /berth/v1/usage.
const maxUsageTop = 1000

// defaultUsageTop is ?top= when absent.
const defaultUsageTop = 20

// usageNeeds is what the usage and quota endpoints need: read on a
// namespace or repository to read its usage or quota, admin on the
// namespace to change its quota; the registry's usage, its default quota
// and the list of quotas need a registry administrator.
func usageNeeds(r *http.Request, mr mgmtRoute) []auth.Need {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch mr.Kind {
	case mgmtNSUsage:
		return []auth.Need{auth.NamespaceNeed(mr.Name, auth.ActionPull)}
	case mgmtRepoUsage:
		return []auth.Need{auth.Pull(mr.Name)}
	case mgmtQuota:
		if mr.Name == "" {
			break // the registry default
		}
		if read {
			return []auth.Need{auth.NamespaceNeed(mr.Name, auth.ActionPull)}
		}
		return []auth.Need{auth.NamespaceNeed(mr.Name, auth.ActionAll)}
	}
	return []auth.Need{auth.RegistryNeed(auth.RegistryAdmin)}
}

// usage serves GET /berth/v1/usage[?top=N], .../namespaces/<ns>/usage and
// .../repositories/<name>/_usage[?split=true].
func (h *handler) usage(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	if mr.Kind == mgmtUsage {
		top := defaultUsageTop
		if v := r.URL.Query().Get("top"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxUsageTop {
				return fmt.Errorf("top=%q: want 0 to %d namespaces: %w", v, maxUsageTop, registry.ErrInvalidArgument)
			}
			top = n
		}
		o, err := h.reg.UsageOverview(r.Context(), top)
		if err != nil {
			return err
		}
		return replyJSON(w, r, NewUsageOverview(o))
	}
	split, err := boolQuery(r, "split")
	if err != nil {
		return err
	}
	ns, repo, scope := mr.Name, "", "namespace"
	if mr.Kind == mgmtRepoUsage {
		ns, repo, scope = "", mr.Name, "repository"
	}
	u, err := h.reg.Usage(r.Context(), ns, repo, split)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewUsage(scope, u))
}

// quota serves GET, PUT and DELETE of /berth/v1/namespaces/<ns>/quota and
// of /berth/v1/quota (the registry default), and GET /berth/v1/quotas.
func (h *handler) quota(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if mr.Kind == mgmtQuotas {
		if err := allow(w, r, http.MethodGet, http.MethodHead); err != nil {
			return err
		}
		qs, err := h.reg.Quotas(r.Context())
		if err != nil {
			return err
		}
		out := Quotas{Quotas: []Quota{}}
		for _, q := range qs {
			out.Quotas = append(out.Quotas, NewQuota(q))
		}
		return replyJSON(w, r, out)
	}
	if err := allow(w, r, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete); err != nil {
		return err
	}
	ns := mr.Name // "" for the registry default
	switch r.Method {
	case http.MethodPut:
		var req QuotaRequest
		if err := readBody(r, &req); err != nil {
			return err
		}
		limit, err := bytesize.Parse(req.Limit)
		if err != nil {
			return fmt.Errorf("limit: %v: %w", err, registry.ErrInvalidArgument)
		}
		q, err := h.reg.SetQuota(r.Context(), ns, limit, req.WarnPercent)
		if err != nil {
			return err
		}
		return replyJSON(w, r, NewQuota(q))
	case http.MethodDelete:
		if err := h.reg.DeleteQuota(r.Context(), ns); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	q, err := h.reg.Quota(r.Context(), ns)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewQuota(q))
}
