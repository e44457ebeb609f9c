package api

// The account endpoints of the management API (docs/design/auth.md): users,
// a namespace's robots and grants, its visibility, and key rotation. Each
// change is recorded as done by the request's subject. No answer ever
// carries a secret's hash; a robot's secret is answered once, on creation.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
)

// AccountService is what the account endpoints need of access control
// (*auth.Service).
type AccountService interface {
	AddUser(ctx context.Context, name, password string, admin bool, by meta.Actor) error
	SetPassword(ctx context.Context, name, password string) error
	DeleteAccount(ctx context.Context, name string) error
	Account(ctx context.Context, name string) (meta.Account, error)
	Accounts(ctx context.Context, kind, namespace string) ([]meta.Account, error)
	AddRobot(ctx context.Context, name string, role auth.Role, target string, expiresAt *time.Time, by meta.Actor) (auth.Robot, error)
	Grant(ctx context.Context, account string, role auth.Role, target string, by meta.Actor) error
	Revoke(ctx context.Context, account, target string) error
	AccountGrants(ctx context.Context, account string) ([]meta.Grant, error)
	NamespaceGrants(ctx context.Context, namespace string) ([]meta.Grant, error)
	SetVisibility(ctx context.Context, namespace string, public bool) error
	RotateKey(ctx context.Context, retireOlder bool) (signing string, retired []string, err error)
}

var _ AccountService = (*auth.Service)(nil)

// errNoAccounts answers the account endpoints on a server built without
// accounts (it is in the error table of errors.go).
var errNoAccounts = errors.New("this server has no accounts")

// Grant is a role on a namespace (Repository empty) or on one repository.
type Grant struct {
	Account    string    `json:"account"`
	Namespace  string    `json:"namespace"`
	Repository string    `json:"repository,omitempty"`
	Role       string    `json:"role"`
	CreatedAt  time.Time `json:"created_at"`
	CreatedBy  string    `json:"created_by,omitempty"`
}

// NewGrant is the document of a grant.
func NewGrant(g meta.Grant) Grant {
	return Grant{Account: g.Account, Namespace: g.Namespace, Repository: g.Repository, Role: g.Role,
		CreatedAt: g.CreatedAt.UTC(), CreatedBy: string(g.CreatedBy)}
}

// Account is a user or a robot, without its secret.
type Account struct {
	Name      string     `json:"name"`
	Kind      string     `json:"kind"`                // "user" or "robot"
	Namespace string     `json:"namespace,omitempty"` // a robot's
	Admin     bool       `json:"admin"`               // a registry administrator
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Grants are the account's grants, where the document lists them
	// (one account, robots); nil elsewhere.
	Grants []Grant `json:"grants,omitempty"`
}

// NewAccount is the document of an account and, when not nil, its grants.
func NewAccount(a meta.Account, grants []meta.Grant) Account {
	out := Account{Name: a.Name, Kind: a.Kind, Namespace: a.Namespace, Admin: a.Admin,
		CreatedAt: a.CreatedAt.UTC(), CreatedBy: string(a.CreatedBy), ExpiresAt: utc(a.ExpiresAt)}
	if grants != nil {
		out.Grants = []Grant{}
		for _, g := range grants {
			out.Grants = append(out.Grants, NewGrant(g))
		}
	}
	return out
}

// NewRobots is the list of a namespace's robots, each with its grants
// (picked from grants, those of the namespace).
func NewRobots(namespace string, robots []meta.Account, grants []meta.Grant) Robots {
	out := Robots{Namespace: namespace, Robots: []Account{}}
	for _, a := range robots {
		own := []meta.Grant{}
		for _, g := range grants {
			if g.Account == a.Name {
				own = append(own, g)
			}
		}
		out.Robots = append(out.Robots, NewAccount(a, own))
	}
	return out
}

// Users is the list of users.
type Users struct {
	Users []Account `json:"users"`
}

// Robots is the list of a namespace's robots.
type Robots struct {
	Namespace string    `json:"namespace,omitempty"` // "" for every namespace's (the CLI's list)
	Robots    []Account `json:"robots"`
}

