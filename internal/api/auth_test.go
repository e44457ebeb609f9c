package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv"
)

// authEnv is a registry with access control on, over real backends.
type authEnv struct {
	t     *testing.T
	srv   *httptest.Server
	store *sqlstore.Store
	reg   *registry.Registry
	auth  *auth.Service
	clock *testenv.Clock
}

func newAuthEnv(t *testing.T, backend string) *authEnv {
	t.Helper()
	store, blobs := openBackends(t, backend)
	return newAuthEnvOn(t, store, blobs)
}

// newAuthEnvOn serves a replica over existing stores.
func newAuthEnvOn(t *testing.T, store *sqlstore.Store, blobs blob.Store) *authEnv {
	t.Helper()
	c := testenv.NewClock(time.Now().UTC())
	reg := registry.New(store, blobs, registry.Options{Now: c.Now, Policy: review.DefaultPolicy()})
	svc := auth.New(store, auth.Options{Service: "berth.test", Now: c.Now, HashCost: bcrypt.MinCost})
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	coll := gc.New(store, blobs, gc.Options{Now: c.Now, Policy: review.Policy{TagRetention: time.Hour, UploadExpiry: time.Hour}})
	srv := httptest.NewServer(api.New(reg, api.Options{Auth: svc, Accounts: svc, Collector: coll}))
	t.Cleanup(srv.Close)
	return &authEnv{t: t, srv: srv, store: store, reg: reg, auth: svc, clock: c}
}

// cred is how a matrix subject authenticates.
type cred struct {
	name, secret string // "" for anonymous
}

