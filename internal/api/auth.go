package api

// Access control on the OCI API and /berth/v1 (docs/design/auth.md). Every
// request names what it needs (needsOf); its credentials — a bearer token,
// HTTP Basic, or none — say who it is; the token's access list, or the
// database for Basic and anonymous requests, says whether it may.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/berth/berth/internal/auth"
)

// Authenticator is what the API needs of access control (*auth.Service).
type Authenticator interface {
	Authenticate(ctx context.Context, name, secret, client string) (auth.Subject, error)
	Authorize(ctx context.Context, sub auth.Subject, needs ...auth.Need) error
	VerifyToken(ctx context.Context, raw string) (auth.Subject, []auth.Access, error)
	IssueToken(ctx context.Context, sub auth.Subject, service string, scopes []auth.Access) (auth.Token, error)
	External() *auth.ExternalIssuer
	ServiceName() string
}

var _ Authenticator = (*auth.Service)(nil)

// Errors of access control, answered through the error table.
var (
	// errUnauthorized answers 401 with a challenge.
	errUnauthorized = errors.New("authentication required")
)

// challengeError is a 401 with its challenge's error attribute
// ("invalid_token", "insufficient_scope") and needs.
type challengeError struct {
	err   error
	code  string // the challenge's error="…", or ""
	needs []auth.Need
	basic bool // the token endpoint asks for Basic credentials
}

func (e *challengeError) Error() string { return e.err.Error() }
func (e *challengeError) Unwrap() error { return errUnauthorized }

// access is the subject of a request and how it proved it.
type access struct {
	subject auth.Subject
	// token is the verified bearer token's access list; nil for Basic or
	// anonymous requests, which are authorized from the database.
	token   []auth.Access
	bearer  bool
	checker Authenticator
}

type accessKey struct{}

// accessOf returns the access of r (anonymous when access control is off).
func accessOf(ctx context.Context) *access {
	a, _ := ctx.Value(accessKey{}).(*access)
	if a == nil {
		return &access{subject: auth.Anonymous}
	}
	return a
}

// may reports whether the request may also do n (a mount's source): the
// token says so, or the database for Basic and anonymous requests. With
// access control off, everything may.
func (a *access) may(ctx context.Context, n auth.Need) bool {
	if a.checker == nil {
		return true
	}
	if a.bearer {
		return auth.Covers(a.token, n)
	}
	return a.checker.Authorize(ctx, a.subject, n) == nil
}

// authenticate reads r's credentials and checks that it may do needs. It
// returns the request's access, or an error the table answers (401 with a
// challenge, 403 DENIED, 429). wants are what the request would use if
// permitted (a mount's source): they join the challenge's scope, and a
// token lacking one that the subject is permitted is answered
// insufficient_scope so that the client fetches a wider one.
func (h *handler) authenticate(r *http.Request, needs, wants []auth.Need) (*access, error) {
	ctx := r.Context()
	a := &access{subject: auth.Anonymous, checker: h.opts.Auth}
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		sub, granted, err := h.opts.Auth.VerifyToken(ctx, strings.TrimSpace(cred))
		if err != nil {
			return nil, &challengeError{err: err, code: "invalid_token", needs: append(needs, wants...)}
		}
		a.subject, a.token, a.bearer = sub, granted, true
		for _, n := range needs {
			if auth.Covers(granted, n) {
				continue
			}
			// The token does not cover it. Ask the database (only on
			// this failure path): a subject that is permitted needs a
			// wider token; one that is not is denied. An anonymous
			// subject is asked to authenticate.
			// With an external issuer berth cannot know what the
			// issuer would grant: the client asks it.
			if sub.IsAnonymous() || h.opts.Auth.External() != nil || h.opts.Auth.Authorize(ctx, sub, n) == nil {
				return nil, &challengeError{err: fmt.Errorf("the token does not grant %s", n), code: "insufficient_scope", needs: needs}
			}
			return nil, fmt.Errorf("%s may not %s %s: %w", sub.Actor, n.Action, n.Name, auth.ErrDenied)
		}
		for _, n := range wants {
			if !auth.Covers(granted, n) && !sub.IsAnonymous() && (h.opts.Auth.External() != nil || h.opts.Auth.Authorize(ctx, sub, n) == nil) {
				return nil, &challengeError{err: fmt.Errorf("the token does not grant %s", n), code: "insufficient_scope", needs: append(needs, wants...)}
			}
		}
		return a, nil
	case strings.EqualFold(scheme, "Basic"):
		name, secret, ok := parseBasic(cred)
		if !ok {
			return nil, &challengeError{err: errors.New("malformed Basic credentials"), needs: needs}
		}
		h.warnPlainBasic(r)
		sub, err := h.opts.Auth.Authenticate(ctx, name, secret, clientAddr(r))
		if errors.Is(err, auth.ErrUnauthenticated) {
			return nil, &challengeError{err: errors.New("invalid username or password"), needs: needs}
		}
		if err != nil {
			return nil, err
		}
		a.subject = sub
		if err := h.opts.Auth.Authorize(ctx, sub, needs...); err != nil {
			return nil, err
		}
		return a, nil
	case scheme != "":
		return nil, &challengeError{err: fmt.Errorf("unsupported authorization scheme %q", scheme), needs: needs}
	}
	// No credentials: anonymous may pull from public namespaces; /v2/
	// itself always asks, so that docker login sees the challenge.
	if len(needs) == 0 {
		return nil, &challengeError{err: errors.New("authentication required"), needs: append(needs, wants...)}
	}
	if err := h.opts.Auth.Authorize(ctx, auth.Anonymous, needs...); err != nil {
		if errors.Is(err, auth.ErrDenied) {
			return nil, &challengeError{err: errors.New("authentication required"), needs: append(needs, wants...)}
		}
		return nil, err
	}
	return a, nil
}

