package app

import (
	"context"
	"time"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/config"
)

// Accounts is access control over opened stores, for the commands that
// manage users, robots, grants, visibility and signing keys (user, robot,
// grant, revoke, grants, namespace visibility, auth). Close it when done.
type Accounts struct {
	Stores *Stores
	Auth   *auth.Service
	// TokenTTL is auth.token.ttl: how long a token signed by a key about
	// to be retired may still be in use.
	TokenTTL time.Duration
}

// OpenAccounts opens the metadata store of cfg (as OpenStores: it creates
// nothing, and the schema must be current; Stores.Blobs stays nil) and the
// access-control service over it. The service is not started: the
// commands change accounts and keys, they issue no token.
func OpenAccounts(ctx context.Context, cfg config.Config) (*Accounts, error) {
	stores, err := openExisting(ctx, cfg, false)
	if err != nil {
		return nil, err
	}
	// Token options do not matter here: rotating a key needs none, and no
	// token is issued or verified (an external issuer's bundle is not read).
	svc := auth.New(stores.Meta, auth.Options{Now: time.Now})
	return &Accounts{Stores: stores, Auth: svc, TokenTTL: cfg.Auth.Token.TTL.Duration()}, nil
}

// Close closes the stores.
func (a *Accounts) Close() error { return a.Stores.Close() }
