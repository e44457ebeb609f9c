package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/testenv"
)

func newClock() *testenv.Clock {
	return testenv.NewClock(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
}

func newService(t *testing.T, s *sqlstore.Store, c *testenv.Clock) *auth.Service {
	t.Helper()
	svc := auth.New(s, auth.Options{Service: "registry.test", Now: c.Now, HashCost: bcrypt.MinCost})
	if err := svc.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return svc
}

func createNamespace(t *testing.T, s *sqlstore.Store, name string) {
	t.Helper()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx meta.Tx) error {
		_, _, err := tx.CreateNamespace(ctx, name, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestRoles(t *testing.T) {
	sqltest.ForEach(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		c := newClock()
		svc := newService(t, s, c)
		for _, ns := range []string{"acme", "open", "other"} {
			createNamespace(t, s, ns)
		}
		if err := svc.SetVisibility(ctx, "open", true); err != nil {
			t.Fatal(err)
		}
		if err := svc.AddUser(ctx, "root", "root-password", true, meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		if err := svc.AddUser(ctx, "alice", "alice-password", false, meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		if err := svc.AddUser(ctx, "bob", "bob-password1", false, meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		if err := svc.Grant(ctx, "bob", auth.RoleWrite, "acme/app", meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		if err := svc.Grant(ctx, "bob", auth.RoleRead, "acme", meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		robot, err := svc.AddRobot(ctx, "acme+ci", auth.RoleWrite, "", nil, meta.ActorOperator)
		if err != nil {
			t.Fatal(err)
		}
		login := func(name, secret string) auth.Subject {
			t.Helper()
			sub, err := svc.Authenticate(ctx, name, secret, "192.0.2.1")
			if err != nil {
				t.Fatalf("Authenticate(%s): %v", name, err)
			}
			return sub
		}
		root, alice, bob, ci := login("root", "root-password"), login("alice", "alice-password"), login("bob", "bob-password1"), login("acme+ci", robot.Secret)
		tests := []struct {
			sub  auth.Subject
			need auth.Need
			want bool
		}{
			{root, auth.RegistryNeed(auth.RegistryCatalog), true},
			{root, auth.Delete("other/x"), true},
			{alice, auth.RegistryNeed(auth.RegistryCatalog), false},
			{alice, auth.Push("alice/app"), true}, // her own namespace, though it does not exist
			{alice, auth.NamespaceNeed("alice", auth.ActionAll), true},
			{alice, auth.Push("acme/app"), false},
			{alice, auth.Pull("acme/app"), false},
			{alice, auth.Pull("open/app"), true}, // public
			{alice, auth.Push("open/app"), false},
			{bob, auth.Push("acme/app"), true},
			{bob, auth.Delete("acme/app"), true},
			{bob, auth.Push("acme/app/sub"), false}, // a repository grant is that repository only
			{bob, auth.Pull("acme/other"), true},
			{bob, auth.Push("acme/other"), false},
			{bob, auth.NamespaceNeed("acme", auth.ActionAll), false},
			{bob, auth.NamespaceNeed("acme", auth.ActionPull), true},
			{ci, auth.Push("acme/anything"), true},
			{ci, auth.NamespaceNeed("acme", auth.ActionAll), false},
			{ci, auth.Pull("open/app"), false}, // a robot never reaches outside its namespace
			{ci, auth.Push("acme/app"), true},
			{auth.Anonymous, auth.Pull("open/app"), true},
			{auth.Anonymous, auth.Pull("acme/app"), false},
			{auth.Anonymous, auth.Push("open/app"), false},
		}
		for _, tt := range tests {
			err := svc.Authorize(ctx, tt.sub, tt.need)
			if got := err == nil; got != tt.want {
				t.Errorf("%s %s: allowed %v, want %v (%v)", tt.sub.Actor, tt.need, got, tt.want, err)
			}
			if err != nil && !errors.Is(err, auth.ErrDenied) {
				t.Errorf("%s %s: %v, want ErrDenied", tt.sub.Actor, tt.need, err)
			}
		}

		// A token carries the intersection of the ask and the permission.
		tok, err := svc.IssueToken(ctx, bob, "registry.test", []auth.Access{
			{Type: "repository", Name: "acme/app", Actions: []string{"pull", "push", "*"}},
			{Type: "repository", Name: "acme/other", Actions: []string{"pull", "push"}},
			{Type: "registry", Name: "catalog", Actions: []string{"*"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		sub, access, err := svc.VerifyToken(ctx, tok.Token)
		if err != nil {
			t.Fatalf("VerifyToken: %v", err)
		}
		if sub.Actor != "user:bob" {
			t.Errorf("token subject %q, want user:bob", sub.Actor)
		}
		for n, want := range map[auth.Need]bool{
			auth.Push("acme/app"): true, auth.Pull("acme/app"): true, {Type: "repository", Name: "acme/app", Action: "*"}: false,
			auth.Pull("acme/other"): true, auth.Push("acme/other"): false, auth.RegistryNeed(auth.RegistryCatalog): false,
		} {
			if got := auth.Covers(access, n); got != want {
				t.Errorf("token covers %s: %v, want %v (access %+v)", n, got, want, access)
			}
		}

		// Revoking stops the database path at once; a token lives on
		// until it expires.
		if err := svc.Revoke(ctx, "bob", "acme/app"); err != nil {
			t.Fatal(err)
		}
		if err := svc.Authorize(ctx, bob, auth.Push("acme/app")); !errors.Is(err, auth.ErrDenied) {
			t.Errorf("push after revoke: %v, want ErrDenied", err)
		}
		if err := svc.Revoke(ctx, "bob", "acme/app"); !errors.Is(err, auth.ErrGrantUnknown) {
			t.Errorf("second revoke: %v, want ErrGrantUnknown", err)
		}
		c.Add(auth.DefaultTokenTTL + 2*time.Minute)
		if _, _, err := svc.VerifyToken(ctx, tok.Token); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("expired token: %v, want ErrInvalidToken", err)
		}
	})
}

func TestAccounts(t *testing.T) {
	sqltest.ForEach(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		c := newClock()
		svc := newService(t, s, c)
		createNamespace(t, s, "acme")
		for _, tt := range []struct {
			name, password string
			want           error
		}{
			{"Alice", "long-enough", auth.ErrInvalid},
			{"a/b", "long-enough", auth.ErrInvalid},
			{"alice", "short", auth.ErrInvalid},
			{"alice", strings.Repeat("x", 73), auth.ErrInvalid},
			{"alice", "long-enough", nil},
			{"alice", "long-enough", auth.ErrAccountExists},
		} {
			if err := svc.AddUser(ctx, tt.name, tt.password, false, meta.ActorOperator); !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
				t.Errorf("AddUser(%q): %v, want %v", tt.name, err, tt.want)
			}
		}
		if _, err := svc.Authenticate(ctx, "alice", "wrong-password", "192.0.2.1"); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("wrong password: %v", err)
		}
		if _, err := svc.Authenticate(ctx, "nobody", "long-enough", "192.0.2.1"); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("unknown user: %v", err)
		}
		if err := svc.SetPassword(ctx, "alice", "a-new-password"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Authenticate(ctx, "alice", "long-enough", "192.0.2.2"); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("old password after change: %v", err)
		}
		if _, err := svc.Authenticate(ctx, "alice", "a-new-password", "192.0.2.2"); err != nil {
			t.Errorf("new password: %v", err)
		}

		// Robots: the namespace must exist, grants stay inside it, the
		// secret works until the expiry.
		exp := c.Now().Add(time.Hour)
		if _, err := svc.AddRobot(ctx, "nowhere+ci", auth.RoleRead, "", nil, meta.ActorOperator); !errors.Is(err, auth.ErrNamespaceUnknown) {
			t.Errorf("robot of a missing namespace: %v", err)
		}
		if _, err := svc.AddRobot(ctx, "acme+ci", auth.RoleRead, "other/app", nil, meta.ActorOperator); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("robot granted outside its namespace: %v", err)
		}
		r, err := svc.AddRobot(ctx, "acme+ci", auth.RoleWrite, "acme/app", &exp, meta.ActorOperator)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Secret) < 40 {
			t.Errorf("robot secret %d characters, want at least 40", len(r.Secret))
		}
		if err := svc.Grant(ctx, "acme+ci", auth.RoleRead, "other", meta.ActorOperator); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("grant to a robot outside its namespace: %v", err)
		}
		if _, err := svc.Authenticate(ctx, "acme+ci", r.Secret, "192.0.2.3"); err != nil {
			t.Errorf("robot secret: %v", err)
		}
		a, err := svc.Account(ctx, "acme+ci")
		if err != nil || a.SecretHash != "" || a.Namespace != "acme" || a.Kind != meta.AccountRobot {
			t.Errorf("Account: %+v, %v; want a robot of acme without its hash", a, err)
		}
		c.Add(2 * time.Hour)
		if _, err := svc.Authenticate(ctx, "acme+ci", r.Secret, "192.0.2.3"); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("expired robot: %v, want ErrUnauthenticated", err)
		}
		if err := svc.DeleteAccount(ctx, "acme+ci"); err != nil {
			t.Fatal(err)
		}
		if err := svc.DeleteAccount(ctx, "acme+ci"); !errors.Is(err, auth.ErrAccountUnknown) {
			t.Errorf("second delete: %v", err)
		}
		if err := svc.AddUser(ctx, "acme", "long-enough", false, meta.ActorOperator); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("a user named after an existing namespace (who would administer it): %v, want ErrInvalid", err)
		}
		if err := svc.Grant(ctx, "alice", auth.RoleRead, "nowhere", meta.ActorOperator); !errors.Is(err, auth.ErrNamespaceUnknown) {
			t.Errorf("grant on a missing namespace: %v", err)
		}
	})
}

func TestThrottle(t *testing.T) {
	s := sqltest.Open(t, filepath.Join(t.TempDir(), "berth.db"))
	ctx := context.Background()
	c := newClock()
	svc := newService(t, s, c)
	if err := svc.AddUser(ctx, "alice", "right-password", false, meta.ActorOperator); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := svc.Authenticate(ctx, "alice", "wrong", "198.51.100.1"); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	// Throttled now, even with the right password, from any address.
	_, err := svc.Authenticate(ctx, "alice", "right-password", "198.51.100.2")
	var te *auth.ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, auth.ErrThrottled) || te.RetryAfter <= 0 {
		t.Fatalf("sixth attempt: %v, want a ThrottledError", err)
	}
	// An address is throttled for every account after 20 failures (many
	// users may share it).
	for i := range 15 {
		if _, err := svc.Authenticate(ctx, fmt.Sprintf("user%d", i), "whatever", "198.51.100.1"); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("failure %d from the address: %v", 6+i, err)
		}
	}
	if _, err := svc.Authenticate(ctx, "bob", "whatever", "198.51.100.1"); !errors.Is(err, auth.ErrThrottled) {
		t.Errorf("other account from the throttled address: %v", err)
	}
	c.Add(te.RetryAfter)
	if _, err := svc.Authenticate(ctx, "alice", "right-password", "198.51.100.2"); err != nil {
		t.Errorf("after the backoff: %v", err)
	}
	// The backoff doubles while failures go on; attempts refused within
	// it are not checked, so they do not count.
	c.Add(time.Hour)
	for range 8 {
		_, _ = svc.Authenticate(ctx, "carol", "x", "203.0.113.1")
	}
	c.Add(time.Second)
	_, _ = svc.Authenticate(ctx, "carol", "x", "203.0.113.1") // the sixth failure
	_, err = svc.Authenticate(ctx, "carol", "x", "203.0.113.1")
	if !errors.As(err, &te) {
		t.Fatalf("carol: %v", err)
	}
	if te.RetryAfter < 2*time.Second {
		t.Errorf("after 6 failures: retry after %s, want at least 2s", te.RetryAfter)
	}
}

