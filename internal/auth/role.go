// Package auth is berth's access control (docs/design/auth.md): accounts
// and their secrets, roles granted per namespace or repository, the one
// permission check the API asks ("may S do A on R"), and the tokens of the
// Docker/OCI token protocol, which carry what was granted so that a
// request costs no database round trip to authorize.
//
// auth sits below internal/api and above internal/meta; it speaks no HTTP.
package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Sentinel errors.
var (
	// ErrUnauthenticated: no credentials, or credentials that do not
	// authenticate (wrong secret, unknown or expired account). The text
	// never says which.
	ErrUnauthenticated = errors.New("authentication required")
	// ErrDenied: authenticated, but not permitted.
	ErrDenied = errors.New("requested access to the resource is denied")
	// ErrThrottled: too many failed logins for the account or the client
	// address; a *ThrottledError says until when.
	ErrThrottled = errors.New("too many failed logins; retry later")
	// ErrInvalidToken: a bearer token that does not verify.
	ErrInvalidToken = errors.New("invalid token")
	// ErrInvalid: a bad argument (a name, a role, a scope).
	ErrInvalid = errors.New("invalid argument")
	// ErrAccountUnknown: no such account.
	ErrAccountUnknown = errors.New("account unknown")
	// ErrAccountExists: the account name is taken.
	ErrAccountExists = errors.New("account already exists")
	// ErrGrantUnknown: no such grant.
	ErrGrantUnknown = errors.New("grant unknown")
	// ErrNamespaceUnknown: a grant or visibility names a namespace that
	// does not exist.
	ErrNamespaceUnknown = errors.New("namespace unknown")
)

// Role is what a subject may do on a namespace or repository; roles are
// ordered, each including the ones below it.
type Role int

const (
	RoleNone Role = iota
	RoleRead
	RoleWrite
	RoleAdmin
)

var roleNames = []string{"none", "read", "write", "admin"}

func (r Role) String() string {
	if r >= RoleNone && int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// ParseRole parses "read", "write" or "admin".
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames {
		if i > 0 && n == s {
			return Role(i), nil
		}
	}
	return RoleNone, fmt.Errorf("role %q: want read, write or admin: %w", s, ErrInvalid)
}

// Resource types of a scope.
const (
	TypeRepository = "repository" // name: a repository
	TypeNamespace  = "namespace"  // name: a namespace (berth's management API)
	TypeRegistry   = "registry"   // name: "catalog" or "admin"
)

// Registry-wide resources, reserved to registry administrators.
const (
	RegistryCatalog = "catalog"
	RegistryAdmin   = "admin"
)

// Actions of a scope.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	ActionAll    = "*"
)

// actionRole is the role an action needs.
func actionRole(action string) Role {
	switch action {
	case ActionPull:
		return RoleRead
	case ActionPush, ActionDelete:
		return RoleWrite
	case ActionAll:
		return RoleAdmin
	}
	return RoleNone
}

// Access is one entry of a token's access claim, and one scope of a token
// request: actions on a typed resource.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Need is what one request needs: one action on one resource.
type Need struct {
	Type   string
	Name   string
	Action string
}

func (n Need) String() string { return n.Type + ":" + n.Name + ":" + n.Action }

// Pull, Push, Delete and Admin are the needs of repository requests;
// NamespaceNeed and RegistryNeed those of the management API.
func Pull(repo string) Need   { return Need{TypeRepository, repo, ActionPull} }
func Push(repo string) Need   { return Need{TypeRepository, repo, ActionPush} }
func Delete(repo string) Need { return Need{TypeRepository, repo, ActionDelete} }
func Admin(repo string) Need  { return Need{TypeRepository, repo, ActionAll} }
func NamespaceNeed(ns, action string) Need {
	return Need{TypeNamespace, ns, action}
}
func RegistryNeed(name string) Need { return Need{TypeRegistry, name, ActionAll} }

// Covers reports whether the access list grants n.
func Covers(access []Access, n Need) bool {
	for _, a := range access {
		if a.Type == n.Type && a.Name == n.Name && slices.Contains(a.Actions, n.Action) {
			return true
		}
	}
	return false
}

// ParseScope parses one scope of a token request,
// "repository:acme/app:pull,push" (distribution's grammar; a resource
// class in parentheses after the type is accepted and ignored). Unknown
// actions are dropped, as distribution does; an unknown type is kept and
// will be granted nothing.
func ParseScope(s string) (Access, error) {
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndex(rest, ":")
	if !ok || i <= 0 || typ == "" {
		return Access{}, fmt.Errorf("scope %q: want type:name:actions: %w", s, ErrInvalid)
	}
	if j := strings.IndexByte(typ, '('); j > 0 && strings.HasSuffix(typ, ")") {
		typ = typ[:j]
	}
	a := Access{Type: typ, Name: rest[:i]}
	for _, act := range strings.Split(rest[i+1:], ",") {
		if actionRole(act) != RoleNone && !slices.Contains(a.Actions, act) {
			a.Actions = append(a.Actions, act)
		}
	}
	return a, nil
}

// Namespace is the namespace of a repository name: its first component.
func Namespace(repo string) string {
	ns, _, _ := strings.Cut(repo, "/")
	return ns
}
