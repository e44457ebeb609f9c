package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// accountsCLI runs berth commands against one data dir and database, on
// one backend, with the store open beside them to check what they did.
type accountsCLI struct {
	t     *testing.T
	args  []string
	store *sqlstore.Store
	svc   *auth.Service
}

// eachAccountsCLI runs fn on a migrated data dir, on SQLite and PostgreSQL.
func eachAccountsCLI(t *testing.T, fn func(t *testing.T, c *accountsCLI)) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			data := t.TempDir()
			dsn := filepath.Join(data, "berth.db")
			args := []string{"--data", data, "--log-level", "error"}
			if b.Name != "sqlite" {
				dsn = b.DSN(t)
				args = append(args, "--db", dsn)
			}
			c := &accountsCLI{t: t, args: args}
			if out, err := c.run("", "migrate"); err != nil {
				t.Fatalf("migrate: %v\n%s", err, out)
			}
			store, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			c.store, c.svc = store, auth.New(store, auth.Options{})
			fn(t, c)
		})
	}
}

// run runs a command with stdin.
func (c *accountsCLI) run(stdin string, cmd ...string) (string, error) {
	c.t.Helper()
	root := newRootCommand(func() []string { return nil })
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append(cmd, c.args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// ok runs a command that must succeed and returns its output.
func (c *accountsCLI) ok(stdin string, cmd ...string) string {
	c.t.Helper()
	out, err := c.run(stdin, cmd...)
	if err != nil {
		c.t.Fatalf("berth %s: %v\n%s", strings.Join(cmd, " "), err, out)
	}
	return out
}

// fails runs a command that must fail with an error containing want.
func (c *accountsCLI) fails(want string, cmd ...string) {
	c.t.Helper()
	out, err := c.run("", cmd...)
	if err == nil || !strings.Contains(err.Error(), want) {
		c.t.Errorf("berth %s: got error %v, want one containing %q\n%s", strings.Join(cmd, " "), err, want, out)
	}
}

// authenticates reports whether name and secret log in.
func (c *accountsCLI) authenticates(name, secret string) bool {
	c.t.Helper()
	// A fresh service each time: no credential cached from before.
	_, err := auth.New(c.store, auth.Options{}).Authenticate(context.Background(), name, secret, "test")
	if err != nil && !errors.Is(err, auth.ErrUnauthenticated) {
		c.t.Fatalf("authenticating %s: %v", name, err)
	}
	return err == nil
}

func TestUserCommands(t *testing.T) {
	eachAccountsCLI(t, func(t *testing.T, c *accountsCLI) {
		ctx := context.Background()
		if out := c.ok("correct horse\n", "user", "add", "alice", "--admin", "--password-stdin"); !strings.Contains(out, "Added registry administrator alice.") {
			t.Errorf("user add alice --admin: got %q", out)
		}
		if !c.authenticates("alice", "correct horse") {
			t.Error("alice does not log in with the password given on stdin (its newline dropped)")
		}
		c.fails("stdin is not a terminal: give the password on stdin with --password-stdin", "user", "add", "bob")
		c.fails("no password on stdin", "user", "add", "carol", "--password-stdin")
		if _, err := c.run("another password", "user", "add", "alice", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "account already exists") {
			t.Errorf("adding alice again: got %v, want 'account already exists'", err)
		}
		if _, err := c.run("short", "user", "add", "bob", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "at least 8") {
			t.Errorf("a short password: got %v, want a refusal", err)
		}
		if _, err := c.run("long enough", "user", "add", "Bob", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "user name") {
			t.Errorf("an invalid name: got %v, want a refusal", err)
		}
		c.ok("bob's password", "user", "add", "bob", "--password-stdin", "--json")

		var users api.Users
		if err := json.Unmarshal([]byte(c.ok("", "user", "list", "--json")), &users); err != nil {
			t.Fatal(err)
		}
		if len(users.Users) != 2 || users.Users[0].Name != "alice" || !users.Users[0].Admin || users.Users[1].Admin || users.Users[1].CreatedBy != "operator" {
			t.Errorf("user list --json: got %+v, want alice (admin) and bob, created by operator", users.Users)
		}
		if out := c.ok("", "user", "list"); !strings.Contains(out, "NAME") || !strings.Contains(out, "bob") || strings.Contains(out, "$2a$") {
			t.Errorf("user list: got\n%s", out)
		}

		c.ok("bob's new password\n", "user", "passwd", "bob", "--password-stdin")
		if !c.authenticates("bob", "bob's new password") || c.authenticates("bob", "bob's password") {
			t.Error("after passwd, bob should log in with the new password only")
		}
		if _, err := c.run("long enough", "user", "passwd", "nobody", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "account unknown") {
			t.Errorf("passwd of an unknown user: got %v, want 'account unknown'", err)
		}

		c.ok("", "user", "admin", "bob", "true")
		if a, err := c.svc.Account(ctx, "bob"); err != nil || !a.Admin {
			t.Errorf("user admin bob true: got %+v, %v", a, err)
		}
		c.ok("", "user", "admin", "bob", "false")
		if a, err := c.svc.Account(ctx, "bob"); err != nil || a.Admin {
			t.Errorf("user admin bob false: got %+v, %v", a, err)
		}
		c.fails("want true or false", "user", "admin", "bob", "maybe")

		c.ok("", "user", "delete", "bob")
		if _, err := c.svc.Account(ctx, "bob"); !errors.Is(err, auth.ErrAccountUnknown) {
			t.Errorf("bob after delete: got %v, want ErrAccountUnknown", err)
		}
		c.fails("account unknown", "user", "delete", "bob")
	})
}

func TestRobotCommands(t *testing.T) {
	eachAccountsCLI(t, func(t *testing.T, c *accountsCLI) {
		c.ok("", "namespace", "create", "acme")
		c.ok("", "namespace", "create", "other")

		var created api.RobotCreated
		out := c.ok("", "robot", "add", "acme+ci", "--role", "write", "--repo", "acme/app", "--expires", "90d", "--json")
		if err := json.Unmarshal([]byte(out), &created); err != nil {
			t.Fatalf("robot add --json: %v\n%s", err, out)
		}
		if created.Name != "acme+ci" || len(created.Secret) != 43 || len(created.Grants) != 1 || created.Grants[0].Repository != "acme/app" || created.Grants[0].Role != "write" {
			t.Errorf("robot add --json: got %+v", created)
		}
		if d := time.Until(*created.ExpiresAt); d < 89*24*time.Hour || d > 90*24*time.Hour {
			t.Errorf("robot expiry: got %s from now, want 90 days", d)
		}
		if !c.authenticates("acme+ci", created.Secret) {
			t.Error("acme+ci does not log in with its secret")
		}

		out = c.ok("", "robot", "add", "acme+deploy", "--role", "read")
		var secret string
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "secret" {
				secret = f[1]
			}
		}
		if !strings.Contains(out, "Keep the secret now") || !strings.Contains(out, "read on acme") || !strings.Contains(out, "never") || !c.authenticates("acme+deploy", secret) {
			t.Errorf("robot add (table): the secret %q does not log in, or the output lacks the role, expiry or warning:\n%s", secret, out)
		}

		c.fails("cannot be granted other/app", "robot", "add", "acme+x", "--role", "read", "--repo", "other/app")
		c.fails(`namespace "nowhere" does not exist`, "robot", "add", "nowhere+ci", "--role", "read")
		c.fails("want read, write or admin", "robot", "add", "acme+x", "--role", "owner")
		c.fails(`required flag(s) "role" not set`, "robot", "add", "acme+x")
		c.fails("--expires", "robot", "add", "acme+x", "--role", "read", "--expires", "soon")
		c.fails("want NAMESPACE+NAME", "robot", "add", "acme-ci", "--role", "read")
		c.fails("account already exists", "robot", "add", "acme+ci", "--role", "read")

		out = c.ok("", "robot", "list", "acme", "--json")
		if strings.Contains(out, created.Secret) || strings.Contains(out, `"secret"`) || strings.Contains(out, "$2a$") {
			t.Errorf("robot list shows a secret or its hash:\n%s", out)
		}
		var list api.Robots
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatal(err)
		}
		if list.Namespace != "acme" || len(list.Robots) != 2 || list.Robots[0].Name != "acme+ci" || list.Robots[1].Name != "acme+deploy" {
			t.Errorf("robot list acme --json: got %+v", list)
		}
		if out := c.ok("", "robot", "list"); !strings.Contains(out, "write on acme/app") || !strings.Contains(out, "acme+deploy") {
			t.Errorf("robot list: got\n%s", out)
		}
		if out := c.ok("", "robot", "list", "other"); !strings.Contains(out, "No robots in other") {
			t.Errorf("robot list other: got\n%s", out)
		}

		c.ok("", "robot", "delete", "acme+ci")
		if c.authenticates("acme+ci", created.Secret) {
			t.Error("a deleted robot still logs in")
		}
		c.fails("account unknown", "robot", "delete", "acme+ci")
		c.fails("want NAMESPACE+NAME", "robot", "delete", "alice")
	})
}

