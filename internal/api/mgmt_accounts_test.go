package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/auth"
	blobfs "github.com/berth/berth/internal/blob/fs"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
)

// accountsEnv serves the account endpoints over a real store, with access
// control off unless withAuth (then the same service also authenticates).
type accountsEnv struct {
	t     *testing.T
	srv   *httptest.Server
	store *sqlstore.Store
	reg   *registry.Registry
	svc   *auth.Service
}

func newAccountsEnv(t *testing.T, store *sqlstore.Store, withAuth bool) *accountsEnv {
	t.Helper()
	blobs, err := blobfs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &accountsEnv{t: t, store: store, svc: auth.New(store, auth.Options{Service: "registry.test", HashCost: bcrypt.MinCost})}
	policy := review.DefaultPolicy()
	policy.Grace = 0
	e.reg = registry.New(store, blobs, registry.Options{Policy: policy})
	opts := api.Options{Accounts: e.svc}
	if withAuth {
		if err := e.svc.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		opts.Auth = e.svc
	}
	e.srv = httptest.NewServer(api.New(e.reg, opts))
	t.Cleanup(e.srv.Close)
	return e
}

// eachAccountsEnv runs fn on SQLite and PostgreSQL.
func eachAccountsEnv(t *testing.T, withAuth bool, fn func(t *testing.T, e *accountsEnv)) {
	sqltest.ForEach(t, func(t *testing.T, s *sqlstore.Store) { fn(t, newAccountsEnv(t, s, withAuth)) })
}

// call sends a request, with Basic credentials when user is not "". On
// 2xx it decodes a JSON body into out; otherwise it returns the OCI error
// code. No body, whatever the status, ever carries a bcrypt hash.
func (e *accountsEnv) call(method, path, body, user, pass string, wantStatus int, out any) string {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		e.t.Fatalf("%s %s %s: got status %d, want %d; body %s", method, path, body, resp.StatusCode, wantStatus, b)
	}
	if strings.Contains(string(b), "$2a$") || strings.Contains(string(b), "$2b$") {
		e.t.Errorf("%s %s: the answer carries a secret hash: %s", method, path, b)
	}
	if resp.StatusCode == http.StatusNoContent {
		if len(b) != 0 {
			e.t.Errorf("%s %s: 204 with a body: %s", method, path, b)
		}
		return ""
	}
	if resp.StatusCode >= 300 {
		var env struct {
			Errors []struct{ Code, Message string } `json:"errors"`
		}
		if err := json.Unmarshal(b, &env); err != nil || len(env.Errors) != 1 {
			e.t.Fatalf("%s %s: error body is not an OCI envelope: %s", method, path, b)
		}
		return env.Errors[0].Code
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return ""
}

// expect checks an error answer's status and code.
func (e *accountsEnv) expect(method, path, body string, status int, code string) {
	e.t.Helper()
	if got := e.call(method, path, body, "", "", status, nil); got != code {
		e.t.Errorf("%s %s %s: got code %s, want %s", method, path, body, got, code)
	}
}