// request sends one request with Basic credentials (or none).
func (e *authEnv) request(method, path string, c cred, bearer string, body []byte) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	switch {
	case bearer != "":
		req.Header.Set("Authorization", "Bearer "+bearer)
	case c.name != "":
		req.SetBasicAuth(c.name, c.secret)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

var challengeRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// parseChallenge reads a Bearer challenge's attributes.
func parseChallenge(t *testing.T, h string) map[string]string {
	t.Helper()
	if !strings.HasPrefix(h, "Bearer ") {
		t.Fatalf("challenge %q: want Bearer", h)
	}
	out := map[string]string{}
	for _, m := range challengeRE.FindAllStringSubmatch(h, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// token asks the realm of a challenge for a token, as a client does.
func (e *authEnv) token(t *testing.T, ch map[string]string, c cred) (string, int) {
	t.Helper()
	q := url.Values{"service": {ch["service"]}}
	if ch["scope"] != "" {
		q.Set("scope", ch["scope"])
	}
	req, _ := http.NewRequest("GET", ch["realm"]+"?"+q.Encode(), nil)
	if c.name != "" {
		req.SetBasicAuth(c.name, c.secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode
	}
	var tr struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		IssuedAt    string `json:"issued_at"`
	}
	if err := json.Unmarshal(b, &tr); err != nil || tr.Token == "" || tr.Token != tr.AccessToken || tr.ExpiresIn != 300 || tr.IssuedAt == "" {
		t.Fatalf("token response %s: %v", b, err)
	}
	return tr.Token, resp.StatusCode
}

// endpoint is one row of the matrix: a request and the least level that
// may make it.
type endpoint struct {
	method, path string
	body         string
	level        int
}

// Levels of the matrix's subjects, in order.
const (
	lvlAnonymous = iota
	lvlRead
	lvlWrite
	lvlAdmin
	lvlRegistryAdmin
	lvlAuthenticated = -1 // any authenticated subject (GET /v2/)
)

// TestPermissionMatrix runs every subject against every endpoint of the
// OCI API and /berth/v1, with Basic credentials and through the token
// flow (challenge, token, retry), on every backend.
func TestPermissionMatrix(t *testing.T) {
	for _, b := range []string{backendSQLite, backendPostgres} {
		if b == backendPostgres && len(backends(t)) == 1 {
			continue
		}
		t.Run(b, func(t *testing.T) { permissionMatrix(t, newAuthEnv(t, b)) })
	}
}

func permissionMatrix(t *testing.T, e *authEnv) {
	ctx := context.Background()
	svc := e.auth
	op := meta.ActorOperator
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{"acme", "pub"} {
		must(e.store.Update(ctx, func(tx meta.Tx) error { _, _, err := tx.CreateNamespace(ctx, ns, nil); return err }))
	}
	must(svc.SetVisibility(ctx, "pub", true))
	must(svc.AddUser(ctx, "root", "root-secret", true, op))
	for _, u := range []struct {
		name string
		role auth.Role
	}{{"reader", auth.RoleRead}, {"writer", auth.RoleWrite}, {"nsadmin", auth.RoleAdmin}, {"revoked", auth.RoleWrite}, {"stranger", auth.RoleNone}} {
		must(svc.AddUser(ctx, u.name, u.name+"-secret", false, op))
		if u.role != auth.RoleNone {
			must(svc.Grant(ctx, u.name, u.role, "acme", op))
		}
	}
	must(svc.Revoke(ctx, "revoked", "acme"))
	soon := e.clock.Now().Add(time.Minute)
	expired, err := svc.AddRobot(ctx, "acme+old", auth.RoleAdmin, "", &soon, op)
	must(err)
	robot, err := svc.AddRobot(ctx, "acme+ci", auth.RoleWrite, "", nil, op)
	must(err)
	e.clock.Add(2 * time.Minute) // the old robot expires

	// Content: acme/app:v1 and pub/app:v1.
	var man digest.Digest
	var layer digest.Digest
	for _, repo := range []string{"acme/app", "pub/app"} {
		cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
		l := []byte("layer of " + repo)
		for _, blob := range [][]byte{cfg, l} {
			_, err := e.reg.PushBlob(ctx, repo, digest.FromBytes(blob).String(), int64(len(blob)), bytes.NewReader(blob))
			must(err)
		}
		m, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfg), "size": len(cfg)},
			"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(l), "size": len(l)}},
		})
		_, err := e.reg.PutManifest(ctx, repo, "v1", "application/vnd.oci.image.manifest.v1+json", m)
		must(err)
		if repo == "acme/app" {
			man, layer = digest.FromBytes(m), digest.FromBytes(l)
		}
	}

	repo := "/v2/acme/app"
	endpoints := []endpoint{
		{"GET", "/v2/", "", lvlAuthenticated},
		{"GET", "/v2/_catalog", "", lvlRegistryAdmin},
		{"GET", repo + "/manifests/v1", "", lvlRead},
		{"HEAD", repo + "/manifests/" + man.String(), "", lvlRead},
		{"GET", repo + "/blobs/" + layer.String(), "", lvlRead},
		{"HEAD", repo + "/blobs/" + layer.String(), "", lvlRead},
		{"GET", repo + "/tags/list", "", lvlRead},
		{"GET", repo + "/referrers/" + man.String(), "", lvlRead},
		{"POST", repo + "/blobs/uploads/", "", lvlWrite},
		{"PATCH", repo + "/blobs/uploads/some-id", "", lvlWrite},
		{"PUT", repo + "/blobs/uploads/some-id?digest=" + layer.String(), "", lvlWrite},
		{"GET", repo + "/blobs/uploads/some-id", "", lvlWrite},
		{"DELETE", repo + "/blobs/uploads/some-id", "", lvlWrite},
		{"PUT", repo + "/manifests/v2", "{}", lvlWrite},
		{"DELETE", repo + "/manifests/nosuchtag", "", lvlWrite},
		{"DELETE", repo + "/blobs/sha256:" + strings.Repeat("0", 64), "", lvlWrite},
		{"GET", "/berth/v1/repositories/acme/app/_tags/history", "", lvlRead},
		{"GET", "/berth/v1/repositories/acme/app/_tags/v1/history", "", lvlRead},
		{"POST", "/berth/v1/repositories/acme/app/_tags/gone/restore", `{"digest":"` + man.String() + `"}`, lvlWrite},
		{"PUT", "/berth/v1/repositories/acme/app/_tags/v1/expiry", `{"in":"10h"}`, lvlWrite},
		{"DELETE", "/berth/v1/repositories/acme/app/_tags/v1/expiry", "", lvlWrite},
		{"DELETE", "/berth/v1/repositories/acme/app/_tags/gone/history", "", lvlAdmin},
		{"GET", "/berth/v1/namespaces/acme", "", lvlRead},
		{"GET", "/berth/v1/namespaces/acme/retention", "", lvlRead},
		{"PUT", "/berth/v1/namespaces/acme/retention", `{"retention":"3d"}`, lvlAdmin},
		{"PUT", "/berth/v1/namespaces/acme", `{}`, lvlAdmin},
		{"POST", "/berth/v1/purge/acme/nothing-here", "", lvlAdmin},
		{"GET", "/berth/v1/gc/status", "", lvlRegistryAdmin},
		{"GET", "/berth/v1/usage", "", lvlRegistryAdmin},
		{"GET", "/berth/v1/namespaces/acme/usage", "", lvlRead},
		{"GET", "/berth/v1/repositories/acme/app/_usage?split=true", "", lvlRead},
		{"GET", "/berth/v1/namespaces/acme/quota", "", lvlRead},
		{"PUT", "/berth/v1/namespaces/acme/quota", `{"limit":"lots"}`, lvlAdmin},
		{"DELETE", "/berth/v1/namespaces/acme/quota", "", lvlAdmin},
		{"GET", "/berth/v1/quota", "", lvlRegistryAdmin},
		{"PUT", "/berth/v1/quota", `{"limit":"lots"}`, lvlRegistryAdmin},
		{"DELETE", "/berth/v1/quota", "", lvlRegistryAdmin},
		{"GET", "/berth/v1/quotas", "", lvlRegistryAdmin},
		// Accounts. Bodies that pass access control fail validation
		// after it (or change nothing the matrix relies on), so that an
		// allowed cell leaves the subjects as they are.
		{"GET", "/berth/v1/users", "", lvlRegistryAdmin},
		{"POST", "/berth/v1/users", `{"name":"Not A Name","password":"long-enough-1"}`, lvlRegistryAdmin},
		{"GET", "/berth/v1/users/reader", "", lvlRegistryAdmin},
		{"DELETE", "/berth/v1/users/nobody-at-all", "", lvlRegistryAdmin},
		{"PUT", "/berth/v1/users/nobody-at-all/password", `{"password":"long-enough-1"}`, lvlRegistryAdmin},
		{"GET", "/berth/v1/namespaces/acme/robots", "", lvlAdmin},
		{"POST", "/berth/v1/namespaces/acme/robots", `{"name":"x","role":"owner"}`, lvlAdmin},
		{"DELETE", "/berth/v1/namespaces/acme/robots/nobody", "", lvlAdmin},
		{"GET", "/berth/v1/namespaces/acme/grants", "", lvlAdmin},
		{"PUT", "/berth/v1/namespaces/acme/grants", `{"account":"nobody-at-all","role":"read"}`, lvlAdmin},
		{"DELETE", "/berth/v1/namespaces/acme/grants?account=nobody-at-all", "", lvlAdmin},
		{"PUT", "/berth/v1/namespaces/acme/visibility", `{"public":false}`, lvlAdmin},
		{"POST", "/berth/v1/auth/rotate-key", `{}`, lvlRegistryAdmin},
		{"GET", "/berth/v1/policies?namespace=acme", "", lvlRead},
		{"GET", "/berth/v1/policies?repository=acme/app", "", lvlRead},
		{"GET", "/berth/v1/policies", "", lvlRegistryAdmin},
		{"POST", "/berth/v1/policies/_preview?repository=acme/app", `{"kind":"keep_newest","count":1}`, lvlRead},
		{"POST", "/berth/v1/policies/_preview", `{"kind":"keep_newest","count":1}`, lvlRegistryAdmin},
		{"PUT", "/berth/v1/namespaces/acme/policies/keep", `{"kind":"keep_newest","count":5}`, lvlAdmin},
		{"GET", "/berth/v1/namespaces/acme/policies/keep", "", lvlRead},
		{"PUT", "/berth/v1/repositories/acme/app/_policies/release", `{"kind":"immutable","tag_pattern":"^release-"}`, lvlAdmin},
		{"DELETE", "/berth/v1/repositories/acme/app/_policies/nothing", "", lvlAdmin},
		{"PUT", "/berth/v1/policies/default", `{"kind":"keep_newest","count":50}`, lvlRegistryAdmin},
	}
	subjects := []struct {
		name  string
		c     cred
		level int // -2: never authenticates
	}{
		{"anonymous", cred{}, lvlAnonymous},
		{"stranger", cred{"stranger", "stranger-secret"}, lvlAnonymous},
		{"revoked grant", cred{"revoked", "revoked-secret"}, lvlAnonymous},
		{"expired robot", cred{"acme+old", expired.Secret}, -2},
		{"read", cred{"reader", "reader-secret"}, lvlRead},
		{"write", cred{"writer", "writer-secret"}, lvlWrite},
		{"write robot", cred{"acme+ci", robot.Secret}, lvlWrite},
		{"namespace admin", cred{"nsadmin", "nsadmin-secret"}, lvlAdmin},
		{"registry admin", cred{"root", "root-secret"}, lvlRegistryAdmin},
	}
	for _, s := range subjects {
		for _, ep := range endpoints {
			allowed := s.level >= ep.level && s.level != -2
			if ep.level == lvlAuthenticated {
				allowed = s.c.name != "" && s.level != -2
			}
			var body []byte
			if ep.body != "" {
				body = []byte(ep.body)
			}
			name := fmt.Sprintf("%s %s %s", s.name, ep.method, ep.path)

			// Basic credentials (or none).
			resp, b := e.request(ep.method, ep.path, s.c, "", body)
			checkOutcome(t, "basic: "+name, resp, b, allowed, s.c.name == "" || s.level == -2)
			if s.level == -2 {
				// Let the failed logins be forgotten, or the throttle
				// answers 429 (TestThrottle tests it).
				e.clock.Add(20 * time.Minute)
			}

			// The token flow: no credentials, the challenge, a token,
			// the retry.
			resp, b = e.request(ep.method, ep.path, cred{}, "", body)
			if ep.level == lvlAnonymous || (ep.level <= lvlRead && strings.Contains(ep.path, "/pub/")) {
				continue
			}
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("token: %s: without credentials got %d, want 401; %s", name, resp.StatusCode, b)
				continue
			}
			ch := parseChallenge(t, resp.Header.Get("WWW-Authenticate"))
			if !strings.HasSuffix(ch["realm"], "/auth/token") || ch["service"] != "berth.test" {
				t.Errorf("token: %s: challenge %v", name, ch)
			}
			tok, status := e.token(t, ch, s.c)
			if s.level == -2 {
				e.clock.Add(20 * time.Minute)
				if status != http.StatusUnauthorized {
					t.Errorf("token: %s: token request got %d, want 401", name, status)
				}
				continue
			}
			if status != http.StatusOK {
				t.Errorf("token: %s: token request got %d, want 200", name, status)
				continue
			}
			resp, b = e.request(ep.method, ep.path, cred{}, tok, body)
			checkOutcome(t, "token: "+name, resp, b, allowed || (ep.level == lvlAuthenticated && s.c.name == ""), s.c.name == "")
		}
	}

	// A registry administrator's token that lacks a scope is answered
	// insufficient_scope (a token carries no admin flag: the database
	// says the subject is permitted), so that the client fetches a wider
	// token rather than giving up on a 403.
	narrow, _ := e.token(t, map[string]string{"realm": e.srv.URL + "/auth/token", "service": "berth.test", "scope": "repository:acme/app:pull"}, cred{"root", "root-secret"})
	resp, body := e.request("GET", "/v2/_catalog", cred{}, narrow, nil)
	if ch := parseChallenge(t, resp.Header.Get("WWW-Authenticate")); resp.StatusCode != http.StatusUnauthorized || ch["error"] != "insufficient_scope" || ch["scope"] != "registry:catalog:*" {
		t.Errorf("catalog with an administrator's narrow token: %d %s %v, want 401 insufficient_scope for registry:catalog:*", resp.StatusCode, body, ch)
	}

	// A deleted account's cached Basic credentials stop at once.
	must(svc.AddUser(ctx, "temp", "temp-secret", false, op))
	must(svc.Grant(ctx, "temp", auth.RoleRead, "acme", op))
	if resp, _ := e.request("GET", "/v2/acme/app/tags/list", cred{"temp", "temp-secret"}, "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("temp before deletion: %d", resp.StatusCode)
	}
	other := auth.New(e.store, auth.Options{Service: "berth.test"}) // another replica deletes it
	must(other.DeleteAccount(ctx, "temp"))
	if resp, _ := e.request("GET", "/v2/acme/app/tags/list", cred{"temp", "temp-secret"}, "", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a deleted account's cached credentials: %d, want 403", resp.StatusCode)
	}

	// Anonymous pulls from a public namespace, without a token too.
	for _, path := range []string{"/v2/pub/app/manifests/v1", "/v2/pub/app/tags/list", "/berth/v1/repositories/pub/app/_tags/history"} {
		resp, b := e.request("GET", path, cred{}, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("anonymous GET %s: %d, want 200; %s", path, resp.StatusCode, b)
		}
	}
	resp, _ = e.request("PUT", "/v2/pub/app/manifests/v9", cred{}, "", []byte("{}"))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous push to a public namespace: %d, want 401", resp.StatusCode)
	}

	// A user owns the namespace named after them, even before it exists;
	// nobody else may create it by pushing.
	must(svc.AddUser(ctx, "dora", "dora-secret", false, op))
	resp, body = e.request("POST", "/v2/dora/tool/blobs/uploads/", cred{"dora", "dora-secret"}, "", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("dora pushing to her own namespace: %d; %s", resp.StatusCode, body)
	}
	resp, _ = e.request("POST", "/v2/elsewhere/tool/blobs/uploads/", cred{"dora", "dora-secret"}, "", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("dora creating another namespace by pushing: %d, want 403", resp.StatusCode)
	}
}