func TestGrantCommands(t *testing.T) {
	eachAccountsCLI(t, func(t *testing.T, c *accountsCLI) {
		ctx := context.Background()
		c.ok("", "namespace", "create", "acme")
		c.ok("", "namespace", "create", "other")
		c.ok("bob's password", "user", "add", "bob", "--password-stdin")
		c.ok("", "robot", "add", "other+ci", "--role", "read")

		if out := c.ok("", "grant", "bob", "write", "acme"); !strings.Contains(out, "Granted write on acme to bob.") {
			t.Errorf("grant bob write acme: got %q", out)
		}
		c.ok("", "grant", "bob", "admin", "acme/app")
		bob := auth.Subject{Actor: meta.UserActor("bob")}
		if err := c.svc.Authorize(ctx, bob, auth.Push("acme/base"), auth.NamespaceNeed("acme", auth.ActionPull)); err != nil {
			t.Errorf("bob after grant write on acme: %v", err)
		}

		var gs api.Grants
		if err := json.Unmarshal([]byte(c.ok("", "grants", "acme", "--json")), &gs); err != nil {
			t.Fatal(err)
		}
		if len(gs.Grants) != 2 || gs.Grants[0].Role != "write" || gs.Grants[1].Repository != "acme/app" || gs.Grants[1].Role != "admin" || gs.Grants[0].CreatedBy != "operator" {
			t.Errorf("grants acme --json: got %+v", gs.Grants)
		}
		if out := c.ok("", "grants", "--account", "other+ci"); !strings.Contains(out, "other+ci") || !strings.Contains(out, "read") {
			t.Errorf("grants --account other+ci: got\n%s", out)
		}

		c.fails("belongs to namespace other and cannot be granted acme", "grant", "other+ci", "read", "acme")
		c.fails(`namespace "nowhere" does not exist`, "grant", "bob", "read", "nowhere")
		c.fails("account unknown", "grant", "nobody", "read", "acme")
		c.fails("want read, write or admin", "grant", "bob", "owner", "acme")
		c.fails("give either NAMESPACE or --account NAME", "grants")
		c.fails("give either NAMESPACE or --account NAME", "grants", "acme", "--account", "bob")
		c.fails("account unknown", "grants", "--account", "nobody")

		c.ok("", "revoke", "bob", "acme/app")
		c.fails("bob holds no grant on acme/app", "revoke", "bob", "acme/app")
		c.ok("", "revoke", "bob", "acme")
		if err := c.svc.Authorize(ctx, bob, auth.Pull("acme/base")); !errors.Is(err, auth.ErrDenied) {
			t.Errorf("bob after revoking: got %v, want ErrDenied", err)
		}
		if out := c.ok("", "grants", "acme"); !strings.Contains(out, "No grants.") {
			t.Errorf("grants acme after revoking: got\n%s", out)
		}
	})
}