// TestTokenVerification forges tokens the verifier must refuse.
func TestTokenVerification(t *testing.T) {
	s := sqltest.Open(t, filepath.Join(t.TempDir(), "berth.db"))
	ctx := context.Background()
	c := newClock()
	svc := newService(t, s, c)
	good, err := svc.IssueToken(ctx, auth.Anonymous, "registry.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.VerifyToken(ctx, good.Token); err != nil {
		t.Fatalf("a good token: %v", err)
	}
	var keys []meta.SigningKey
	if err := s.View(ctx, func(tx meta.Tx) error { keys, err = tx.SigningKeys(ctx); return err }); err != nil || len(keys) != 1 {
		t.Fatalf("SigningKeys: %v, %v", keys, err)
	}
	parsed, _ := x509.ParsePKCS8PrivateKey(keys[0].PrivateKey)
	berthKey := parsed.(ed25519.PrivateKey)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)

	now := c.Now()
	claims := func(mod func(*auth.Claims)) *auth.Claims {
		cl := &auth.Claims{Access: []auth.Access{{Type: "repository", Name: "acme/app", Actions: []string{"push"}}}}
		cl.Issuer, cl.Subject, cl.Audience = "berth", "user:mallory", jwt.ClaimStrings{"registry.test"}
		cl.IssuedAt, cl.NotBefore, cl.ExpiresAt = jwt.NewNumericDate(now), jwt.NewNumericDate(now), jwt.NewNumericDate(now.Add(time.Minute))
		if mod != nil {
			mod(cl)
		}
		return cl
	}
	sign := func(method jwt.SigningMethod, key any, kid string, cl *auth.Claims) string {
		tok := jwt.NewWithClaims(method, cl)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name, token string
	}{
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, keys[0].ID, claims(nil))},
		{"HS256 keyed with the public key", sign(jwt.SigningMethodHS256, []byte(berthKey.Public().(ed25519.PublicKey)), keys[0].ID, claims(nil))},
		{"ES256 with another key", sign(jwt.SigningMethodES256, ecKey, keys[0].ID, claims(nil))},
		{"unknown key", sign(jwt.SigningMethodEdDSA, otherKey, "berth-99", claims(nil))},
		{"right kid, wrong key", sign(jwt.SigningMethodEdDSA, otherKey, keys[0].ID, claims(nil))},
		{"wrong issuer", sign(jwt.SigningMethodEdDSA, berthKey, keys[0].ID, claims(func(c *auth.Claims) { c.Issuer = "evil" }))},
		{"wrong audience", sign(jwt.SigningMethodEdDSA, berthKey, keys[0].ID, claims(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other.test"} }))},
		{"expired", sign(jwt.SigningMethodEdDSA, berthKey, keys[0].ID, claims(func(c *auth.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-2 * time.Minute))
		}))},
		{"no expiry", sign(jwt.SigningMethodEdDSA, berthKey, keys[0].ID, claims(func(c *auth.Claims) { c.ExpiresAt = nil }))},
		{"not yet valid", sign(jwt.SigningMethodEdDSA, berthKey, keys[0].ID, claims(func(c *auth.Claims) {
			c.NotBefore = jwt.NewNumericDate(now.Add(10 * time.Minute))
		}))},
		{"tampered payload", func() string {
			parts := strings.Split(good.Token, ".")
			other := strings.Split(sign(jwt.SigningMethodEdDSA, otherKey, keys[0].ID, claims(nil)), ".")
			return parts[0] + "." + other[1] + "." + parts[2]
		}()},
		{"garbage", "not.a.token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := svc.VerifyToken(ctx, tt.token)
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("VerifyToken: %v, want ErrInvalidToken", err)
			}
			if strings.Contains(err.Error(), tt.token) {
				t.Errorf("the error quotes the token: %v", err)
			}
		})
	}
	// The sanity check of the forgery: the same claims signed with
	// berth's key verify.
	if _, _, err := svc.VerifyToken(ctx, sign(jwt.SigningMethodEdDSA, berthKey, keys[0].ID, claims(nil))); err != nil {
		t.Errorf("well-signed forgery control: %v", err)
	}

	// Rotation: a second replica (another Service on the same store)
	// learns the new key on first sight of its kid.
	other := newService(t, s, c)
	id, _, err := svc.RotateKey(ctx, false)
	if err != nil || id == keys[0].ID {
		t.Fatalf("RotateKey: %q, %v", id, err)
	}
	c.Add(2 * time.Second)
	fresh, err := svc.IssueToken(ctx, auth.Anonymous, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.VerifyToken(ctx, fresh.Token); err != nil {
		t.Errorf("the other replica verifying a token of the new key: %v", err)
	}
	if _, _, err := other.VerifyToken(ctx, good.Token); err != nil {
		t.Errorf("a token of the older key before it is retired: %v", err)
	}
	if _, retired, err := svc.RotateKey(ctx, true); err != nil || len(retired) != 1 || retired[0] != keys[0].ID {
		t.Fatalf("RotateKey(retire): %v, %v", retired, err)
	}
	if _, _, err := svc.VerifyToken(ctx, good.Token); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("a token of a retired key: %v, want ErrInvalidToken", err)
	}
	// The other replica (or a server after berth auth rotate-key) learns
	// of the retirement and signs with the new key within 30 s.
	c.Add(31 * time.Second)
	if _, _, err := other.VerifyToken(ctx, good.Token); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("the other replica, 31 s after the retirement: %v, want ErrInvalidToken", err)
	}
	newest, err := other.IssueToken(ctx, auth.Anonymous, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if kid := tokenKID(t, newest.Token); kid != id {
		t.Errorf("the other replica signs with %q, want the new key %q", kid, id)
	}
}

