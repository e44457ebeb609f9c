package metatest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth/berth/internal/meta"
)

// Sessions are created for an existing account only, read back by their
// token hash, touched, deleted one by one, by account (and with their
// account), and, when ended, in bounded batches.
func testSessions(t *testing.T, s meta.Store) {
	ctx := context.Background()
	createAccount(t, s, meta.Account{Name: "alice", Kind: meta.AccountUser, SecretHash: "h", CreatedAt: t0})
	createAccount(t, s, meta.Account{Name: "bob", Kind: meta.AccountUser, SecretHash: "h", CreatedAt: t0})
	session := func(hash, account string, created time.Time) meta.Session {
		return meta.Session{TokenHash: hash, Account: account, CSRF: "csrf-" + hash,
			CreatedAt: created, LastSeenAt: created, ExpiresAt: created.Add(12 * time.Hour)}
	}
	create := func(ss ...meta.Session) {
		t.Helper()
		update(t, s, func(tx meta.Tx) error {
			for _, x := range ss {
				if err := tx.CreateSession(ctx, x); err != nil {
					return err
				}
			}
			return nil
		})
	}
	exists := func(hash string) bool {
		t.Helper()
		var ok bool
		view(t, s, func(tx meta.Tx) error {
			_, err := tx.Session(ctx, hash)
			if err != nil && !errors.Is(err, meta.ErrNotFound) {
				return err
			}
			ok = err == nil
			return nil
		})
		return ok
	}

	// A time in another zone, with nanoseconds the store does not keep.
	a1 := session("a1", "alice", t0.Add(123).In(time.FixedZone("CET", 3600)))
	create(a1, session("a2", "alice", t0), session("b1", "bob", t0))
	view(t, s, func(tx meta.Tx) error {
		got, err := tx.Session(ctx, "a1")
		if err != nil {
			return err
		}
		want := meta.Session{TokenHash: "a1", Account: "alice", CSRF: "csrf-a1", CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(12 * time.Hour)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Session(a1) (-want +got):\n%s", diff)
		}
		if got.CreatedAt.Location() != time.UTC {
			t.Errorf("Session(a1).CreatedAt: got %v, want UTC", got.CreatedAt.Location())
		}
		if _, err := tx.Session(ctx, "nope"); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("Session(nope): got %v, want ErrNotFound", err)
		}
		return nil
	})

	err := s.Update(ctx, func(tx meta.Tx) error { return tx.CreateSession(ctx, session("a1", "alice", t0)) })
	if !errors.Is(err, meta.ErrExists) {
		t.Errorf("CreateSession(a1 again): got %v, want ErrExists", err)
	}
	err = s.Update(ctx, func(tx meta.Tx) error { return tx.CreateSession(ctx, session("n1", "nobody", t0)) })
	if !errors.Is(err, meta.ErrNotFound) {
		t.Errorf("CreateSession(of nobody): got %v, want ErrNotFound", err)
	}

	update(t, s, func(tx meta.Tx) error { return tx.TouchSession(ctx, "a2", t0.Add(time.Hour)) })
	view(t, s, func(tx meta.Tx) error {
		got, err := tx.Session(ctx, "a2")
		if err == nil && !got.LastSeenAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("Session(a2).LastSeenAt after a touch: got %v, want %v", got.LastSeenAt, t0.Add(time.Hour))
		}
		return err
	})
	for _, fn := range []func(tx meta.Tx) error{
		func(tx meta.Tx) error { return tx.TouchSession(ctx, "nope", t0) },
		func(tx meta.Tx) error { return tx.DeleteSession(ctx, "nope") },
	} {
		if err := s.Update(ctx, fn); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("touching or deleting an unknown session: got %v, want ErrNotFound", err)
		}
	}

	update(t, s, func(tx meta.Tx) error { return tx.DeleteSession(ctx, "a2") })
	if exists("a2") || !exists("a1") {
		t.Errorf("after DeleteSession(a2): a2 exists %v, a1 exists %v; want false, true", exists("a2"), exists("a1"))
	}

	// By account: alice's sessions go, bob's stay.
	create(session("a3", "alice", t0))
	var n int64
	update(t, s, func(tx meta.Tx) (err error) {
		n, err = tx.DeleteAccountSessions(ctx, "alice")
		return err
	})
	if n != 2 || exists("a1") || exists("a3") || !exists("b1") {
		t.Errorf("DeleteAccountSessions(alice): deleted %d, a1 %v, a3 %v, b1 %v; want 2, false, false, true", n, exists("a1"), exists("a3"), exists("b1"))
	}

	// Deleting an account deletes its sessions.
	update(t, s, func(tx meta.Tx) error { return tx.DeleteAccount(ctx, "bob") })
	if exists("b1") {
		t.Errorf("session b1 exists after its account was deleted")
	}

	// Ended sessions: expired ones and idle ones, at most limit at a time;
	// a live, active one stays.
	now := t0.Add(24 * time.Hour)
	idle := 2 * time.Hour
	expired := []meta.Session{session("e1", "alice", t0), session("e2", "alice", t0), session("e3", "alice", t0)}
	idler := session("i1", "alice", now.Add(-3*time.Hour)) // not expired, idle 3 h
	live := session("l1", "alice", now.Add(-3*time.Hour))
	live.LastSeenAt = now.Add(-time.Minute)
	atEdge := session("x1", "alice", now.Add(-12*time.Hour)) // expires exactly now
	create(append(expired, idler, live, atEdge)...)
	var total int64
	for range 3 {
		update(t, s, func(tx meta.Tx) (err error) {
			n, err = tx.DeleteEndedSessions(ctx, now, now.Add(-idle), 2)
			return err
		})
		if n > 2 {
			t.Errorf("DeleteEndedSessions(limit 2): deleted %d", n)
		}
		total += n
	}
	if total != 5 {
		t.Errorf("DeleteEndedSessions: deleted %d in all, want 5 (3 expired, 1 idle, 1 expiring now)", total)
	}
	for _, h := range []string{"e1", "e2", "e3", "i1", "x1"} {
		if exists(h) {
			t.Errorf("ended session %s still exists", h)
		}
	}
	if !exists("l1") {
		t.Errorf("live session l1 was deleted")
	}
}
