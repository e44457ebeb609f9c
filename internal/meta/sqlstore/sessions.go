package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/berth/berth/internal/meta"
)

// Web sessions (docs/design/web.md). A session is a row of web_session
// keyed by the hash of its token, tied to its account by a foreign key
// that deletes it with the account.

func (t *tx) CreateSession(ctx context.Context, s meta.Session) error {
	var id int64
	if err := t.queryRow(ctx, `SELECT id FROM account WHERE name = ?`, s.Account).Scan(&id); err != nil {
		return notFound(err, "creating a session of account %s", s.Account)
	}
	res, err := t.exec(ctx, `INSERT INTO web_session (token_hash, account_id, csrf, created_at, last_seen_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (token_hash) DO NOTHING`,
		s.TokenHash, id, s.CSRF, us(s.CreatedAt), us(s.LastSeenAt), us(s.ExpiresAt))
	if err != nil {
		return fmt.Errorf("creating a session of account %s: %w", s.Account, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("creating a session of account %s: %w", s.Account, err)
	}
	if n == 0 {
		return fmt.Errorf("creating a session of account %s: %w", s.Account, meta.ErrExists)
	}
	return nil
}

func (t *tx) Session(ctx context.Context, tokenHash string) (meta.Session, error) {
	s := meta.Session{TokenHash: tokenHash}
	var created, seen, expires int64
	err := t.queryRow(ctx, `SELECT a.name, s.csrf, s.created_at, s.last_seen_at, s.expires_at
		FROM web_session s JOIN account a ON a.id = s.account_id WHERE s.token_hash = ?`, tokenHash).
		Scan(&s.Account, &s.CSRF, &created, &seen, &expires)
	if err != nil {
		return meta.Session{}, notFound(err, "reading a session")
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromUS(created), fromUS(seen), fromUS(expires)
	return s, nil
}

func (t *tx) TouchSession(ctx context.Context, tokenHash string, at time.Time) error {
	res, err := t.exec(ctx, `UPDATE web_session SET last_seen_at = ? WHERE token_hash = ?`, us(at), tokenHash)
	return affected(res, err, "touching a session")
}

func (t *tx) DeleteSession(ctx context.Context, tokenHash string) error {
	res, err := t.exec(ctx, `DELETE FROM web_session WHERE token_hash = ?`, tokenHash)
	return affected(res, err, "deleting a session")
}

func (t *tx) DeleteAccountSessions(ctx context.Context, account string) (int64, error) {
	res, err := t.exec(ctx, `DELETE FROM web_session WHERE account_id IN (SELECT id FROM account WHERE name = ?)`, account)
	if err != nil {
		return 0, fmt.Errorf("deleting the sessions of account %s: %w", account, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("deleting the sessions of account %s: %w", account, err)
	}
	return n, nil
}

// DeleteEndedSessions skips the rows another transaction holds (on
// PostgreSQL): two sign-ins at once each delete what the other does not.
func (t *tx) DeleteEndedSessions(ctx context.Context, now, idleSince time.Time, limit int) (int64, error) {
	res, err := t.exec(ctx, `DELETE FROM web_session WHERE token_hash IN (
		SELECT token_hash FROM web_session WHERE expires_at <= ? OR last_seen_at <= ? LIMIT ?`+t.d.skipLocked()+`)`,
		us(now), us(idleSince), limit)
	if err != nil {
		return 0, fmt.Errorf("deleting ended sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("deleting ended sessions: %w", err)
	}
	return n, nil
}
