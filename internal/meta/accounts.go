package meta

import (
	"context"
	"errors"
	"strings"
	"time"
)

// ErrExists is returned when a row that must be new (an account) exists.
var ErrExists = errors.New("meta: already exists")

// Account kinds.
const (
	AccountUser  = "user"
	AccountRobot = "robot"
)

// Account is a user or a robot account (docs/design/auth.md). A robot's
// name is "namespace+name" and it belongs to that namespace: its grants
// never reach outside it.
type Account struct {
	ID   int64
	Name string
	Kind string // AccountUser or AccountRobot
	// Namespace is a robot's namespace; "" for a user.
	Namespace string
	// SecretHash is the password's or robot secret's hash (auth package
	// format); never the secret.
	SecretHash string
	// Admin marks a registry administrator (users only).
	Admin     bool
	CreatedAt time.Time
	// CreatedBy is the actor that created the account.
	CreatedBy Actor
	// ExpiresAt, when set, is when the account stops authenticating
	// (robots created with --expires).
	ExpiresAt *time.Time
}

// Grant gives an account a role on a namespace (Repository "") or on one
// repository of it. Names, not row ids: a grant may precede the first push
// of its repository and outlives a repository collected and pushed again.
type Grant struct {
	Account    string
	Namespace  string
	Repository string // full repository name, or "" for the whole namespace
	Role       string // "read", "write" or "admin" (auth.Role)
	CreatedAt  time.Time
	CreatedBy  Actor
}

// SigningKey is a key the registry signs its tokens with. It lives in the
// database so that every replica signs and verifies with the same keys.
// The newest key that is not retired signs; every key not retired
// verifies.
type SigningKey struct {
	ID         string // the JWT "kid"
	Algorithm  string // the JWT "alg", e.g. "EdDSA"
	PrivateKey []byte // PKCS #8, DER
	CreatedAt  time.Time
	RetiredAt  *time.Time
}

// AccountTx covers accounts, grants, namespace visibility and signing keys.
type AccountTx interface {
	// CreateAccount inserts a; ErrExists if the name is taken.
	CreateAccount(ctx context.Context, a Account) (Account, error)
	// Account reads an account by name.
	Account(ctx context.Context, name string) (Account, error)
	// Accounts lists accounts of kind ("" for all), robots of namespace
	// only when namespace is not "", ordered by name.
	Accounts(ctx context.Context, kind, namespace string) ([]Account, error)
	// SetAccountSecret replaces an account's secret hash.
	SetAccountSecret(ctx context.Context, name, hash string) error
	// SetAccountAdmin makes a user a registry administrator or not.
	SetAccountAdmin(ctx context.Context, name string, admin bool) error
	// DeleteAccount deletes an account and its grants.
	DeleteAccount(ctx context.Context, name string) error

	// PutGrant creates a grant or changes its role (and CreatedAt/By).
	PutGrant(ctx context.Context, g Grant) error
	// DeleteGrant deletes the grant of account on (namespace, repository);
	// ErrNotFound if there is none.
	DeleteGrant(ctx context.Context, account, namespace, repository string) error
	// AccountGrants lists an account's grants, ordered by namespace and
	// repository.
	AccountGrants(ctx context.Context, account string) ([]Grant, error)
	// NamespaceGrants lists the grants on a namespace and its
	// repositories, ordered by account and repository.
	NamespaceGrants(ctx context.Context, namespace string) ([]Grant, error)

	// SetNamespacePublic sets whether anonymous clients may pull from an
	// existing namespace; ErrNotFound when there is none.
	SetNamespacePublic(ctx context.Context, name string, public bool) (Namespace, error)

	// SigningKeys lists every key, retired or not, newest first.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// PutSigningKey inserts a key; ErrExists if its ID is taken.
	PutSigningKey(ctx context.Context, k SigningKey) error
	// RetireSigningKey marks a key retired at at (it no longer signs nor
	// verifies); DeleteSigningKey removes it.
	RetireSigningKey(ctx context.Context, id string, at time.Time) error
	DeleteSigningKey(ctx context.Context, id string) error
}

// Actor says who made a change, as recorded in tag lifetimes, events and
// logs: "user:NAME", "robot:NS+NAME", "anonymous", "collector" (the
// collector's own decisions: expiry, a subject collected), or "operator"
// (a berth command run with direct access to the database). "" is an
// unknown actor (rows written before actors were recorded).
type Actor string

// Actors that are not accounts.
const (
	ActorAnonymous Actor = "anonymous"
	ActorCollector Actor = "collector"
	ActorOperator  Actor = "operator"
)

// UserActor and RobotActor name an account's actor.
func UserActor(name string) Actor  { return Actor(AccountUser + ":" + name) }
func RobotActor(name string) Actor { return Actor(AccountRobot + ":" + name) }

// AccountActor is the actor of an account.
func AccountActor(a Account) Actor {
	if a.Kind == AccountRobot {
		return RobotActor(a.Name)
	}
	return UserActor(a.Name)
}

// Account returns the account name of a user or robot actor.
func (a Actor) Account() (name string, ok bool) {
	if _, n, ok := strings.Cut(string(a), ":"); ok {
		return n, true
	}
	return "", false
}

// EndCause says why a tag lifetime ended.
type EndCause string

// End causes.
const (
	CauseDeleted   EndCause = "deleted"   // DELETE of the tag
	CauseMoved     EndCause = "moved"     // a PUT or restore pointed the tag elsewhere
	CauseExpired   EndCause = "expired"   // its expiry passed
	CauseWithdrawn EndCause = "withdrawn" // its manifest was deleted by digest
	CausePurged    EndCause = "purged"    // its repository or namespace was purged
	// CauseSubjectCollected: an attachment tag (a signature, attestation or
	// SBOM named after its subject's digest, oci.AttachmentSubject) whose
	// subject manifest the collector deleted.
	CauseSubjectCollected EndCause = "subject_collected"
)