// Grants is a list of grants: those on a namespace, or an account's.
type Grants struct {
	Grants []Grant `json:"grants"`
}

// NewGrants is the document of a list of grants.
func NewGrants(gs []meta.Grant) Grants {
	out := Grants{Grants: []Grant{}}
	for _, g := range gs {
		out.Grants = append(out.Grants, NewGrant(g))
	}
	return out
}

// RobotCreated is a robot just created: its account and its secret, which
// is shown this once.
type RobotCreated struct {
	Account
	Secret string `json:"secret"`
}

// Visibility is whether anonymous clients may pull from a namespace.
type Visibility struct {
	Namespace string `json:"namespace"`
	Public    bool   `json:"public"`
}

// KeyRotation is what a key rotation did: the key that signs, and the keys
// retired (only with retire_older).
type KeyRotation struct {
	SigningKey string   `json:"signing_key"`
	Retired    []string `json:"retired"`
}

// accounts dispatches the account endpoints.
func (h *handler) accounts(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if h.opts.Accounts == nil {
		return errNoAccounts
	}
	switch mr.Kind {
	case mgmtUsers:
		return h.users(w, r)
	case mgmtUser:
		return h.user(w, r, mr)
	case mgmtUserPassword:
		return h.userPassword(w, r, mr)
	case mgmtRobots:
		return h.robots(w, r, mr)
	case mgmtRobot:
		return h.robot(w, r, mr)
	case mgmtGrants:
		return h.grants(w, r, mr)
	case mgmtVisibility:
		return h.visibility(w, r, mr)
	case mgmtRotateKey:
		return h.rotateKey(w, r)
	}
	return errRouteUnknown
}

// actor is who a change is recorded as done by: the request's subject.
func actor(r *http.Request) meta.Actor { return accessOf(r.Context()).subject.Actor }

// replyStatus encodes v with status.
func replyStatus(w http.ResponseWriter, r *http.Request, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	writeJSON(w, r, status, "application/json", body)
	return nil
}

// userRequest is the body of POST /berth/v1/users.
type userRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	Admin    bool   `json:"admin"`
}

// users serves GET (list) and POST (create) /berth/v1/users.
func (h *handler) users(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	ctx := r.Context()
	if r.Method == http.MethodPost {
		var req userRequest
		if err := readBody(r, &req); err != nil {
			return err
		}
		if err := h.opts.Accounts.AddUser(ctx, req.Name, req.Password, req.Admin, actor(r)); err != nil {
			return err
		}
		a, err := h.opts.Accounts.Account(ctx, req.Name)
		if err != nil {
			return err
		}
		return replyStatus(w, r, http.StatusCreated, NewAccount(a, nil))
	}
	as, err := h.opts.Accounts.Accounts(ctx, meta.AccountUser, "")
	if err != nil {
		return err
	}
	out := Users{Users: []Account{}}
	for _, a := range as {
		out.Users = append(out.Users, NewAccount(a, nil))
	}
	return replyJSON(w, r, out)
}

// user serves GET (with its grants) and DELETE /berth/v1/users/<name>. A
// robot's name ("ns+name") is not a user's: it is answered
// INVALID_ARGUMENT here (its namespace's robots endpoint deletes it).
func (h *handler) user(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead, http.MethodDelete); err != nil {
		return err
	}
	ctx := r.Context()
	if err := auth.ValidateUserName(mr.Account); err != nil {
		return err
	}
	a, err := h.opts.Accounts.Account(ctx, mr.Account)
	if err != nil {
		return err
	}
	if r.Method == http.MethodDelete {
		if err := h.opts.Accounts.DeleteAccount(ctx, mr.Account); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	gs, err := h.opts.Accounts.AccountGrants(ctx, a.Name)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewAccount(a, gs))
}

// passwordRequest is the body of PUT /berth/v1/users/<name>/password.
type passwordRequest struct {
	Password string `json:"password"`
}

