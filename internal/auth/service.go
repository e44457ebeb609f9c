package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/berth/berth/internal/meta"
)

// Options configures the Service.
type Options struct {
	// Issuer and Service are the iss and aud of berth's tokens.
	Issuer  string
	Service string
	// TokenTTL is how long a token lives (default DefaultTokenTTL).
	TokenTTL time.Duration
	// External, when set, is the token issuer berth trusts instead of
	// its own: berth issues no token and verifies that issuer's.
	External *ExternalIssuer
	// CredentialCacheTTL is how long a verified Basic credential is
	// remembered (default one minute): the bound on a changed password
	// or deleted account still working on Basic requests.
	CredentialCacheTTL time.Duration
	// HashCost is the bcrypt cost of new secrets (default
	// DefaultHashCost; bcrypt.MinCost, 4, for tests). A stored hash is
	// checked at the cost it was made with.
	HashCost int
	// SessionTTL is how long a web session lasts from sign-in (default
	// DefaultSessionTTL); SessionIdle ends it earlier after that long
	// without a request (default DefaultSessionIdle).
	SessionTTL  time.Duration
	SessionIdle time.Duration
	Now         func() time.Time
}

// DefaultIssuer is the iss of berth's tokens unless configured.
const DefaultIssuer = "berth"

// DefaultCredentialCacheTTL is Options.CredentialCacheTTL's default.
const DefaultCredentialCacheTTL = time.Minute

// maxCachedCredentials bounds the credential cache; it is emptied when
// full.
const maxCachedCredentials = 10000

// Subject is who makes a request.
type Subject struct {
	Actor meta.Actor
	// Admin: a registry administrator, as read from the account (Basic
	// credentials). A token's subject is never Admin: the token's access
	// list says what it may do.
	Admin bool
	// RobotNamespace is a robot's namespace; its grants never reach
	// outside it.
	RobotNamespace string
}

// Anonymous is the subject of a request without credentials.
var Anonymous = Subject{Actor: meta.ActorAnonymous}

// IsAnonymous reports whether s is the anonymous subject.
func (s Subject) IsAnonymous() bool { return s.Actor == meta.ActorAnonymous }

func subjectOf(a meta.Account) Subject {
	if a.Kind == meta.AccountRobot {
		return Subject{Actor: meta.RobotActor(a.Name), RobotNamespace: a.Namespace}
	}
	return Subject{Actor: meta.UserActor(a.Name), Admin: a.Admin}
}

// Service is access control over the metadata store.
type Service struct {
	store    meta.Store
	opts     Options
	ring     *keyring
	verifier *verifier
	throttle *throttle
	hasher   *hasher

	cacheMu sync.Mutex
	cache   map[[32]byte]cachedCredential

	tokensMu sync.RWMutex
	tokens   map[string]verifiedToken
}

// verifiedToken is a token that verified, remembered until it expires: a
// client sends the same token with every request of a pull or push, and
// checking its signature each time would double the cost of a blob HEAD
// (bench/README.md). Keyed by the whole token, so only that exact string
// hits.
type verifiedToken struct {
	subject Subject
	access  []Access
	expires time.Time
	keys    uint64 // the keyring's generation
}

// maxCachedTokens bounds the verified-token cache; it is emptied when full.
const maxCachedTokens = 10000

type cachedCredential struct {
	subject Subject
	until   time.Time
}