// roleUsers creates the users the endpoint tests act as, each with the
// password "<name> password": root (a registry administrator), and alice,
// bob and carol with the admin, read and write roles on ns.
func (e *accountsEnv) roleUsers(ns string) {
	e.t.Helper()
	ctx := context.Background()
	for _, u := range []struct {
		name  string
		admin bool
		role  auth.Role
	}{{"root", true, 0}, {"alice", false, auth.RoleAdmin}, {"bob", false, auth.RoleRead}, {"carol", false, auth.RoleWrite}} {
		if err := e.svc.AddUser(ctx, u.name, u.name+" password", u.admin, meta.ActorOperator); err != nil {
			e.t.Fatal(err)
		}
		if u.role != 0 {
			if err := e.svc.Grant(ctx, u.name, u.role, ns, meta.ActorOperator); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

func (e *accountsEnv) createNamespace(ns string) {
	e.t.Helper()
	if _, _, err := e.reg.CreateNamespace(context.Background(), ns, nil); err != nil {
		e.t.Fatal(err)
	}
}

func TestAccountUsers(t *testing.T) {
	eachAccountsEnv(t, false, func(t *testing.T, e *accountsEnv) {
		ctx := context.Background()
		var u api.Account
		e.call("POST", "/berth/v1/users", `{"name":"alice","password":"correct horse","admin":true}`, "", "", 201, &u)
		if u.Name != "alice" || u.Kind != meta.AccountUser || !u.Admin || u.CreatedBy != string(meta.ActorAnonymous) || u.CreatedAt.IsZero() {
			t.Errorf("created user: got %+v, want alice, an administrator, created by anonymous (access control off)", u)
		}
		e.call("POST", "/berth/v1/users", `{"name":"bob","password":"bob's password"}`, "", "", 201, nil)
		e.expect("POST", "/berth/v1/users", `{"name":"alice","password":"another one"}`, 409, "ACCOUNT_EXISTS")
		e.expect("POST", "/berth/v1/users", `{"name":"Alice","password":"correct horse"}`, 400, "INVALID_ARGUMENT")
		e.expect("POST", "/berth/v1/users", `{"name":"carol","password":"short"}`, 400, "INVALID_ARGUMENT")
		e.expect("POST", "/berth/v1/users", `{"name":"carol","password":"long enough","role":"admin"}`, 400, "INVALID_ARGUMENT")

		var list api.Users
		e.call("GET", "/berth/v1/users", "", "", "", 200, &list)
		if len(list.Users) != 2 || list.Users[0].Name != "alice" || list.Users[1].Name != "bob" || list.Users[1].Admin {
			t.Errorf("user list: got %+v, want alice (admin) and bob", list.Users)
		}

		e.createNamespace("acme")
		if err := e.svc.Grant(ctx, "bob", auth.RoleWrite, "acme/app", meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		var bob api.Account
		e.call("GET", "/berth/v1/users/bob", "", "", "", 200, &bob)
		if len(bob.Grants) != 1 || bob.Grants[0].Repository != "acme/app" || bob.Grants[0].Role != "write" || bob.Grants[0].CreatedBy != "operator" {
			t.Errorf("bob's grants: got %+v, want write on acme/app by operator", bob.Grants)
		}
		e.expect("GET", "/berth/v1/users/nobody", "", 404, "ACCOUNT_UNKNOWN")
		e.expect("GET", "/berth/v1/users/acme+ci", "", 400, "INVALID_ARGUMENT")

		// Password: the new one authenticates, the old one no longer.
		e.call("PUT", "/berth/v1/users/bob/password", `{"password":"a new password"}`, "", "", 204, nil)
		if _, err := e.svc.Authenticate(ctx, "bob", "a new password", "test"); err != nil {
			t.Errorf("bob with the new password: %v", err)
		}
		if _, err := e.svc.Authenticate(ctx, "bob", "bob's password", "test"); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("bob with the old password: got %v, want ErrUnauthenticated", err)
		}
		e.expect("PUT", "/berth/v1/users/bob/password", `{"password":"short"}`, 400, "INVALID_ARGUMENT")
		e.expect("PUT", "/berth/v1/users/nobody/password", `{"password":"long enough"}`, 404, "ACCOUNT_UNKNOWN")
		e.expect("POST", "/berth/v1/users/bob/password", `{"password":"long enough"}`, 405, "UNSUPPORTED")

		e.call("DELETE", "/berth/v1/users/bob", "", "", "", 204, nil)
		e.expect("DELETE", "/berth/v1/users/bob", "", 404, "ACCOUNT_UNKNOWN")
		if gs, err := e.svc.NamespaceGrants(ctx, "acme"); err != nil || len(gs) != 0 {
			t.Errorf("grants on acme after deleting bob: got %+v, %v, want none", gs, err)
		}
	})
}

func TestRobotSecretShownOnce(t *testing.T) {
	eachAccountsEnv(t, false, func(t *testing.T, e *accountsEnv) {
		ctx := context.Background()
		e.createNamespace("acme")
		e.createNamespace("other")
		var created api.RobotCreated
		before := time.Now()
		e.call("POST", "/berth/v1/namespaces/acme/robots", `{"name":"ci","role":"write","repository":"acme/app","expires_in":"90d"}`, "", "", 201, &created)
		if created.Name != "acme+ci" || created.Kind != meta.AccountRobot || created.Namespace != "acme" || len(created.Secret) != 43 {
			t.Fatalf("created robot: got %+v, want acme+ci with a 43-character secret", created)
		}
		if created.ExpiresAt == nil || created.ExpiresAt.Before(before.Add(90*24*time.Hour)) || created.ExpiresAt.After(time.Now().Add(90*24*time.Hour)) {
			t.Errorf("robot expiry: got %v, want 90 days from now", created.ExpiresAt)
		}
		if len(created.Grants) != 1 || created.Grants[0].Repository != "acme/app" || created.Grants[0].Role != "write" {
			t.Errorf("robot grants: got %+v, want write on acme/app", created.Grants)
		}
		sub, err := e.svc.Authenticate(ctx, "acme+ci", created.Secret, "test")
		if err != nil || sub.Actor != meta.RobotActor("acme+ci") || sub.RobotNamespace != "acme" {
			t.Fatalf("robot with its secret: got %+v, %v", sub, err)
		}
		if err := e.svc.Authorize(ctx, sub, auth.Push("acme/app")); err != nil {
			t.Errorf("robot pushing to acme/app: %v", err)
		}
		e.call("POST", "/berth/v1/namespaces/acme/robots", `{"name":"reader","role":"read"}`, "", "", 201, nil)

		// The list never shows a secret again.
		req, _ := http.NewRequest("GET", e.srv.URL+"/berth/v1/namespaces/acme/robots", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(raw), created.Secret) || strings.Contains(string(raw), `"secret"`) {
			t.Errorf("robot list shows a secret: %s", raw)
		}
		var list api.Robots
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatal(err)
		}
		if list.Namespace != "acme" || len(list.Robots) != 2 || list.Robots[0].Name != "acme+ci" || list.Robots[1].Name != "acme+reader" ||
			len(list.Robots[1].Grants) != 1 || list.Robots[1].Grants[0].Repository != "" || list.Robots[1].Grants[0].Role != "read" {
			t.Errorf("robot list: got %+v", list)
		}
		var none api.Robots
		e.call("GET", "/berth/v1/namespaces/other/robots", "", "", "", 200, &none)
		if len(none.Robots) != 0 {
			t.Errorf("robots of other: got %+v, want none", none.Robots)
		}

		for _, c := range []struct {
			path, body string
			status     int
			code       string
		}{
			{"/berth/v1/namespaces/acme/robots", `{"name":"ci","role":"read"}`, 409, "ACCOUNT_EXISTS"},
			{"/berth/v1/namespaces/acme/robots", `{"name":"x","role":"read","repository":"other/app"}`, 400, "INVALID_ARGUMENT"},
			{"/berth/v1/namespaces/acme/robots", `{"name":"x","role":"owner"}`, 400, "INVALID_ARGUMENT"},
			{"/berth/v1/namespaces/acme/robots", `{"name":"x","role":"read","expires_in":"soon"}`, 400, "INVALID_ARGUMENT"},
			{"/berth/v1/namespaces/acme/robots", `{"name":"X","role":"read"}`, 400, "INVALID_ARGUMENT"},
			{"/berth/v1/namespaces/nowhere/robots", `{"name":"x","role":"read"}`, 404, "NAME_UNKNOWN"},
		} {
			e.expect("POST", c.path, c.body, c.status, c.code)
		}

		e.call("DELETE", "/berth/v1/namespaces/acme/robots/ci", "", "", "", 204, nil)
		if _, err := e.svc.Authenticate(ctx, "acme+ci", created.Secret, "test"); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("deleted robot: got %v, want ErrUnauthenticated", err)
		}
		e.expect("DELETE", "/berth/v1/namespaces/acme/robots/ci", "", 404, "ACCOUNT_UNKNOWN")
		e.expect("DELETE", "/berth/v1/namespaces/acme/robots/Bad", "", 400, "INVALID_ARGUMENT")
	})
}

func TestGrantEndpoints(t *testing.T) {
	eachAccountsEnv(t, false, func(t *testing.T, e *accountsEnv) {
		ctx := context.Background()
		e.createNamespace("acme")
		e.createNamespace("other")
		if err := e.svc.AddUser(ctx, "bob", "bob's password", false, meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.AddRobot(ctx, "other+ci", auth.RoleRead, "", nil, meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		var g api.Grant
		e.call("PUT", "/berth/v1/namespaces/acme/grants", `{"account":"bob","role":"read"}`, "", "", 200, &g)
		if g.Account != "bob" || g.Namespace != "acme" || g.Repository != "" || g.Role != "read" {
			t.Errorf("grant on acme: got %+v", g)
		}
		e.call("PUT", "/berth/v1/namespaces/acme/grants", `{"account":"bob","role":"admin","repository":"acme/app"}`, "", "", 200, &g)
		if g.Repository != "acme/app" || g.Role != "admin" {
			t.Errorf("grant on acme/app: got %+v", g)
		}
		// Changing the role of a grant.
		g = api.Grant{}
		e.call("PUT", "/berth/v1/namespaces/acme/grants", `{"account":"bob","role":"write"}`, "", "", 200, &g)
		if g.Repository != "" || g.Role != "write" {
			t.Errorf("changed grant on acme: got %+v", g)
		}
		var list api.Grants
		e.call("GET", "/berth/v1/namespaces/acme/grants", "", "", "", 200, &list)
		if len(list.Grants) != 2 || list.Grants[0].Role != "write" || list.Grants[1].Repository != "acme/app" {
			t.Errorf("grants on acme: got %+v, want write on acme and admin on acme/app", list.Grants)
		}

		for _, c := range []struct {
			method, path, body string
			status             int
			code               string
		}{
			{"PUT", "/berth/v1/namespaces/acme/grants", `{"account":"other+ci","role":"read"}`, 400, "INVALID_ARGUMENT"},
			{"PUT", "/berth/v1/namespaces/nowhere/grants", `{"account":"bob","role":"read"}`, 404, "NAME_UNKNOWN"},
			{"PUT", "/berth/v1/namespaces/acme/grants", `{"account":"nobody","role":"read"}`, 404, "ACCOUNT_UNKNOWN"},
			{"PUT", "/berth/v1/namespaces/acme/grants", `{"account":"bob","role":"read","repository":"other/app"}`, 400, "INVALID_ARGUMENT"},
			{"PUT", "/berth/v1/namespaces/acme/grants", `{"account":"bob","role":"none"}`, 400, "INVALID_ARGUMENT"},
			{"PUT", "/berth/v1/namespaces/Acme/grants", `{"account":"bob","role":"read"}`, 400, "INVALID_ARGUMENT"},
			{"DELETE", "/berth/v1/namespaces/acme/grants", "", 400, "INVALID_ARGUMENT"},
			{"DELETE", "/berth/v1/namespaces/acme/grants?account=bob&repository=acme/other", "", 404, "GRANT_UNKNOWN"},
			{"POST", "/berth/v1/namespaces/acme/grants", `{}`, 405, "UNSUPPORTED"},
		} {
			e.expect(c.method, c.path, c.body, c.status, c.code)
		}

		e.call("DELETE", "/berth/v1/namespaces/acme/grants?account=bob&repository=acme/app", "", "", "", 204, nil)
		e.call("DELETE", "/berth/v1/namespaces/acme/grants?account=bob", "", "", "", 204, nil)
		e.expect("DELETE", "/berth/v1/namespaces/acme/grants?account=bob", "", 404, "GRANT_UNKNOWN")
		e.call("GET", "/berth/v1/namespaces/acme/grants", "", "", "", 200, &list)
		if len(list.Grants) != 0 {
			t.Errorf("grants on acme after revoking both: got %+v", list.Grants)
		}
	})
}

func TestVisibilityEndpoint(t *testing.T) {
	eachAccountsEnv(t, false, func(t *testing.T, e *accountsEnv) {
		ctx := context.Background()
		e.createNamespace("acme")
		public := func() bool {
			t.Helper()
			var ns meta.Namespace
			if err := e.store.View(ctx, func(tx meta.Tx) error {
				var err error
				ns, err = tx.Namespace(ctx, "acme", meta.LockNone)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return ns.Public
		}
		if public() {
			t.Fatal("a new namespace is public")
		}
		var v api.Visibility
		e.call("PUT", "/berth/v1/namespaces/acme/visibility", `{"public":true}`, "", "", 200, &v)
		if v != (api.Visibility{Namespace: "acme", Public: true}) || !public() {
			t.Errorf("made public: got %+v, stored %v", v, public())
		}
		e.call("PUT", "/berth/v1/namespaces/acme/visibility", `{"public":false}`, "", "", 200, &v)
		if v.Public || public() {
			t.Errorf("made private: got %+v, stored %v", v, public())
		}
		e.expect("PUT", "/berth/v1/namespaces/nowhere/visibility", `{"public":true}`, 404, "NAME_UNKNOWN")
		e.expect("PUT", "/berth/v1/namespaces/acme/visibility", `{}`, 400, "INVALID_ARGUMENT")
		e.expect("PUT", "/berth/v1/namespaces/acme/visibility", `{"public":"yes"}`, 400, "INVALID_ARGUMENT")
		e.expect("GET", "/berth/v1/namespaces/acme/visibility", "", 405, "UNSUPPORTED")
	})
}

func TestRotateKeyEndpoint(t *testing.T) {
	eachAccountsEnv(t, false, func(t *testing.T, e *accountsEnv) {
		ctx := context.Background()
		if err := e.svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		old, err := e.svc.IssueToken(ctx, auth.Anonymous, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		var rot api.KeyRotation
		e.call("POST", "/berth/v1/auth/rotate-key", "", "", "", 200, &rot)
		if rot.SigningKey != "berth-2" || len(rot.Retired) != 0 {
			t.Errorf("rotation: got %+v, want berth-2 signing, nothing retired", rot)
		}
		if _, _, err := e.svc.VerifyToken(ctx, old.Token); err != nil {
			t.Errorf("a token of the older key after rotating: %v", err)
		}
		e.call("POST", "/berth/v1/auth/rotate-key", `{"retire_older":true}`, "", "", 200, &rot)
		if rot.SigningKey != "berth-2" || len(rot.Retired) != 1 || rot.Retired[0] != "berth-1" {
			t.Errorf("retiring: got %+v, want berth-2 signing, berth-1 retired", rot)
		}
		if _, _, err := e.svc.VerifyToken(ctx, old.Token); err == nil {
			t.Error("a token of a retired key still verifies")
		}
		e.expect("POST", "/berth/v1/auth/rotate-key", `{"retire":true}`, 400, "INVALID_ARGUMENT")
		e.expect("GET", "/berth/v1/auth/rotate-key", "", 405, "UNSUPPORTED")
	})
}

// TestUserPasswordSelf: with access control on, a user changes their own
// password with Basic credentials, not another's; an administrator changes
// anyone's. The namespace endpoints need admin on the namespace.
func TestUserPasswordSelf(t *testing.T) {
	eachAccountsEnv(t, true, func(t *testing.T, e *accountsEnv) {
		ctx := context.Background()
		for _, u := range []struct {
			name  string
			admin bool
		}{{"root", true}, {"alice", false}, {"bob", false}} {
			if err := e.svc.AddUser(ctx, u.name, u.name+" password", u.admin, meta.ActorOperator); err != nil {
				t.Fatal(err)
			}
		}
		e.call("PUT", "/berth/v1/users/alice/password", `{"password":"alice new password"}`, "alice", "alice password", 204, nil)
		if _, err := e.svc.Authenticate(ctx, "alice", "alice new password", "test"); err != nil {
			t.Errorf("alice with her new password: %v", err)
		}
		if code := e.call("PUT", "/berth/v1/users/bob/password", `{"password":"taken over!"}`, "alice", "alice new password", 403, nil); code != "DENIED" {
			t.Errorf("alice changing bob's password: got %s, want DENIED", code)
		}
		if code := e.call("PUT", "/berth/v1/users/bob/password", `{"password":"taken over!"}`, "", "", 401, nil); code != "UNAUTHORIZED" {
			t.Errorf("anonymous changing bob's password: got %s, want UNAUTHORIZED", code)
		}
		e.call("PUT", "/berth/v1/users/bob/password", `{"password":"bob new password"}`, "root", "root password", 204, nil)
		if _, err := e.svc.Authenticate(ctx, "bob", "bob new password", "test"); err != nil {
			t.Errorf("bob with the password root set: %v", err)
		}
		if code := e.call("GET", "/berth/v1/users", "", "alice", "alice new password", 403, nil); code != "DENIED" {
			t.Errorf("alice listing users: got %s, want DENIED", code)
		}
		// The namespace endpoints need admin on the namespace: alice owns
		// hers, not acme.
		e.createNamespace("alice")
		e.createNamespace("acme")
		e.call("POST", "/berth/v1/namespaces/alice/robots", `{"name":"ci","role":"write"}`, "alice", "alice new password", 201, nil)
		e.call("PUT", "/berth/v1/namespaces/alice/visibility", `{"public":true}`, "alice", "alice new password", 200, nil)
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/berth/v1/namespaces/acme/robots", ""},
			{"PUT", "/berth/v1/namespaces/acme/grants", `{"account":"alice","role":"admin"}`},
			{"PUT", "/berth/v1/namespaces/acme/visibility", `{"public":true}`},
			{"DELETE", "/berth/v1/namespaces/acme/robots/ci", ""},
			{"POST", "/berth/v1/auth/rotate-key", ""},
			{"DELETE", "/berth/v1/users/bob", ""},
		} {
			if code := e.call(c.method, c.path, c.body, "alice", "alice new password", 403, nil); code != "DENIED" {
				t.Errorf("alice: %s %s: got %s, want DENIED", c.method, c.path, code)
			}
		}
		var u api.Account
		e.call("POST", "/berth/v1/users", `{"name":"carol","password":"carol password"}`, "root", "root password", 201, &u)
		if u.CreatedBy != "user:root" {
			t.Errorf("carol created by: got %q, want user:root", u.CreatedBy)
		}
	})
}

// TestAccountsAbsent: a server built without accounts answers 501.
func TestAccountsAbsent(t *testing.T) {
	e := newMgmtEnv(t, false)
	if code := e.call("GET", "/berth/v1/users", "", 501, nil); code != "UNSUPPORTED" {
		t.Errorf("users without accounts: got %s, want UNSUPPORTED", code)
	}
}
