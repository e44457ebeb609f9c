package api

// The management API: berth's own endpoints beside the OCI API, under
// /berth/v1, for the time machine, tag expiry, namespace retention, purge,
// the collector's status and access control (accounts, grants, visibility,
// signing keys: mgmt_accounts.go). Bodies are JSON; errors use the same OCI
// error envelope as /v2.
//
//	GET    /berth/v1/repositories/<name>/_tags/history          every lifetime of every tag
//	GET    /berth/v1/repositories/<name>/_tags/<tag>/history    every lifetime of one tag
//	DELETE /berth/v1/repositories/<name>/_tags/<tag>/history    forget its ended lifetimes for good [?before=RFC 3339] (admin)
//	POST   /berth/v1/repositories/<name>/_tags/<tag>/restore    {"digest": "sha256:…"} or {"at": "RFC 3339"}
//	PUT    /berth/v1/repositories/<name>/_tags/<tag>/expiry     {"at": "RFC 3339"} or {"in": "2h"}
//	DELETE /berth/v1/repositories/<name>/_tags/<tag>/expiry     the tag no longer expires
//	GET    /berth/v1/namespaces/<ns>                            the namespace (its removed-tag window); 404 if none
//	PUT    /berth/v1/namespaces/<ns>                            create it (201; 200 if it exists), optional {"retention": "72h"}
//	GET    /berth/v1/namespaces/<ns>/retention                  the removed-tag window
//	PUT    /berth/v1/namespaces/<ns>/retention                  {"retention": "72h"} or {"retention": null} (server default); 404 if no such namespace
//	POST   /berth/v1/purge/<ns>[/<repo>]                        purge, synchronously; answers the summary
//	GET    /berth/v1/gc/status[?reclaimable=true]               the review queue (and bytes reclaimable now)
//
// Access control (docs/design/auth.md): users and key rotation need a
// registry administrator, except that a user may change their own password
// with Basic credentials (which prove the current one); everything under
// namespaces/<ns>/ below needs admin on <ns>. No answer carries a secret's
// hash; a robot's secret is answered once, when it is created.
//
//	GET    /berth/v1/users                              every user
//	POST   /berth/v1/users                              {"name", "password", "admin"}: 201, the user
//	GET    /berth/v1/users/<name>                       the user and its grants
//	DELETE /berth/v1/users/<name>                       delete the user and its grants: 204
//	PUT    /berth/v1/users/<name>/password              {"password"}: 204
//	GET    /berth/v1/namespaces/<ns>/robots             the namespace's robots, each with its grants
//	POST   /berth/v1/namespaces/<ns>/robots             {"name", "role", "repository", "expires_in"}: 201, the robot <ns>+<name> and its "secret"
//	DELETE /berth/v1/namespaces/<ns>/robots/<name>      delete the robot <ns>+<name>: 204
//	GET    /berth/v1/namespaces/<ns>/grants             the grants on <ns> and its repositories
//	PUT    /berth/v1/namespaces/<ns>/grants             {"account", "role", "repository"}: the grant (made or changed)
//	DELETE /berth/v1/namespaces/<ns>/grants?account=…[&repository=…]   revoke: 204
//	PUT    /berth/v1/namespaces/<ns>/visibility         {"public": true|false}: the visibility
//	POST   /berth/v1/auth/rotate-key                    {"retire_older": true} (optional): the signing key, the keys retired
//
// Retention policies (mgmt_policies.go, docs/design/policies.md). A
// policy is at the registry's scope, a namespace's or a repository's; the
// lists take the scope in the query (none: the registry, every policy).
// Reading and previewing need read on the scope, saving and deleting
// admin; the registry's scope needs a registry administrator.
//
//	GET    /berth/v1/policies[?namespace=<ns>][&repository=<name>]            the policies of the scope, the registry's with them
//	POST   /berth/v1/policies/_preview[?namespace=<ns>][&repository=<name>]   {"name", "kind", …}, or the "name" of a saved rule: what it would prune now
//	GET    /berth/v1/policies/<policy>                                       a registry policy
//	PUT    /berth/v1/policies/<policy>                                       {"kind", "count" or "span", "tag_pattern", "pattern_matches"}: save it (201; 200 replaced)
//	DELETE /berth/v1/policies/<policy>                                       delete it: 204
//
// and the same three for /berth/v1/namespaces/<ns>/policies/<policy> and
// /berth/v1/repositories/<name>/_policies/<policy>.
//
// Storage usage and quotas (mgmt_usage.go, docs/design/usage.md). Reading a
// namespace's or repository's usage, or a namespace's quota, needs read on
// it; setting or deleting a namespace's quota admin on it; the registry's
// usage, its default quota and the list of quotas a registry administrator.
//
//	GET    /berth/v1/usage[?top=20]                             the registry's usage, its largest namespaces, the others
//	GET    /berth/v1/namespaces/<ns>/usage[?split=true]         what the namespace holds, the quota in force (and the split)
//	GET    /berth/v1/repositories/<name>/_usage[?split=true]    what the repository holds (and the split)
//	GET    /berth/v1/namespaces/<ns>/quota                      the quota in force: its own, else the default; 404 QUOTA_UNKNOWN if none
//	PUT    /berth/v1/namespaces/<ns>/quota                      {"limit": "50GiB", "warn_percent": 80}: the quota
//	DELETE /berth/v1/namespaces/<ns>/quota                      delete its own quota: 204
//	GET    /berth/v1/quota, PUT, DELETE                         the same for the registry default
//	GET    /berth/v1/quotas                                     every quota, the default first
//
// A role is "read", "write" or "admin". "repository" is a full name inside
// <ns> ("acme/app"); absent, the grant is on the whole namespace.
// "expires_in" is a duration ("90d"); absent, the robot never expires.
//
// Repository names contain slashes, so the name ends at the first path
// segment that starts with "_": a repository path component never does
// (OCI name grammar), so the split is unambiguous. A tag may start with
// "_", but it always sits right after "_tags". Durations are read by
// duration.Parse, as everywhere an operator types one ("500ms", "90m",
// "1h30m", "1.5d", "2w"), and written back by duration.Format ("3d", not
// "72h0m0s").

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
)