// checkOutcome checks one matrix cell: allowed is anything but 401 and
// 403; denied is 401 with a challenge for a subject that did not
// authenticate (anonymous), 403 DENIED for one that did.
func checkOutcome(t *testing.T, name string, resp *http.Response, body []byte, allowed, unauthenticated bool) {
	t.Helper()
	switch {
	case allowed:
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			t.Errorf("%s: got %d, want allowed; %s", name, resp.StatusCode, body)
		}
	case unauthenticated:
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer realm=") {
			t.Errorf("%s: got %d (WWW-Authenticate %q), want 401 with a challenge; %s", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
		if resp.Request.Method != http.MethodHead && ociCode(body) != "UNAUTHORIZED" {
			t.Errorf("%s: code %q, want UNAUTHORIZED", name, ociCode(body))
		}
	default:
		if resp.StatusCode != http.StatusForbidden || (resp.Request.Method != http.MethodHead && ociCode(body) != "DENIED") {
			t.Errorf("%s: got %d %s, want 403 DENIED", name, resp.StatusCode, body)
		}
	}
}

// TestTokenAcrossReplicas: a token issued by one replica is accepted by
// another over the same database and bucket, including after a key
// rotation on the first (PostgreSQL + S3, the deployment with replicas).
func TestTokenAcrossReplicas(t *testing.T) {
	if len(backends(t)) == 1 {
		t.Skip("needs PostgreSQL (BERTH_TEST_POSTGRES_DSN)")
	}
	store, blobs := openBackends(t, backendPostgresS3)
	a, b := newAuthEnvOn(t, store, blobs), newAuthEnvOn(t, store, blobs)
	ctx := context.Background()
	if err := a.auth.AddUser(ctx, "alice", "alice-secret", false, meta.ActorOperator); err != nil {
		t.Fatal(err)
	}
	push := func(issuer, server *authEnv, tag string) {
		t.Helper()
		resp, body := server.request("PUT", "/v2/alice/app/manifests/"+tag, cred{}, "", []byte("{}"))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("without credentials: %d %s", resp.StatusCode, body)
		}
		ch := parseChallenge(t, resp.Header.Get("WWW-Authenticate"))
		ch["realm"] = issuer.srv.URL + "/auth/token" // the token comes from the other replica
		tok, status := issuer.token(t, ch, cred{"alice", "alice-secret"})
		if status != http.StatusOK {
			t.Fatalf("token from the issuing replica: %d", status)
		}
		resp, body = server.request("PUT", "/v2/alice/app/manifests/"+tag, cred{}, tok, []byte("{}"))
		// The body is no manifest: MANIFEST_INVALID shows the request got
		// past access control.
		if resp.StatusCode != http.StatusBadRequest || ociCode(body) != "MANIFEST_INVALID" {
			t.Fatalf("with the other replica's token: %d %s, want 400 MANIFEST_INVALID", resp.StatusCode, body)
		}
	}
	push(a, b, "v1")
	push(b, a, "v2")
	if _, _, err := a.auth.RotateKey(ctx, false); err != nil {
		t.Fatal(err)
	}
	a.clock.Add(2 * time.Second)
	b.clock.Add(2 * time.Second)
	push(a, b, "v3") // b learns the new key on first sight of its kid
}