func TestVisibilityCommand(t *testing.T) {
	eachAccountsCLI(t, func(t *testing.T, c *accountsCLI) {
		ctx := context.Background()
		c.ok("", "namespace", "create", "acme")
		stored := func() bool {
			t.Helper()
			var ns meta.Namespace
			if err := c.store.View(ctx, func(tx meta.Tx) error {
				var err error
				ns, err = tx.Namespace(ctx, "acme", meta.LockNone)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return ns.Public
		}
		if out := c.ok("", "namespace", "visibility", "acme"); !strings.Contains(out, "private") {
			t.Errorf("visibility of a new namespace: got\n%s", out)
		}
		var v api.Visibility
		if err := json.Unmarshal([]byte(c.ok("", "namespace", "visibility", "acme", "public", "--json")), &v); err != nil {
			t.Fatal(err)
		}
		if !v.Public || !stored() {
			t.Errorf("visibility acme public: got %+v, stored %v", v, stored())
		}
		if err := c.svc.Authorize(ctx, auth.Anonymous, auth.Pull("acme/app")); err != nil {
			t.Errorf("anonymous pull from a public namespace: %v", err)
		}
		if out := c.ok("", "namespace", "visibility", "acme", "private"); !strings.Contains(out, "private") || stored() {
			t.Errorf("visibility acme private: got stored %v\n%s", stored(), out)
		}
		c.fails("namespace nowhere does not exist", "namespace", "visibility", "nowhere")
		c.fails(`namespace "nowhere" does not exist`, "namespace", "visibility", "nowhere", "public")
		c.fails("want public or private", "namespace", "visibility", "acme", "open")
	})
}

func TestAuthRotateKeyCommand(t *testing.T) {
	eachAccountsCLI(t, func(t *testing.T, c *accountsCLI) {
		ctx := context.Background()
		c.fails("no signing key yet", "auth", "rotate-key", "--retire-older")
		if err := c.svc.Start(ctx); err != nil { // what serve does first
			t.Fatal(err)
		}
		out := c.ok("", "auth", "rotate-key")
		if !strings.Contains(out, "Signing key berth-2 added") || !strings.Contains(out, "berth auth rotate-key --retire-older") || !strings.Contains(out, "(auth.token.ttl: 5m)") {
			t.Errorf("rotate-key: got\n%s", out)
		}
		if out := c.ok("", "auth", "rotate-key", "--retire-older"); !strings.Contains(out, "Retired berth-1; berth-2 signs") {
			t.Errorf("rotate-key --retire-older: got\n%s", out)
		}
		var rot api.KeyRotation
		if err := json.Unmarshal([]byte(c.ok("", "auth", "rotate-key", "--retire-older", "--json")), &rot); err != nil {
			t.Fatal(err)
		}
		if rot.SigningKey != "berth-2" || len(rot.Retired) != 0 {
			t.Errorf("retiring again: got %+v, want berth-2 and nothing retired", rot)
		}
		var keys []meta.SigningKey
		if err := c.store.View(ctx, func(tx meta.Tx) error {
			var err error
			keys, err = tx.SigningKeys(ctx)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(keys) != 2 || keys[0].ID != "berth-2" || keys[0].RetiredAt != nil || keys[1].RetiredAt == nil {
			t.Errorf("signing keys: got %+v, want berth-2 live and berth-1 retired", keys)
		}
	})
}