const mgmtPrefix = "/berth/v1/"

// Collector is what the management API needs of the garbage collector
// (*gc.Collector).
type Collector interface {
	Status(ctx context.Context, reclaimable bool) (gc.Status, error)
	Purge(ctx context.Context, name string, progress func(gc.Summary)) (gc.Summary, error)
	Activity() gc.Activity
}

var _ Collector = (*gc.Collector)(nil)

// mgmtKind is the resource a management path names.
type mgmtKind int

const (
	mgmtUnknown      mgmtKind = iota
	mgmtHistory               // repositories/<name>/_tags[/<tag>]/history
	mgmtRestore               // repositories/<name>/_tags/<tag>/restore
	mgmtExpiry                // repositories/<name>/_tags/<tag>/expiry
	mgmtRetention             // namespaces/<ns>/retention
	mgmtNamespace             // namespaces/<ns>
	mgmtPurge                 // purge/<name>
	mgmtGCStatus              // gc/status
	mgmtUsers                 // users
	mgmtUser                  // users/<name>
	mgmtUserPassword          // users/<name>/password
	mgmtRobots                // namespaces/<ns>/robots
	mgmtRobot                 // namespaces/<ns>/robots/<name>
	mgmtGrants                // namespaces/<ns>/grants
	mgmtVisibility            // namespaces/<ns>/visibility
	mgmtRotateKey             // auth/rotate-key
	mgmtPolicies              // policies (list), policies/_preview (Preview)
	mgmtRegPolicy             // policies/<policy>
	mgmtNSPolicy              // namespaces/<ns>/policies/<policy>
	mgmtRepoPolicy            // repositories/<name>/_policies/<policy>
	mgmtUsage                 // usage (the registry's)
	mgmtNSUsage               // namespaces/<ns>/usage
	mgmtRepoUsage             // repositories/<name>/_usage
	mgmtQuota                 // namespaces/<ns>/quota; quota (Name "": the registry default)
	mgmtQuotas                // quotas
)

// mgmtRoute is a parsed management path (after /berth/v1/). Names and tags
// are not validated yet: the registry does that.
type mgmtRoute struct {
	Kind mgmtKind
	Name string // repository, namespace (of robots, grants, visibility too) or purge target
	Tag  string
	// Account is a user's name (users/<name>), or a robot's name within
	// its namespace Name (namespaces/<ns>/robots/<name>).
	Account string
	// Policy is a retention policy's name (mgmt_policies.go); Preview
	// marks policies/_preview.
	Policy  string
	Preview bool
}

// nsKinds are the resources under namespaces/<ns>/.
var nsKinds = map[string]mgmtKind{
	"retention":  mgmtRetention,
	"robots":     mgmtRobots,
	"grants":     mgmtGrants,
	"visibility": mgmtVisibility,
	"usage":      mgmtNSUsage,
	"quota":      mgmtQuota,
}