// New returns the Service. Call Start before issuing tokens.
func New(store meta.Store, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Issuer == "" {
		opts.Issuer = DefaultIssuer
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.CredentialCacheTTL <= 0 {
		opts.CredentialCacheTTL = DefaultCredentialCacheTTL
	}
	if opts.HashCost <= 0 {
		opts.HashCost = DefaultHashCost
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.SessionIdle <= 0 {
		opts.SessionIdle = DefaultSessionIdle
	}
	ring := &keyring{store: store, now: opts.Now}
	return &Service{
		store: store,
		opts:  opts,
		ring:  ring,
		verifier: &verifier{ring: ring, external: opts.External,
			issuer: opts.Issuer, service: opts.Service, now: opts.Now},
		throttle: newThrottle(opts.Now),
		hasher:   &hasher{cost: opts.HashCost},
		cache:    map[[32]byte]cachedCredential{},
		tokens:   map[string]verifiedToken{},
	}
}

// Start makes sure a signing key exists and loads the keys (nothing with
// an external issuer).
func (s *Service) Start(ctx context.Context) error {
	if s.opts.External != nil {
		return nil
	}
	return s.ring.ensure(ctx)
}

// External reports whether tokens come from an external issuer.
func (s *Service) External() *ExternalIssuer { return s.opts.External }

// ServiceName is the aud of the tokens berth accepts.
func (s *Service) ServiceName() string {
	if s.opts.External != nil {
		return s.opts.External.Service
	}
	return s.opts.Service
}

// Authenticate checks a name and a secret (a password or a robot secret)
// sent from client (an address, for throttling). The error is
// ErrUnauthenticated whatever was wrong, or a *ThrottledError.
func (s *Service) Authenticate(ctx context.Context, name, secret, client string) (Subject, error) {
	key := sha256.Sum256([]byte(name + "\x00" + secret))
	now := s.opts.Now()
	s.cacheMu.Lock()
	c, ok := s.cache[key]
	s.cacheMu.Unlock()
	accountKey, clientKey := "account:"+name, "client:"+client
	if ok && now.Before(c.until) {
		// The right secret: clears the account's failures like a full
		// check does.
		s.throttle.succeed(accountKey)
		return c.subject, nil
	}
	if err := s.throttle.check(accountKey, clientKey); err != nil {
		return Subject{}, err
	}
	var a meta.Account
	err := s.store.View(ctx, func(tx meta.Tx) error {
		var err error
		a, err = tx.Account(ctx, name)
		return err
	})
	switch {
	case errors.Is(err, meta.ErrNotFound):
		a = meta.Account{} // compared against the dummy hash below
	case err != nil:
		return Subject{}, fmt.Errorf("reading account: %w", err)
	}
	matches := s.hasher.matches(a.SecretHash, secret)
	expired := a.ExpiresAt != nil && !now.Before(*a.ExpiresAt)
	if !matches || expired {
		s.throttle.fail(accountKey, clientKey)
		return Subject{}, ErrUnauthenticated
	}
	s.throttle.succeed(accountKey)
	sub := subjectOf(a)
	until := now.Add(s.opts.CredentialCacheTTL)
	if a.ExpiresAt != nil && a.ExpiresAt.Before(until) {
		until = *a.ExpiresAt
	}
	s.cacheMu.Lock()
	if len(s.cache) >= maxCachedCredentials {
		clear(s.cache)
	}
	s.cache[key] = cachedCredential{subject: sub, until: until}
	s.cacheMu.Unlock()
	return sub, nil
}

// forget drops this replica's cached credentials (after a password change
// or a deletion here; other replicas forget within CredentialCacheTTL).
func (s *Service) forget() {
	s.cacheMu.Lock()
	clear(s.cache)
	s.cacheMu.Unlock()
}

// Authorize reports whether sub may do every need, reading its grants
// from the database: nil, or ErrDenied naming the first refused need.
func (s *Service) Authorize(ctx context.Context, sub Subject, needs ...Need) error {
	allowed, err := s.allowed(ctx, sub, needs)
	if err != nil {
		return err
	}
	for i, ok := range allowed {
		if !ok {
			return fmt.Errorf("%s may not %s %s %s: %w", sub.Actor, needs[i].Action, needs[i].Type, needs[i].Name, ErrDenied)
		}
	}
	return nil
}

// allowed decides each need for sub in one read transaction. The account
// is read again, not trusted from the subject: a token's subject carries
// no admin flag, and a Basic subject may be cached from before its
// account was deleted, expired or lost the admin flag. An account that is
// gone is nobody: it may read public namespaces, as anonymous may.
func (s *Service) allowed(ctx context.Context, sub Subject, needs []Need) ([]bool, error) {
	out := make([]bool, len(needs))
	err := s.store.View(ctx, func(tx meta.Tx) error {
		var grants []meta.Grant
		if name, ok := sub.Actor.Account(); ok {
			a, err := tx.Account(ctx, name)
			switch {
			case errors.Is(err, meta.ErrNotFound) || (err == nil && a.ExpiresAt != nil && !s.opts.Now().Before(*a.ExpiresAt)):
				sub = Anonymous
			case err != nil:
				return err
			case a.Kind == meta.AccountUser && a.Admin:
				for i := range out {
					out[i] = true
				}
				return nil
			default:
				sub = subjectOf(a) // a robot's namespace, from the row
				if grants, err = tx.AccountGrants(ctx, name); err != nil {
					return err
				}
			}
		}
		public := map[string]bool{}
		isPublic := func(ns string) (bool, error) {
			if p, ok := public[ns]; ok {
				return p, nil
			}
			n, err := tx.Namespace(ctx, ns, meta.LockNone)
			if errors.Is(err, meta.ErrNotFound) {
				public[ns] = false
				return false, nil
			}
			if err != nil {
				return false, err
			}
			public[ns] = n.Public
			return n.Public, nil
		}
		for i, n := range needs {
			role, err := s.role(sub, grants, n, isPublic)
			if err != nil {
				return err
			}
			out[i] = role >= actionRole(n.Action) && actionRole(n.Action) != RoleNone
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading permissions: %w", err)
	}
	return out, nil
}

// role is sub's role on the resource of n (docs/design/auth.md, "Roles").
func (s *Service) role(sub Subject, grants []meta.Grant, n Need, isPublic func(string) (bool, error)) (Role, error) {
	var ns, repo string
	switch n.Type {
	case TypeRepository:
		ns, repo = Namespace(n.Name), n.Name
	case TypeNamespace:
		ns = n.Name
	default: // registry-wide resources: administrators only
		return RoleNone, nil
	}
	if sub.RobotNamespace != "" && sub.RobotNamespace != ns {
		return RoleNone, nil
	}
	role := RoleNone
	if user, ok := sub.Actor.Account(); ok && sub.RobotNamespace == "" && user == ns {
		role = RoleAdmin
	}
	for _, g := range grants {
		if g.Namespace != ns || (g.Repository != "" && g.Repository != repo) {
			continue
		}
		if r, err := ParseRole(g.Role); err == nil && r > role {
			role = r
		}
	}
	if role < RoleRead {
		public, err := isPublic(ns)
		if err != nil {
			return RoleNone, err
		}
		if public {
			role = RoleRead
		}
	}
	return role, nil
}

// Token is an issued token.
type Token struct {
	Token     string
	ExpiresIn time.Duration
	IssuedAt  time.Time
	Access    []Access
}

// IssueToken signs a token for sub granting the part of scopes that sub
// is permitted (possibly nothing: asking for more is not an error).
func (s *Service) IssueToken(ctx context.Context, sub Subject, service string, scopes []Access) (Token, error) {
	if s.opts.External != nil {
		return Token{}, fmt.Errorf("tokens come from the external issuer %s: %w", s.opts.External.Realm, ErrInvalid)
	}
	if service != "" && service != s.opts.Service {
		return Token{}, fmt.Errorf("service %q: this registry is %q: %w", service, s.opts.Service, ErrInvalid)
	}
	var needs []Need
	for _, sc := range scopes {
		for _, act := range sc.Actions {
			needs = append(needs, Need{sc.Type, sc.Name, act})
		}
	}
	allowed, err := s.allowed(ctx, sub, needs)
	if err != nil {
		return Token{}, err
	}
	var granted []Access
	for i, n := range needs {
		if !allowed[i] {
			continue
		}
		j := len(granted) - 1
		if j < 0 || granted[j].Type != n.Type || granted[j].Name != n.Name {
			granted = append(granted, Access{Type: n.Type, Name: n.Name})
			j++
		}
		granted[j].Actions = append(granted[j].Actions, n.Action)
	}
	now := s.opts.Now().Truncate(time.Second)
	c := Claims{Access: granted}
	c.Issuer = s.opts.Issuer
	c.Subject = string(sub.Actor)
	c.Audience = []string{s.opts.Service}
	c.IssuedAt = jwtTime(now)
	c.NotBefore = jwtTime(now)
	c.ExpiresAt = jwtTime(now.Add(s.opts.TokenTTL))
	c.ID = randomID()
	if c.Access == nil {
		c.Access = []Access{}
	}
	raw, err := s.ring.sign(ctx, c)
	if err != nil {
		return Token{}, err
	}
	return Token{Token: raw, ExpiresIn: s.opts.TokenTTL, IssuedAt: now, Access: granted}, nil
}

// VerifyToken checks a bearer token and returns its subject and access.
// A token that verified is remembered until it expires or the set of keys
// changes (a rotation or a retirement, seen within keyRefreshInterval).
func (s *Service) VerifyToken(ctx context.Context, raw string) (Subject, []Access, error) {
	now := s.opts.Now()
	if s.opts.External == nil {
		s.ring.refresh(ctx) // a retired key's tokens stop hitting within keyRefreshInterval
	}
	gen := s.ring.generation()
	s.tokensMu.RLock()
	v, ok := s.tokens[raw]
	s.tokensMu.RUnlock()
	if ok && now.Before(v.expires) && v.keys == gen {
		return v.subject, v.access, nil
	}
	sub, access, exp, err := s.verifyToken(ctx, raw)
	if err != nil {
		return Subject{}, nil, err
	}
	s.tokensMu.Lock()
	if len(s.tokens) >= maxCachedTokens {
		clear(s.tokens)
	}
	s.tokens[raw] = verifiedToken{subject: sub, access: access, expires: exp, keys: gen}
	s.tokensMu.Unlock()
	return sub, access, nil
}

func (s *Service) verifyToken(ctx context.Context, raw string) (Subject, []Access, time.Time, error) {
	c, err := s.verifier.verify(ctx, raw)
	if err != nil {
		return Subject{}, nil, time.Time{}, err
	}
	// Remembered until its expiry, with the leeway the verification
	// allowed, no longer.
	exp := c.ExpiresAt.Time.Add(clockSkew)
	actor := meta.Actor(c.Subject)
	switch {
	case c.Subject == "":
		actor = meta.ActorAnonymous
	case s.opts.External != nil:
		// An external issuer's sub is its user's name.
		actor = meta.UserActor(c.Subject)
	}
	return Subject{Actor: actor}, c.Access, exp, nil
}
