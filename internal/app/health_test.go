package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth/berth/internal/blob/fs"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/testenv"
)

// get sends GET u and returns the status and body.
func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp := do(t, http.MethodGet, u, "", nil)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestHealthEndpoints: with access control on, /healthz and /readyz answer
// anyone (the API asks for credentials); /readyz goes 503 with the reason
// once the blob store's root is removed, and the log says why.
func TestHealthEndpoints(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Auth.Enabled = true
			if b.Name != "sqlite" {
				cfg.DB = b.DSN(t)
			}
			var logs syncBuffer
			base, _ := start(t, cfg, &logs)
			if status, body := get(t, base+"/healthz"); status != http.StatusOK || body != "ok\n" {
				t.Errorf("GET /healthz: got %d %q, want 200 ok", status, body)
			}
			if status, body := get(t, base+"/readyz"); status != http.StatusOK || body != "ok\n" {
				t.Errorf("GET /readyz: got %d %q, want 200 ok", status, body)
			}
			if resp := do(t, http.MethodHead, base+"/readyz", "", nil); resp.StatusCode != http.StatusOK {
				t.Errorf("HEAD /readyz: got %d, want 200", resp.StatusCode)
			}
			if status, _ := get(t, base+"/v2/"); status != http.StatusUnauthorized {
				t.Errorf("GET /v2/: got %d, want 401 (access control on)", status)
			}
			if status, _ := rawGet(t, base, "/%72eadyz"); status == http.StatusOK {
				t.Errorf("GET /%%72eadyz: got 200, want the API's answer to an unknown path")
			}

			if err := os.RemoveAll(cfg.BlobRoot()); err != nil {
				t.Fatal(err)
			}
			var status int
			var body string
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if status, body = get(t, base+"/readyz"); status != http.StatusOK {
					break
				}
			}
			if status != http.StatusServiceUnavailable || body != "not ready\nblob store: unreachable\n" {
				t.Errorf("GET /readyz without the blob root: got %d %q, want 503 naming the blob store", status, body)
			}
			if status, _ := get(t, base+"/healthz"); status != http.StatusOK {
				t.Errorf("GET /healthz without the blob root: got %d, want 200 (the process serves)", status)
			}
			if !regexp.MustCompile(`level=WARN msg="not ready" check="blob store" err=".*no such file or directory`).MatchString(logs.String()) {
				t.Errorf("log lacks the reason of the blob store's failure:\n%s", logs.String())
			}
		})
	}
}

// probe asks rd once and returns the status and body.
func probe(rd *readiness) (int, string) {
	w := httptest.NewRecorder()
	rd.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return w.Code, w.Body.String()
}

// TestReadiness: ready on a current store; 503 with the reason when the
// schema is older or newer than this berth's, when the database is closed
// and when the blob root is gone. A result serves the probes of the next
// second: a burst of probes costs one check.
func TestReadiness(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			store := sqltest.Open(t, dsn)
			root := filepath.Join(t.TempDir(), "storage")
			blobs, err := fs.New(root)
			if err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			rd := newReadiness(store, blobs, newLogger(&logs, testConfig(t, t.TempDir())))
			clock := testenv.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			rd.now = clock.Now
			var checks atomic.Int64
			db := rd.checks[0].check
			rd.checks[0].check = func(ctx context.Context) (string, error) { checks.Add(1); return db(ctx) }

			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					if status, body := probe(rd); status != http.StatusOK || body != "ok\n" {
						t.Errorf("probe of a ready store: got %d %q, want 200 ok", status, body)
					}
				})
			}
			wg.Wait()
			if got := checks.Load(); got != 1 {
				t.Errorf("checks for a burst of 20 probes: got %d, want 1", got)
			}

			latest := store.LatestVersion()
			sqltest.Exec(t, dsn, `DELETE FROM schema_migration WHERE version = (SELECT MAX(version) FROM schema_migration)`)
			if status, _ := probe(rd); status != http.StatusOK {
				t.Errorf("probe within a second of the last check: got %d, want the cached 200", status)
			}
			clock.Add(readyTTL)
			want := "not ready\ndatabase: database schema version " + strconv.Itoa(latest-1) + ", this berth needs " + strconv.Itoa(latest) + ": meta: database schema needs migrating (run berth migrate)\n"
			if status, body := probe(rd); status != http.StatusServiceUnavailable || body != want {
				t.Errorf("probe of an older schema: got %d %q, want 503 %q", status, body, want)
			}
			if got := checks.Load(); got != 2 {
				t.Errorf("checks: got %d, want 2", got)
			}

			sqltest.Exec(t, dsn, `INSERT INTO schema_migration (version, name, applied_at) VALUES (9999, 'future', 0)`)
			clock.Add(readyTTL)
			if status, body := probe(rd); status != http.StatusServiceUnavailable || !strings.Contains(body, "database: database schema version 9999, this berth knows up to") || !strings.Contains(body, "newer than this berth") {
				t.Errorf("probe of a newer schema: got %d %q, want 503 naming version 9999, newer than this berth", status, body)
			}

			if err := os.RemoveAll(root); err != nil {
				t.Fatal(err)
			}
			store.Close()
			clock.Add(readyTTL)
			want = "not ready\ndatabase: unreachable\nblob store: unreachable\n"
			if status, body := probe(rd); status != http.StatusServiceUnavailable || body != want {
				t.Errorf("probe of a closed database and a removed blob root: got %d %q, want 503 %q", status, body, want)
			}
			for _, w := range []string{`check=database err="reading schema version: sql: database is closed"`, `check="blob store" err="checking blob store: stat ` + root} {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, logs.String())
				}
			}
		})
	}
}