func parseMgmtRoute(rest string) mgmtRoute {
	segs := strings.Split(rest, "/")
	switch {
	case rest == "gc/status":
		return mgmtRoute{Kind: mgmtGCStatus}
	case rest == "auth/rotate-key":
		return mgmtRoute{Kind: mgmtRotateKey}
	case rest == "users":
		return mgmtRoute{Kind: mgmtUsers}
	case rest == "usage":
		return mgmtRoute{Kind: mgmtUsage}
	case rest == "quota":
		return mgmtRoute{Kind: mgmtQuota}
	case rest == "quotas":
		return mgmtRoute{Kind: mgmtQuotas}
	case rest == "policies":
		return mgmtRoute{Kind: mgmtPolicies}
	case rest == "policies/_preview":
		return mgmtRoute{Kind: mgmtPolicies, Preview: true}
	case len(segs) == 2 && segs[0] == "policies" && segs[1] != "":
		return mgmtRoute{Kind: mgmtRegPolicy, Policy: segs[1]}
	case len(segs) == 4 && segs[0] == "namespaces" && segs[1] != "" && segs[2] == "policies" && segs[3] != "":
		return mgmtRoute{Kind: mgmtNSPolicy, Name: segs[1], Policy: segs[3]}
	case len(segs) == 2 && segs[0] == "users" && segs[1] != "":
		return mgmtRoute{Kind: mgmtUser, Account: segs[1]}
	case len(segs) == 3 && segs[0] == "users" && segs[1] != "" && segs[2] == "password":
		return mgmtRoute{Kind: mgmtUserPassword, Account: segs[1]}
	case len(segs) == 3 && segs[0] == "namespaces" && segs[1] != "" && nsKinds[segs[2]] != mgmtUnknown:
		return mgmtRoute{Kind: nsKinds[segs[2]], Name: segs[1]}
	case len(segs) == 4 && segs[0] == "namespaces" && segs[1] != "" && segs[2] == "robots" && segs[3] != "":
		return mgmtRoute{Kind: mgmtRobot, Name: segs[1], Account: segs[3]}
	case len(segs) == 2 && segs[0] == "namespaces" && segs[1] != "":
		return mgmtRoute{Kind: mgmtNamespace, Name: segs[1]}
	case len(segs) >= 2 && segs[0] == "purge":
		if name := strings.Join(segs[1:], "/"); !strings.Contains("/"+name+"/", "//") {
			return mgmtRoute{Kind: mgmtPurge, Name: name}
		}
	case len(segs) >= 3 && segs[0] == "repositories":
		i := 1
		for i < len(segs) && !strings.HasPrefix(segs[i], "_") {
			if segs[i] == "" {
				return mgmtRoute{}
			}
			i++
		}
		if i == 1 || i == len(segs) {
			return mgmtRoute{}
		}
		name, tail := strings.Join(segs[1:i], "/"), segs[i+1:]
		if segs[i] == "_usage" && len(tail) == 0 {
			return mgmtRoute{Kind: mgmtRepoUsage, Name: name}
		}
		if segs[i] == "_policies" {
			if len(tail) == 1 && tail[0] != "" {
				return mgmtRoute{Kind: mgmtRepoPolicy, Name: name, Policy: tail[0]}
			}
			return mgmtRoute{}
		}
		if segs[i] != "_tags" {
			return mgmtRoute{}
		}
		switch {
		case len(tail) == 1 && tail[0] == "history":
			return mgmtRoute{Kind: mgmtHistory, Name: name}
		case len(tail) == 2 && tail[0] != "":
			kind := map[string]mgmtKind{"history": mgmtHistory, "restore": mgmtRestore, "expiry": mgmtExpiry}[tail[1]]
			if kind != mgmtUnknown {
				return mgmtRoute{Kind: kind, Name: name, Tag: tail[0]}
			}
		}
	}
	return mgmtRoute{}
}

// errNoCollector answers the collector's endpoints on a server built
// without one (it is in the error table of errors.go).
var errNoCollector = errors.New("this server runs no garbage collector")

func (h *handler) mgmt(w http.ResponseWriter, r *http.Request, rt Route) error {
	mr := parseMgmtRoute(rt.Ref)
	switch mr.Kind {
	case mgmtHistory:
		return h.tagHistory(w, r, mr)
	case mgmtRestore:
		return h.restoreTag(w, r, mr)
	case mgmtExpiry:
		return h.tagExpiry(w, r, mr)
	case mgmtRetention:
		return h.retention(w, r, mr)
	case mgmtNamespace:
		return h.namespace(w, r, mr)
	case mgmtPurge:
		return h.purge(w, r, mr)
	case mgmtGCStatus:
		return h.gcStatus(w, r)
	case mgmtUsers, mgmtUser, mgmtUserPassword, mgmtRobots, mgmtRobot, mgmtGrants, mgmtVisibility, mgmtRotateKey:
		return h.accounts(w, r, mr)
	case mgmtPolicies, mgmtRegPolicy, mgmtNSPolicy, mgmtRepoPolicy:
		return h.policies(w, r, mr)
	case mgmtUsage, mgmtNSUsage, mgmtRepoUsage:
		return h.usage(w, r, mr)
	case mgmtQuota, mgmtQuotas:
		return h.quota(w, r, mr)
	}
	return errRouteUnknown
}

