package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// TestServeAccessControl: serve with access control on, on each backend:
// /v2/ challenges, a client logs in through /auth/token and pushes with
// the token, /metrics is for administrators only (metrics_auth), and
// neither the password nor the token reaches the log.
func TestServeAccessControl(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			if b.Name != "sqlite" {
				cfg.DB = b.DSN(t)
			}
			cfg.Auth.Enabled = true
			cfg.Metrics, cfg.MetricsAuth = true, true
			logs := &syncBuffer{}
			base, _ := start(t, cfg, logs)

			ctx := context.Background()
			accts, err := OpenAccounts(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer accts.Close()
			const adminPW, alicePW = "admin-Passw0rd-xyzzy", "alice-Passw0rd-plugh"
			if err := accts.Auth.AddUser(ctx, "admin", adminPW, true, meta.ActorOperator); err != nil {
				t.Fatal(err)
			}
			if err := accts.Auth.AddUser(ctx, "alice", alicePW, false, meta.ActorOperator); err != nil {
				t.Fatal(err)
			}

			resp := do(t, "GET", base+"/v2/", "", nil)
			wantStatus(t, resp, http.StatusUnauthorized)
			challenge := resp.Header.Get("WWW-Authenticate")
			m := regexp.MustCompile(`realm="([^"]+)",service="([^"]+)"`).FindStringSubmatch(challenge)
			if m == nil || m[1] != base+"/auth/token" {
				t.Fatalf("challenge %q: want realm %s/auth/token", challenge, base)
			}

			// alice logs in for her own namespace and pushes a blob.
			q := url.Values{"service": {m[2]}, "scope": {"repository:alice/app:pull,push"}}
			req, _ := http.NewRequest("GET", m[1]+"?"+q.Encode(), nil)
			req.SetBasicAuth("alice", alicePW)
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var tok struct{ Token string }
			if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.Token == "" {
				t.Fatalf("token: %d %v", resp.StatusCode, err)
			}
			resp.Body.Close()
			blob := []byte("alice's layer")
			req, _ = http.NewRequest("POST", base+"/v2/alice/app/blobs/uploads/?digest="+sha(blob), strings.NewReader(string(blob)))
			req.Header.Set("Authorization", "Bearer "+tok.Token)
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			wantStatus(t, resp, http.StatusCreated)

			for _, tt := range []struct {
				user, pw string
				want     int
			}{{"", "", 401}, {"alice", alicePW, 403}, {"admin", "wrong", 401}, {"admin", adminPW, 200}} {
				req, _ := http.NewRequest("GET", base+"/metrics", nil)
				if tt.user != "" {
					req.SetBasicAuth(tt.user, tt.pw)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.want {
					t.Errorf("GET /metrics as %q: %d, want %d; %.100s", tt.user, resp.StatusCode, tt.want, body)
				}
			}

			out := logs.String()
			for _, secret := range []string{adminPW, alicePW, tok.Token, tok.Token[strings.LastIndex(tok.Token, ".")+1:]} {
				if strings.Contains(out, secret) {
					t.Errorf("the log holds a secret (%.12s…)", secret)
				}
			}
			if !strings.Contains(out, "subject=user:alice") {
				t.Errorf("the request log does not name the subject:\n%s", out)
			}
		})
	}
}

// TestServeSecureByDefault: with access control off, serve refuses a
// non-loopback address unless told insecure_open_access, and warns.
func TestServeSecureByDefault(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Addr = ":0"
	err := Serve(t.Context(), cfg, newLogger(io.Discard, cfg))
	if err == nil || !strings.Contains(err.Error(), "insecure_open_access") {
		t.Fatalf("Serve on :0 with access control off: %v, want a refusal naming insecure_open_access", err)
	}
	cfg.InsecureOpenAccess = true
	logs := &syncBuffer{}
	start(t, cfg, logs)
	if !strings.Contains(logs.String(), "insecure_open_access: access control is off") {
		t.Errorf("no warning at start:\n%s", logs.String())
	}

	cfg = testConfig(t, t.TempDir())
	logs = &syncBuffer{}
	start(t, cfg, logs)
	if !strings.Contains(logs.String(), "access control is off") {
		t.Errorf("no warning on loopback either:\n%s", logs.String())
	}
}

// TestServeMetricsAddr: metrics_addr serves /metrics on its own listener,
// and the registry's port no longer answers it.
func TestServeMetricsAddr(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Metrics = true
	cfg.MetricsAddr = "127.0.0.1:0"
	logs := &syncBuffer{}
	base, _ := start(t, cfg, logs)
	m := regexp.MustCompile(`msg="metrics listening" addr=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics listener in the log:\n%s", logs.String())
	}
	wantStatus(t, do(t, "GET", "http://"+m[1]+"/metrics", "", nil), http.StatusOK)
	wantStatus(t, do(t, "GET", base+"/metrics", "", nil), http.StatusNotFound)
	wantStatus(t, do(t, "GET", "http://"+m[1]+"/v2/", "", nil), http.StatusNotFound)
}
