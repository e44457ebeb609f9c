package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// countSessions counts the web_session rows of the store.
func countSessions(t *testing.T, s *sqlstore.Store) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(context.Background(), `SELECT COUNT(*) FROM web_session`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSessions(t *testing.T) {
	sqltest.ForEach(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		c := newClock()
		svc := newService(t, s, c) // sessions: 12 h, idle 2 h
		createNamespace(t, s, "acme")
		if err := svc.AddUser(ctx, "alice", "alice-password", false, meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		if err := svc.AddUser(ctx, "root", "root-password", true, meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		robot, err := svc.AddRobot(ctx, "acme+ci", auth.RoleWrite, "", nil, meta.ActorOperator)
		if err != nil {
			t.Fatal(err)
		}

		if _, err := svc.StartSession(ctx, "alice", "wrong-password", "192.0.2.1"); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("StartSession with a wrong password: got %v, want ErrUnauthenticated", err)
		}
		if _, err := svc.StartSession(ctx, robot.Name, robot.Secret, "192.0.2.1"); !errors.Is(err, auth.ErrRobotSignIn) {
			t.Errorf("StartSession of a robot: got %v, want ErrRobotSignIn", err)
		}
		if n := countSessions(t, s); n != 0 {
			t.Errorf("after failed sign-ins: %d sessions, want 0", n)
		}

		start, err := svc.StartSession(ctx, "alice", "alice-password", "192.0.2.1")
		if err != nil {
			t.Fatalf("StartSession: %v", err)
		}
		if len(start.Token) < 40 || len(start.CSRF) < 40 || start.Token == start.CSRF {
			t.Errorf("StartSession: token %q, csrf %q; want two distinct 256-bit random strings", start.Token, start.CSRF)
		}
		if want := c.Now().Add(auth.DefaultSessionTTL); !start.ExpiresAt.Equal(want) {
			t.Errorf("StartSession: expires %v, want %v", start.ExpiresAt, want)
		}
		var stored string
		if err := s.DB().QueryRowContext(ctx, `SELECT token_hash FROM web_session`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored == start.Token || len(stored) != 64 {
			t.Errorf("the database holds %q for token %q; want its hex SHA-256, never the token", stored, start.Token)
		}

		got, err := svc.Session(ctx, start.Token)
		if err != nil || got.Subject.Actor != meta.UserActor("alice") || got.CSRF != start.CSRF || got.Token != "" {
			t.Errorf("Session: got %+v, %v; want alice's, with the CSRF token and no token", got, err)
		}
		for _, bad := range []string{"", "nope", start.CSRF} {
			if _, err := svc.Session(ctx, bad); !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("Session(%q): got %v, want ErrUnauthenticated", bad, err)
			}
		}

		// Idle: a visit every 90 minutes keeps it; 2 h without one ends it.
		for range 3 {
			c.Add(90 * time.Minute)
			if _, err := svc.Session(ctx, start.Token); err != nil {
				t.Fatalf("Session after 90 min idle: %v", err)
			}
		}
		c.Add(2 * time.Hour)
		if _, err := svc.Session(ctx, start.Token); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("Session after 2 h idle: got %v, want ErrUnauthenticated", err)
		}

		// The TTL ends an active session.
		s2, err := svc.StartSession(ctx, "alice", "alice-password", "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if n := countSessions(t, s); n != 1 {
			t.Errorf("a sign-in left %d sessions, want 1 (the idle one deleted)", n)
		}
		for elapsed := time.Duration(0); elapsed < 12*time.Hour-time.Hour; elapsed += time.Hour {
			c.Add(time.Hour)
			if _, err := svc.Session(ctx, s2.Token); err != nil {
				t.Fatalf("Session %s after sign-in: %v", elapsed+time.Hour, err)
			}
		}
		c.Add(time.Hour)
		if _, err := svc.Session(ctx, s2.Token); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("Session 12 h after sign-in: got %v, want ErrUnauthenticated", err)
		}

		// Sign-out deletes the row.
		s3, err := svc.StartSession(ctx, "alice", "alice-password", "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.EndSession(ctx, s3.Token); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Session(ctx, s3.Token); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("Session after EndSession: got %v, want ErrUnauthenticated", err)
		}
		if err := svc.EndSession(ctx, s3.Token); err != nil {
			t.Errorf("EndSession twice: %v, want nil", err)
		}
		if n := countSessions(t, s); n != 0 {
			t.Errorf("after sign-out: %d sessions, want 0", n)
		}

		// A password change ends the user's sessions, not another's.
		a1, _ := svc.StartSession(ctx, "alice", "alice-password", "192.0.2.1")
		a2, _ := svc.StartSession(ctx, "alice", "alice-password", "192.0.2.2")
		r1, err := svc.StartSession(ctx, "root", "root-password", "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := svc.Session(ctx, r1.Token); err != nil || !got.Subject.Admin {
			t.Errorf("root's session: got %+v, %v; want an administrator", got, err)
		}
		if err := svc.SetPassword(ctx, "alice", "alice-password-2"); err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{a1.Token, a2.Token} {
			if _, err := svc.Session(ctx, tok); !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("alice's session after her password changed: got %v, want ErrUnauthenticated", err)
			}
		}
		if _, err := svc.Session(ctx, r1.Token); err != nil {
			t.Errorf("root's session after alice's password changed: %v", err)
		}
		// Deleting an account ends its sessions.
		if err := svc.DeleteAccount(ctx, "root"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Session(ctx, r1.Token); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("root's session after root was deleted: got %v, want ErrUnauthenticated", err)
		}
		if n := countSessions(t, s); n != 0 {
			t.Errorf("after the password change and the deletion: %d sessions, want 0", n)
		}
	})
}

// Sign-in is throttled like the API's Basic path: after five failures
// in a row the account waits, even with the right password.
func TestSessionThrottle(t *testing.T) {
	sqltest.ForEach(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		c := newClock()
		svc := newService(t, s, c)
		if err := svc.AddUser(ctx, "alice", "alice-password", false, meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if _, err := svc.StartSession(ctx, "alice", "wrong-password", "192.0.2.1"); !errors.Is(err, auth.ErrUnauthenticated) {
				t.Fatalf("a wrong password: got %v, want ErrUnauthenticated", err)
			}
		}
		_, err := svc.StartSession(ctx, "alice", "alice-password", "192.0.2.1")
		var te *auth.ThrottledError
		if !errors.As(err, &te) || te.RetryAfter <= 0 {
			t.Fatalf("the right password after 5 failures: got %v, want a *ThrottledError", err)
		}
		c.Add(te.RetryAfter)
		if _, err := svc.StartSession(ctx, "alice", "alice-password", "192.0.2.1"); err != nil {
			t.Errorf("after the wait: %v", err)
		}
	})
}