// maxMgmtBody bounds management request bodies.
const maxMgmtBody = 64 << 10

// readBody decodes a JSON request body into v, rejecting unknown fields.
func readBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxMgmtBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("reading JSON body: %v: %w", err, registry.ErrInvalidArgument)
	}
	return nil
}

// replyJSON encodes v with status 200.
func replyJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, "application/json", body)
	return nil
}

// parseDuration reads a management duration with duration.Parse, the
// grammar of every duration an operator types ("500ms", "90m", "1.5d",
// "2w").
func parseDuration(field, s string) (time.Duration, error) {
	d, err := duration.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %v: %w", field, err, registry.ErrInvalidArgument)
	}
	return d, nil
}

// ParseTime reads a management time: RFC 3339 ("2026-01-02T15:04:05Z").
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z: %w", s, registry.ErrInvalidArgument)
	}
	return t, nil
}

// TagLifetime is one row of a tag's history: the tag pointed at Digest from
// Start until End (or is live).
type TagLifetime struct {
	Tag       string        `json:"tag"`
	Digest    digest.Digest `json:"digest"`
	Start     time.Time     `json:"start"`
	End       *time.Time    `json:"end,omitempty"`
	ExpiresAt *time.Time    `json:"expires_at,omitempty"`
	Hidden    bool          `json:"hidden,omitempty"`
	Live      bool          `json:"live"`
	// Restorable: restore would bring the lifetime back now: it ended
	// inside the time-machine window and its manifest is still stored
	// (until RestorableUntil).
	Restorable      bool       `json:"restorable"`
	RestorableUntil *time.Time `json:"restorable_until,omitempty"`
	// StartedBy started the lifetime (push, tag, restore); EndedBy ended
	// it, for EndCause ("deleted", "moved", "expired", "withdrawn",
	// "subject_collected", "purged"). Left out when unknown or not ended.
	StartedBy meta.Actor    `json:"started_by,omitempty"`
	EndedBy   meta.Actor    `json:"ended_by,omitempty"`
	EndCause  meta.EndCause `json:"end_cause,omitempty"`
	// PulledAt is the last recorded pull of the lifetime (a GET or HEAD
	// by tag, recorded at most once per policy.pull_interval); left out
	// when it was never pulled.
	PulledAt *time.Time `json:"pulled_at,omitempty"`
}

// NewTagLifetime is the document of one lifetime; the registry decided
// whether it is restorable (the same check restore makes).
func NewTagLifetime(l registry.Lifetime) TagLifetime {
	t := l.Tag
	return TagLifetime{Tag: t.Name, Digest: t.Manifest, Start: t.Start.UTC(), End: utc(t.End), ExpiresAt: utc(t.ExpiresAt),
		Hidden: t.Hidden, Live: l.Live, Restorable: l.Restorable, RestorableUntil: utc(l.RestorableUntil),
		StartedBy: l.StartedBy, EndedBy: l.EndedBy, EndCause: l.EndCause, PulledAt: utc(t.PulledAt)}
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// TagHistory is the history of one tag of a repository, or of all its
// tags (Tag empty), newest first.
type TagHistory struct {
	Repository string        `json:"repository"`
	Tag        string        `json:"tag,omitempty"`
	Retention  string        `json:"retention"`
	Lifetimes  []TagLifetime `json:"lifetimes"`
}

// NewTagHistory builds the history document the API and the CLI print.
func NewTagHistory(repo, tag string, h registry.History) TagHistory {
	out := TagHistory{Repository: repo, Tag: tag, Retention: duration.Format(h.Retention), Lifetimes: []TagLifetime{}}
	for _, l := range h.Lifetimes {
		out.Lifetimes = append(out.Lifetimes, NewTagLifetime(l))
	}
	return out
}

// NamespaceRetention is a namespace's removed-tag window.
type NamespaceRetention struct {
	Namespace string `json:"namespace"`
	// Retention is the namespace's own window; null means the server's
	// default.
	Retention        *string `json:"retention"`
	Effective        string  `json:"effective"`
	EffectiveSeconds int64   `json:"effective_seconds"`
}

// NewNamespaceRetention builds the retention document the API and the CLI
// print.
func NewNamespaceRetention(r registry.Retention) NamespaceRetention {
	out := NamespaceRetention{Namespace: r.Namespace, Effective: duration.Format(r.Effective), EffectiveSeconds: int64(r.Effective / time.Second)}
	if r.Configured != nil {
		s := duration.Format(*r.Configured)
		out.Retention = &s
	}
	return out
}

// boolQuery reads a boolean query parameter; absent is false.
func boolQuery(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q is not a boolean: %w", name, v, registry.ErrInvalidArgument)
	}
	return b, nil
}