func parseBasic(cred string) (name, secret string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(raw), ":")
}

// plainBasicWarned remembers the client addresses warned about sending a
// password over plain HTTP (once each; bounded).
type warnOnce struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (w *warnOnce) first(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil || len(w.seen) > 10000 {
		w.seen = map[string]bool{}
	}
	if w.seen[key] {
		return false
	}
	w.seen[key] = true
	return true
}

// warnPlainBasic logs, once per client address, Basic credentials sent
// over plain HTTP from another machine.
func (h *handler) warnPlainBasic(r *http.Request) {
	if r.TLS != nil || h.forwardedTLS(r) {
		return
	}
	addr := clientAddr(r)
	if ip := net.ParseIP(addr); ip != nil && ip.IsLoopback() {
		return
	}
	if h.basicWarned.first(addr) {
		h.log.Warn("a client sent a password over plain HTTP; configure tls.cert and tls.key (or a TLS proxy) so that passwords are not readable on the network", "client", addr)
	}
}

// forwardedTLS reports whether a trusted proxy says the client spoke TLS
// to it (X-Forwarded-Proto: https): berth behind a TLS-terminating proxy
// sees plain HTTP from the proxy, and the password did not cross the
// network in clear text.
func (h *handler) forwardedTLS(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !isTrusted(peer.Unmap(), h.opts.TrustedProxies) {
		return false
	}
	proto := r.Header.Get("X-Forwarded-Proto")
	if i := strings.LastIndexByte(proto, ','); i >= 0 {
		proto = proto[i+1:] // the hop nearest berth, a trusted proxy
	}
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// needsOf is what a request needs. nil means authentication alone (/v2/).
func needsOf(r *http.Request, rt Route) []auth.Need {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch rt.Kind {
	case KindBase:
		return nil
	case KindCatalog:
		return []auth.Need{auth.RegistryNeed(auth.RegistryCatalog)}
	case KindManifest, KindBlob:
		switch {
		case read:
			return []auth.Need{auth.Pull(rt.Repo)}
		case r.Method == http.MethodDelete:
			return []auth.Need{auth.Delete(rt.Repo)}
		}
		return []auth.Need{auth.Push(rt.Repo)}
	case KindUploads, KindUpload:
		return []auth.Need{auth.Push(rt.Repo)}
	case KindTags, KindReferrers:
		return []auth.Need{auth.Pull(rt.Repo)}
	case KindManagement:
		return mgmtNeeds(r, parseMgmtRoute(rt.Ref))
	}
	// Unknown paths answer 404 to anyone authenticated.
	return nil
}

// wantsOf is what a request would use if permitted, beyond what it needs:
// the source of a cross-repository mount, as distribution's challenges
// name it, and the administration of users for a password change that
// may be the user's own.
func wantsOf(r *http.Request, rt Route) []auth.Need {
	if rt.Kind == KindManagement && parseMgmtRoute(rt.Ref).Kind == mgmtUserPassword {
		// Anyone's password, for an administrator (userPassword);
		// a user's own needs no scope.
		return []auth.Need{auth.RegistryNeed(auth.RegistryAdmin)}
	}
	if rt.Kind != KindUploads || r.Method != http.MethodPost {
		return nil
	}
	q := r.URL.Query()
	if from := q.Get("from"); q.Has("mount") && from != "" && from != rt.Repo {
		return []auth.Need{auth.Pull(from)}
	}
	return nil
}

// mgmtNeeds is what a management request needs (docs/design/auth.md).
func mgmtNeeds(r *http.Request, mr mgmtRoute) []auth.Need {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	ns := auth.Namespace(mr.Name)
	switch mr.Kind {
	case mgmtHistory:
		if r.Method == http.MethodDelete {
			// Forgetting lifetimes deletes for good: admin.
			return []auth.Need{auth.Admin(mr.Name)}
		}
		return []auth.Need{auth.Pull(mr.Name)}
	case mgmtRestore, mgmtExpiry:
		return []auth.Need{auth.Push(mr.Name)}
	case mgmtRetention, mgmtNamespace:
		if read {
			return []auth.Need{auth.NamespaceNeed(ns, auth.ActionPull)}
		}
		return []auth.Need{auth.NamespaceNeed(ns, auth.ActionAll)}
	case mgmtPurge:
		return []auth.Need{auth.NamespaceNeed(ns, auth.ActionAll)}
	case mgmtGCStatus:
		return []auth.Need{auth.RegistryNeed(auth.RegistryAdmin)}
	case mgmtPolicies, mgmtRegPolicy, mgmtNSPolicy, mgmtRepoPolicy:
		return policyNeeds(r, mr)
	case mgmtUsage, mgmtNSUsage, mgmtRepoUsage, mgmtQuota, mgmtQuotas:
		return usageNeeds(r, mr)
	}
	return accountNeeds(r, mr)
}

// challenge is the WWW-Authenticate header of a 401 for r.
func (h *handler) challenge(r *http.Request, ce *challengeError) string {
	if ce.basic {
		return `Basic realm="berth"`
	}
	realm, service := h.realm(r), h.opts.Auth.ServiceName()
	if ext := h.opts.Auth.External(); ext != nil {
		realm = ext.Realm
	}
	c := fmt.Sprintf("Bearer realm=%q,service=%q", realm, service)
	if s := scopeOf(ce.needs); s != "" {
		c += fmt.Sprintf(",scope=%q", s)
	}
	if ce.code != "" {
		c += fmt.Sprintf(",error=%q", ce.code)
	}
	return c
}

// realm is the token endpoint's URL: configured, else this server's.
func (h *handler) realm(r *http.Request) string {
	if h.opts.AuthRealm != "" {
		return h.opts.AuthRealm
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + tokenPath
}

// scopeOf joins needs as a challenge's scope: one entry per resource,
// its actions comma-separated, entries space-separated.
func scopeOf(needs []auth.Need) string {
	byRes := map[string][]string{}
	var order []string
	for _, n := range needs {
		res := n.Type + ":" + n.Name
		if _, ok := byRes[res]; !ok {
			order = append(order, res)
		}
		byRes[res] = append(byRes[res], n.Action)
		if n.Action == auth.ActionPush && !slices.Contains(byRes[res], auth.ActionPull) {
			// Clients ask for pull with push (distribution's challenges
			// do): a push reads what it checks for.
			byRes[res] = append(byRes[res], auth.ActionPull)
		}
	}
	parts := make([]string, 0, len(order))
	for _, res := range order {
		acts := byRes[res]
		sort.Strings(acts)
		parts = append(parts, res+":"+strings.Join(acts, ","))
	}
	return strings.Join(parts, " ")
}

// accountNeeds is what the account endpoints need (mgmt_accounts.go).
func accountNeeds(r *http.Request, mr mgmtRoute) []auth.Need {
	switch mr.Kind {
	case mgmtUsers, mgmtUser, mgmtRotateKey:
		return []auth.Need{auth.RegistryNeed(auth.RegistryAdmin)}
	case mgmtUserPassword:
		// Authentication alone: userPassword lets a user change their
		// own password (with Basic credentials) and asks for a registry
		// administrator otherwise.
		return nil
	case mgmtRobots, mgmtRobot, mgmtGrants, mgmtVisibility:
		return []auth.Need{auth.NamespaceNeed(mr.Name, auth.ActionAll)}
	}
	return nil
}