// TestMountNeedsPull: a cross-repository mount from a repository the
// pusher may not read starts a plain upload instead, so that a digest
// never gives access to another namespace's bytes; one it may read is
// mounted. Every change records the pusher as its actor.
func TestMountNeedsPull(t *testing.T) {
	e := newAuthEnv(t, backendSQLite)
	ctx := context.Background()
	op := meta.ActorOperator
	for _, ns := range []string{"secret", "shared"} {
		if err := e.store.Update(ctx, func(tx meta.Tx) error { _, _, err := tx.CreateNamespace(ctx, ns, nil); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.auth.AddUser(ctx, "eve", "eve-secret1", false, op); err != nil {
		t.Fatal(err)
	}
	if err := e.auth.Grant(ctx, "eve", auth.RoleRead, "shared", op); err != nil {
		t.Fatal(err)
	}
	blob := []byte("private bytes")
	d := digest.FromBytes(blob)
	for _, repo := range []string{"secret/app", "shared/app"} {
		if _, err := e.reg.PushBlob(ctx, repo, d.String(), int64(len(blob)), bytes.NewReader(blob)); err != nil {
			t.Fatal(err)
		}
	}
	eve := cred{"eve", "eve-secret1"}
	resp, body := e.request("POST", "/v2/eve/app/blobs/uploads/?mount="+d.String()+"&from=secret/app", eve, "", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("mount from a repository eve may not read: %d %s, want 202 (a plain upload)", resp.StatusCode, body)
	}
	resp, body = e.request("POST", "/v2/eve/app/blobs/uploads/?mount="+d.String()+"&from=shared/app", eve, "", nil)
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("mount from a repository eve may read: %d %s, want 201", resp.StatusCode, body)
	}

	// Through the token flow: a token for eve/app alone is answered
	// insufficient_scope, naming the source, since eve may read it; with
	// the wider token the mount happens. From the secret repository, a
	// plain upload starts.
	ch := map[string]string{"realm": e.srv.URL + "/auth/token", "service": "berth.test", "scope": "repository:eve/tool:pull,push"}
	narrow, _ := e.token(t, ch, eve)
	resp, body = e.request("POST", "/v2/eve/tool/blobs/uploads/?mount="+d.String()+"&from=shared/app", cred{}, narrow, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("mount with a token lacking the source: %d %s, want 401", resp.StatusCode, body)
	}
	got := parseChallenge(t, resp.Header.Get("WWW-Authenticate"))
	if got["error"] != "insufficient_scope" || !strings.Contains(got["scope"], "repository:shared/app:pull") {
		t.Errorf("challenge %v: want insufficient_scope naming repository:shared/app:pull", got)
	}
	resp, body = e.request("POST", "/v2/eve/tool/blobs/uploads/?mount="+d.String()+"&from=secret/app", cred{}, narrow, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("token mount from a repository eve may not read: %d %s, want 202", resp.StatusCode, body)
	}
	wide, _ := e.token(t, got, eve)
	resp, body = e.request("POST", "/v2/eve/tool/blobs/uploads/?mount="+d.String()+"&from=shared/app", cred{}, wide, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("mount with the wider token: %d %s, want 201", resp.StatusCode, body)
	}

	// Actors: eve's tag, moved by root, deleted by eve.
	if err := e.auth.AddUser(ctx, "root", "root-secret", true, op); err != nil {
		t.Fatal(err)
	}
	cfg := []byte(`{}`)
	if _, err := e.reg.PushBlob(ctx, "eve/app", digest.FromBytes(cfg).String(), int64(len(cfg)), bytes.NewReader(cfg)); err != nil {
		t.Fatal(err)
	}
	manifest := func(n int) []byte {
		m, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config":      map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfg), "size": len(cfg)},
			"layers":      []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(blob)}},
			"annotations": map[string]string{"n": fmt.Sprint(n)},
		})
		return m
	}
	put := func(c cred, n int) {
		t.Helper()
		req, _ := http.NewRequest("PUT", e.srv.URL+"/v2/eve/app/manifests/v1", bytes.NewReader(manifest(n)))
		req.SetBasicAuth(c.name, c.secret)
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT as %s: %d", c.name, resp.StatusCode)
		}
	}
	put(eve, 1)
	put(cred{"root", "root-secret"}, 2)
	if resp, body := e.request("DELETE", "/v2/eve/app/manifests/v1", eve, "", nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	h, err := e.reg.TagHistory(ctx, "eve/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	var actors []string
	for _, l := range h.Lifetimes {
		actors = append(actors, fmt.Sprintf("%s..%s(%s)", l.StartedBy, l.EndedBy, l.EndCause))
	}
	want := []string{"user:root..user:eve(deleted)", "user:eve..user:root(moved)"}
	if strings.Join(actors, " ") != strings.Join(want, " ") {
		t.Errorf("history actors %v, want %v", actors, want)
	}
}

// TestExternalIssuerAPI: with an external issuer, challenges name its
// realm, berth serves no token endpoint, the issuer's tokens are honoured
// by their access claims, and a token lacking a scope asks the client to
// get a wider one from the issuer.
func TestExternalIssuerAPI(t *testing.T) {
	store, blobs := openBackends(t, backendSQLite)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	bundle := filepath.Join(t.TempDir(), "issuer.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := auth.LoadIssuerBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	svc := auth.New(store, auth.Options{External: &auth.ExternalIssuer{
		Realm: "https://auth.example/token", Issuer: "auth.example", Service: "registry.example", Keys: keys}})
	reg := registry.New(store, blobs, registry.Options{Policy: review.DefaultPolicy()})
	srv := httptest.NewServer(api.New(reg, api.Options{Auth: svc, AuthRealm: "https://auth.example/token"}))
	t.Cleanup(srv.Close)
	e := &authEnv{t: t, srv: srv, store: store, reg: reg, auth: svc}

	resp, _ := e.request("GET", "/v2/team/app/tags/list", cred{}, "", nil)
	ch := parseChallenge(t, resp.Header.Get("WWW-Authenticate"))
	if resp.StatusCode != http.StatusUnauthorized || ch["realm"] != "https://auth.example/token" || ch["service"] != "registry.example" {
		t.Fatalf("challenge: %d %v", resp.StatusCode, ch)
	}
	if resp, _ := e.request("GET", "/auth/token?service=registry.example", cred{}, "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("berth's own token endpoint with an external issuer: %d, want 404", resp.StatusCode)
	}
	issue := func(actions ...string) string {
		cl := &auth.Claims{Access: []auth.Access{{Type: "repository", Name: "team/app", Actions: actions}}}
		cl.Issuer, cl.Subject, cl.Audience = "auth.example", "carol", jwt.ClaimStrings{"registry.example"}
		cl.IssuedAt, cl.ExpiresAt = jwt.NewNumericDate(time.Now()), jwt.NewNumericDate(time.Now().Add(time.Minute))
		s, err := jwt.NewWithClaims(jwt.SigningMethodES256, cl).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	pull := issue("pull")
	if resp, body := e.request("GET", "/v2/team/app/tags/list", cred{}, pull, nil); resp.StatusCode != http.StatusNotFound || ociCode(body) != "NAME_UNKNOWN" {
		t.Errorf("pull with the issuer's token: %d %s, want past access control (404 NAME_UNKNOWN)", resp.StatusCode, body)
	}
	resp, body := e.request("POST", "/v2/team/app/blobs/uploads/", cred{}, pull, nil)
	if ch := parseChallenge(t, resp.Header.Get("WWW-Authenticate")); resp.StatusCode != http.StatusUnauthorized || ch["error"] != "insufficient_scope" {
		t.Errorf("push with a pull token: %d %s %v, want 401 insufficient_scope", resp.StatusCode, body, ch)
	}
	if resp, body := e.request("POST", "/v2/team/app/blobs/uploads/", cred{}, issue("pull", "push"), nil); resp.StatusCode != http.StatusAccepted {
		t.Errorf("push with a push token: %d %s, want 202", resp.StatusCode, body)
	}
}