// userPassword serves PUT /berth/v1/users/<name>/password. A user may
// change their own password when the request carries Basic credentials,
// which prove the current one; a bearer token, or anyone else's password,
// needs a registry administrator.
func (h *handler) userPassword(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodPut); err != nil {
		return err
	}
	a := accessOf(r.Context())
	self := !a.bearer && a.subject.Actor == meta.UserActor(mr.Account)
	if need := auth.RegistryNeed(auth.RegistryAdmin); !self && !a.may(r.Context(), need) {
		if a.subject.IsAnonymous() {
			return &challengeError{err: errors.New("authentication required"), needs: []auth.Need{need}}
		}
		return fmt.Errorf("%s may not change the password of %s (a user may change their own, with Basic credentials): %w",
			a.subject.Actor, mr.Account, auth.ErrDenied)
	}
	var req passwordRequest
	if err := readBody(r, &req); err != nil {
		return err
	}
	if err := auth.ValidateUserName(mr.Account); err != nil {
		return err
	}
	if err := h.opts.Accounts.SetPassword(r.Context(), mr.Account, req.Password); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// robotRequest is the body of POST /berth/v1/namespaces/<ns>/robots.
type robotRequest struct {
	Name       string `json:"name"` // without the "<ns>+" prefix
	Role       string `json:"role"`
	Repository string `json:"repository"` // a repository of <ns>; "" for the whole namespace
	ExpiresIn  string `json:"expires_in"` // a duration; "" never expires
}

// robots serves GET (list, with grants) and POST (create)
// /berth/v1/namespaces/<ns>/robots.
func (h *handler) robots(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	ctx := r.Context()
	if err := auth.ValidateUserName(mr.Name); err != nil {
		return err
	}
	if r.Method == http.MethodPost {
		var req robotRequest
		if err := readBody(r, &req); err != nil {
			return err
		}
		role, err := auth.ParseRole(req.Role)
		if err != nil {
			return err
		}
		var expires *time.Time
		if req.ExpiresIn != "" {
			d, err := parseDuration("expires_in", req.ExpiresIn)
			if err != nil {
				return err
			}
			at := time.Now().Add(d).UTC()
			expires = &at
		}
		robot, err := h.opts.Accounts.AddRobot(ctx, mr.Name+"+"+req.Name, role, req.Repository, expires, actor(r))
		if err != nil {
			return err
		}
		a, err := h.opts.Accounts.Account(ctx, robot.Name)
		if err != nil {
			return err
		}
		gs, err := h.opts.Accounts.AccountGrants(ctx, robot.Name)
		if err != nil {
			return err
		}
		return replyStatus(w, r, http.StatusCreated, RobotCreated{Account: NewAccount(a, gs), Secret: robot.Secret})
	}
	as, err := h.opts.Accounts.Accounts(ctx, meta.AccountRobot, mr.Name)
	if err != nil {
		return err
	}
	gs, err := h.opts.Accounts.NamespaceGrants(ctx, mr.Name)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewRobots(mr.Name, as, gs))
}