// tokenKID reads the kid of a token's header.
func tokenKID(t *testing.T, raw string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// TestExternalIssuer verifies tokens of an issuer berth trusts by a PEM
// bundle, and refuses one signed by a key outside it.
func TestExternalIssuer(t *testing.T) {
	s := sqltest.Open(t, filepath.Join(t.TempDir(), "berth.db"))
	ctx := context.Background()
	c := newClock()
	issuerKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&issuerKey.PublicKey)
	bundle := filepath.Join(t.TempDir(), "issuer.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := auth.LoadIssuerBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	svc := auth.New(s, auth.Options{Now: c.Now, External: &auth.ExternalIssuer{
		Realm: "https://auth.example/token", Issuer: "auth.example", Service: "registry.example", Keys: keys}})
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mk := func(key any, method jwt.SigningMethod, iss string) string {
		cl := &auth.Claims{Access: []auth.Access{{Type: "repository", Name: "acme/app", Actions: []string{"pull"}}}}
		cl.Issuer, cl.Subject, cl.Audience = iss, "carol", jwt.ClaimStrings{"registry.example"}
		cl.IssuedAt, cl.ExpiresAt = jwt.NewNumericDate(c.Now()), jwt.NewNumericDate(c.Now().Add(time.Minute))
		s, err := jwt.NewWithClaims(method, cl).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sub, access, err := svc.VerifyToken(ctx, mk(issuerKey, jwt.SigningMethodES256, "auth.example"))
	if err != nil {
		t.Fatalf("the issuer's token: %v", err)
	}
	if sub.Actor != "user:carol" || !auth.Covers(access, auth.Pull("acme/app")) {
		t.Errorf("got %q %+v", sub.Actor, access)
	}
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, _, err := svc.VerifyToken(ctx, mk(stranger, jwt.SigningMethodES256, "auth.example")); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("a key outside the bundle: %v", err)
	}
	if _, _, err := svc.VerifyToken(ctx, mk(issuerKey, jwt.SigningMethodES256, "elsewhere")); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("another issuer: %v", err)
	}
	if _, err := svc.IssueToken(ctx, auth.Anonymous, "", nil); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("IssueToken with an external issuer: %v", err)
	}
}

func TestParseScope(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want auth.Access
		err  bool
	}{
		{"repository:acme/app:pull,push", auth.Access{Type: "repository", Name: "acme/app", Actions: []string{"pull", "push"}}, false},
		{"repository(plugin):acme/app:pull", auth.Access{Type: "repository", Name: "acme/app", Actions: []string{"pull"}}, false},
		{"registry:catalog:*", auth.Access{Type: "registry", Name: "catalog", Actions: []string{"*"}}, false},
		{"repository:acme/app:pull,bogus,pull", auth.Access{Type: "repository", Name: "acme/app", Actions: []string{"pull"}}, false},
		{"repository:acme/app", auth.Access{}, true},
		{"nonsense", auth.Access{}, true},
	} {
		got, err := auth.ParseScope(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("ParseScope(%q): %v", tt.in, err)
			continue
		}
		if !tt.err && (got.Type != tt.want.Type || got.Name != tt.want.Name || strings.Join(got.Actions, ",") != strings.Join(tt.want.Actions, ",")) {
			t.Errorf("ParseScope(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}
