package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/berth/berth/internal/meta"
)

// Sessions of the web interface (docs/design/web.md, "Sign-in and
// sessions"): a user signs in with the same check as the API's Basic
// path, and gets a random token the browser keeps in a cookie; the
// database keeps the token's hash. Each request reads the session and the
// account again, so a deleted account or a changed password ends it at
// the next click.

// Defaults of Options.SessionTTL and Options.SessionIdle.
const (
	DefaultSessionTTL  = 12 * time.Hour
	DefaultSessionIdle = 2 * time.Hour
)

const (
	// sessionTouchEvery is how often at most a session's last_seen_at is
	// written: reading a page is a write at most once a minute.
	sessionTouchEvery = time.Minute
	// endedSessionsPerSignIn bounds the ended sessions a sign-in deletes.
	endedSessionsPerSignIn = 100
)

// ErrRobotSignIn: a robot's credentials at the sign-in form. Robots have
// no interactive use.
var ErrRobotSignIn = errors.New("robot accounts cannot sign in; sign in as a user")

// Session is a signed-in session.
type Session struct {
	// Token is the secret the cookie carries; set by StartSession only.
	Token   string
	Subject Subject
	// CSRF is the token every form of the session must carry.
	CSRF      string
	ExpiresAt time.Time
}

// sessionHash is what the database keeps of a token.
func sessionHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// StartSession signs user name in with password, sent from client (an
// address, for the throttle Authenticate applies), deleting a bounded
// number of ended sessions first. The error is ErrUnauthenticated,
// a *ThrottledError or ErrRobotSignIn.
func (s *Service) StartSession(ctx context.Context, name, password, client string) (Session, error) {
	sub, err := s.Authenticate(ctx, name, password, client)
	if err != nil {
		return Session{}, err
	}
	if sub.RobotNamespace != "" {
		return Session{}, ErrRobotSignIn
	}
	now := s.opts.Now().UTC()
	out := Session{Token: newSecret(), Subject: sub, CSRF: newSecret(), ExpiresAt: now.Add(s.opts.SessionTTL)}
	row := meta.Session{TokenHash: sessionHash(out.Token), Account: name, CSRF: out.CSRF,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: out.ExpiresAt}
	err = s.store.Update(ctx, func(tx meta.Tx) error {
		if _, err := tx.DeleteEndedSessions(ctx, now, now.Add(-s.opts.SessionIdle), endedSessionsPerSignIn); err != nil {
			return err
		}
		return tx.CreateSession(ctx, row)
	})
	if errors.Is(err, meta.ErrNotFound) {
		return Session{}, ErrUnauthenticated // the account was deleted meanwhile
	}
	if err != nil {
		return Session{}, fmt.Errorf("starting a session: %w", err)
	}
	return out, nil
}

// Session reads the session of token: ErrUnauthenticated when there is
// none, or it expired, went idle, or its account is gone, expired or no
// longer a user. It records the visit at most once a minute.
func (s *Service) Session(ctx context.Context, token string) (Session, error) {
	if token == "" {
		return Session{}, ErrUnauthenticated
	}
	hash := sessionHash(token)
	now := s.opts.Now()
	var row meta.Session
	var a meta.Account
	err := s.store.View(ctx, func(tx meta.Tx) error {
		var err error
		if row, err = tx.Session(ctx, hash); err != nil {
			return err
		}
		a, err = tx.Account(ctx, row.Account)
		return err
	})
	if errors.Is(err, meta.ErrNotFound) {
		return Session{}, ErrUnauthenticated
	}
	if err != nil {
		return Session{}, fmt.Errorf("reading a session: %w", err)
	}
	if !now.Before(row.ExpiresAt) || !now.Before(row.LastSeenAt.Add(s.opts.SessionIdle)) ||
		a.Kind != meta.AccountUser || (a.ExpiresAt != nil && !now.Before(*a.ExpiresAt)) {
		return Session{}, ErrUnauthenticated
	}
	if now.Sub(row.LastSeenAt) >= sessionTouchEvery {
		err := s.store.Update(ctx, func(tx meta.Tx) error { return tx.TouchSession(ctx, hash, now.UTC()) })
		if errors.Is(err, meta.ErrNotFound) {
			return Session{}, ErrUnauthenticated // signed out meanwhile
		}
		if err != nil {
			return Session{}, fmt.Errorf("recording a session's visit: %w", err)
		}
	}
	return Session{Subject: subjectOf(a), CSRF: row.CSRF, ExpiresAt: row.ExpiresAt}, nil
}

// EndSession deletes the session of token (sign-out); a session already
// gone is not an error.
func (s *Service) EndSession(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	err := s.store.Update(ctx, func(tx meta.Tx) error { return tx.DeleteSession(ctx, sessionHash(token)) })
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("ending a session: %w", err)
	}
	return nil
}