// TestPlainBasicWarning: Basic credentials over plain HTTP from another
// machine are warned about once per address, unless a trusted proxy says
// the client spoke TLS to it.
func TestPlainBasicWarning(t *testing.T) {
	store, blobs := openBackends(t, backendSQLite)
	svc := auth.New(store, auth.Options{Service: "berth.test", HashCost: bcrypt.MinCost})
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	h := api.New(registry.New(store, blobs, registry.Options{Policy: review.DefaultPolicy()}), api.Options{Auth: svc,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Logger:         slog.New(slog.NewTextHandler(&logs, nil))})
	send := func(remote, proto string) {
		req := httptest.NewRequest("GET", "/v2/", nil)
		req.RemoteAddr = remote
		req.SetBasicAuth("nobody", "wrong-password")
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	warned := func() int { return strings.Count(logs.String(), "sent a password over plain HTTP") }
	send("10.1.2.3:5555", "https") // a trusted proxy that terminated TLS
	send("127.0.0.1:5555", "")     // loopback
	if n := warned(); n != 0 {
		t.Fatalf("warned %d times, want 0:\n%s", n, logs.String())
	}
	send("192.0.2.7:5555", "https") // not a trusted proxy: its header is not believed
	send("192.0.2.7:5556", "")
	if n := warned(); n != 1 {
		t.Errorf("warned %d times, want once for 192.0.2.7:\n%s", n, logs.String())
	}
}
