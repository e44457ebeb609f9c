package meta

import (
	"context"
	"time"
)

// Session is a signed-in session of the web interface (docs/design/web.md,
// "Sign-in and sessions"). The cookie holds a random token; the row holds
// only its hash, so a copy of the database signs no one in.
type Session struct {
	// TokenHash is the hex SHA-256 of the session's token.
	TokenHash string
	// Account is the name of the signed-in user. The session ends with
	// the account: deleting the account deletes its sessions.
	Account string
	// CSRF is the token every form of the session carries.
	CSRF       string
	CreatedAt  time.Time
	LastSeenAt time.Time
	// ExpiresAt is when the session ends whatever its activity (created
	// plus web.session_ttl).
	ExpiresAt time.Time
}

// SessionTx covers web sessions.
type SessionTx interface {
	// CreateSession inserts s; ErrNotFound if its account does not exist,
	// ErrExists if its token hash is taken.
	CreateSession(ctx context.Context, s Session) error
	// Session reads the session of a token hash.
	Session(ctx context.Context, tokenHash string) (Session, error)
	// TouchSession sets the session's last_seen_at to at.
	TouchSession(ctx context.Context, tokenHash string, at time.Time) error
	// DeleteSession deletes one session; ErrNotFound if there is none.
	DeleteSession(ctx context.Context, tokenHash string) error
	// DeleteAccountSessions deletes every session of an account and
	// returns how many there were.
	DeleteAccountSessions(ctx context.Context, account string) (int64, error)
	// DeleteEndedSessions deletes up to limit sessions that expired
	// (ExpiresAt at or before now) or went idle (LastSeenAt at or before
	// idleSince), and returns how many it deleted.
	DeleteEndedSessions(ctx context.Context, now, idleSince time.Time, limit int) (int64, error)
}