// robot serves DELETE /berth/v1/namespaces/<ns>/robots/<name>.
func (h *handler) robot(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodDelete); err != nil {
		return err
	}
	name := mr.Name + "+" + mr.Account
	if _, _, err := auth.SplitRobotName(name); err != nil {
		return err
	}
	if err := h.opts.Accounts.DeleteAccount(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// grantRequest is the body of PUT /berth/v1/namespaces/<ns>/grants.
type grantRequest struct {
	Account    string `json:"account"`
	Role       string `json:"role"`
	Repository string `json:"repository"` // a repository of <ns>; "" for the whole namespace
}

// grantTarget is the namespace, or repo when given; repo must be in ns.
func grantTarget(ns, repo string) (string, error) {
	if repo == "" {
		return ns, nil
	}
	if auth.Namespace(repo) != ns || !strings.Contains(repo, "/") {
		return "", fmt.Errorf("repository %q is not a repository of namespace %s: %w", repo, ns, auth.ErrInvalid)
	}
	return repo, nil
}

// grants serves GET (list), PUT (grant) and DELETE
// (?account=…[&repository=…], revoke) /berth/v1/namespaces/<ns>/grants.
func (h *handler) grants(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete); err != nil {
		return err
	}
	ctx := r.Context()
	if err := auth.ValidateUserName(mr.Name); err != nil {
		return err
	}
	switch r.Method {
	case http.MethodPut:
		var req grantRequest
		if err := readBody(r, &req); err != nil {
			return err
		}
		role, err := auth.ParseRole(req.Role)
		if err != nil {
			return err
		}
		target, err := grantTarget(mr.Name, req.Repository)
		if err != nil {
			return err
		}
		if err := h.opts.Accounts.Grant(ctx, req.Account, role, target, actor(r)); err != nil {
			return err
		}
		gs, err := h.opts.Accounts.AccountGrants(ctx, req.Account)
		if err != nil {
			return err
		}
		for _, g := range gs {
			if g.Namespace == mr.Name && g.Repository == req.Repository {
				return replyJSON(w, r, NewGrant(g))
			}
		}
		return fmt.Errorf("grant of %s on %s not found after it was made", req.Account, target)
	case http.MethodDelete:
		q := r.URL.Query()
		account := q.Get("account")
		if account == "" {
			return fmt.Errorf("revoke whose grant? give ?account=NAME (and &repository=NS/REPO for a repository's): %w", auth.ErrInvalid)
		}
		target, err := grantTarget(mr.Name, q.Get("repository"))
		if err != nil {
			return err
		}
		if err := h.opts.Accounts.Revoke(ctx, account, target); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	gs, err := h.opts.Accounts.NamespaceGrants(ctx, mr.Name)
	if err != nil {
		return err
	}
	return replyJSON(w, r, NewGrants(gs))
}

// visibilityRequest is the body of PUT /berth/v1/namespaces/<ns>/visibility.
type visibilityRequest struct {
	Public *bool `json:"public"`
}

// visibility serves PUT /berth/v1/namespaces/<ns>/visibility.
func (h *handler) visibility(w http.ResponseWriter, r *http.Request, mr mgmtRoute) error {
	if err := allow(w, r, http.MethodPut); err != nil {
		return err
	}
	var req visibilityRequest
	if err := readBody(r, &req); err != nil {
		return err
	}
	if req.Public == nil {
		return fmt.Errorf(`visibility: the body needs "public": true or false: %w`, auth.ErrInvalid)
	}
	if err := auth.ValidateUserName(mr.Name); err != nil {
		return err
	}
	if err := h.opts.Accounts.SetVisibility(r.Context(), mr.Name, *req.Public); err != nil {
		return err
	}
	return replyJSON(w, r, Visibility{Namespace: mr.Name, Public: *req.Public})
}

// rotateKeyRequest is the body of POST /berth/v1/auth/rotate-key
// (optional).
type rotateKeyRequest struct {
	RetireOlder bool `json:"retire_older"`
}

// rotateKey serves POST /berth/v1/auth/rotate-key: a new signing key, or,
// with retire_older, every key but the newest retired.
func (h *handler) rotateKey(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodPost); err != nil {
		return err
	}
	var req rotateKeyRequest
	if err := readOptionalBody(r, &req); err != nil {
		return err
	}
	id, retired, err := h.opts.Accounts.RotateKey(r.Context(), req.RetireOlder)
	if err != nil {
		return err
	}
	if retired == nil {
		retired = []string{}
	}
	return replyJSON(w, r, KeyRotation{SigningKey: id, Retired: retired})
}

// readOptionalBody decodes a JSON body into v, rejecting unknown fields;
// an empty body leaves v as it is.
func readOptionalBody(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxMgmtBody+1))
	if err != nil {
		return fmt.Errorf("reading body: %v: %w", err, registry.ErrInvalidArgument)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if len(b) > maxMgmtBody {
		return fmt.Errorf("body is larger than %d bytes: %w", maxMgmtBody, registry.ErrInvalidArgument)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("reading JSON body: %v: %w", err, registry.ErrInvalidArgument)
	}
	return nil
}
