package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer = testenv.LogBuffer

func testConfig(t *testing.T, data string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = data
	cfg.Metrics = false
	cfg.Log.Level = "debug"
	return cfg
}

// start runs the server in-process and returns its base URL and a function
// that stops it and returns Serve's error.
func start(t *testing.T, cfg config.Config, logs io.Writer) (base string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- serve(ctx, cfg, newLogger(logs, cfg), func(a net.Addr) { addrc <- a })
	}()
	select {
	case a := <-addrc:
		base = "http://" + a.String()
	case err := <-errc:
		cancel()
		t.Fatalf("serve returned before listening: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve did not start within 30s")
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(40 * time.Second):
				err = errors.New("serve did not return within 40s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return base, stop
}

func do(t *testing.T, method, u, contentType string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func wantStatus(t *testing.T, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: got status %d, want %d; body: %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, b)
	}
}

func sha(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// pushBlob uploads b to repo with POST then PUT ?digest=.
func pushBlob(t *testing.T, base, repo string, b []byte) {
	t.Helper()
	resp := do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	wantStatus(t, resp, http.StatusAccepted)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(base)
	u = u.ResolveReference(loc)
	q := u.Query()
	q.Set("digest", sha(b))
	u.RawQuery = q.Encode()
	wantStatus(t, do(t, http.MethodPut, u.String(), "application/octet-stream", b), http.StatusCreated)
}

// imageManifest is the OCI image manifest of a config and one layer.
func imageManifest(t *testing.T, cfgBlob, layer []byte) []byte {
	t.Helper()
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cfgBlob), "size": len(cfgBlob)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(layer), "size": len(layer)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return manifest
}

// pushImage pushes a one-layer image to repo:tag and returns its manifest.
func pushImage(t *testing.T, base, repo, tag string) []byte {
	t.Helper()
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("layer bytes of " + repo + ":" + tag)
	pushBlob(t, base, repo, cfgBlob)
	pushBlob(t, base, repo, layer)
	manifest := imageManifest(t, cfgBlob, layer)
	resp := do(t, http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, "application/vnd.oci.image.manifest.v1+json", manifest)
	wantStatus(t, resp, http.StatusCreated)
	return manifest
}

func TestServeStartsAndRestartsOnTheSameData(t *testing.T) {
	data := t.TempDir()
	cfg := testConfig(t, data)

	var logs1 syncBuffer
	base, stop := start(t, cfg, &logs1)
	wantStatus(t, do(t, http.MethodGet, base+"/v2/", "", nil), http.StatusOK)
	manifest := pushImage(t, base, "library/hello", "v1")
	if err := stop(); err != nil {
		t.Fatalf("first serve: got %v, want nil after cancel", err)
	}
	for _, want := range []string{"initializing empty database", `msg="berth listening"`, "backend=sqlite", "stopped"} {
		if !strings.Contains(logs1.String(), want) {
			t.Errorf("first start logs lack %q:\n%s", want, logs1.String())
		}
	}

	// A second start on the same data dir finds the schema current and the
	// image still there.
	var logs2 syncBuffer
	base, stop = start(t, cfg, &logs2)
	wantStatus(t, do(t, http.MethodGet, base+"/v2/", "", nil), http.StatusOK)
	resp := do(t, http.MethodGet, base+"/v2/library/hello/manifests/v1", "", nil)
	wantStatus(t, resp, http.StatusOK)
	got, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(got, manifest) {
		t.Errorf("manifest after restart: got %s, want %s", got, manifest)
	}
	if err := stop(); err != nil {
		t.Fatalf("second serve: got %v, want nil after cancel", err)
	}
	if s := logs2.String(); strings.Contains(s, "initializing empty database") || strings.Contains(s, "migrating database schema") {
		t.Errorf("second start migrated again:\n%s", s)
	}
}

// setSchemaVersion records a migration version directly in the SQLite file.
func setSchemaVersion(t *testing.T, dsn string, version int) {
	t.Helper()
	c, err := sqlite.NewConnector("file:" + dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	if _, err := db.ExecContext(t.Context(),
		`INSERT INTO schema_migration (version, name, applied_at) VALUES (?, 'future', 0)`, version); err != nil {
		t.Fatal(err)
	}
}

func TestServeRefusesNewerSchema(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	if err := Migrate(t.Context(), cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	setSchemaVersion(t, cfg.DSN(), 9999)

	err := serve(t.Context(), cfg, slog.New(slog.DiscardHandler), func(net.Addr) {
		t.Error("serve listened on a database with a newer schema")
	})
	if !errors.Is(err, meta.ErrSchemaUnknown) {
		t.Fatalf("serve: got %v, want meta.ErrSchemaUnknown", err)
	}
	if err := Migrate(t.Context(), cfg, slog.New(slog.DiscardHandler)); !errors.Is(err, meta.ErrSchemaUnknown) {
		t.Fatalf("Migrate: got %v, want meta.ErrSchemaUnknown", err)
	}
	if _, err := OpenStores(t.Context(), cfg); !errors.Is(err, meta.ErrSchemaUnknown) {
		t.Fatalf("OpenStores: got %v, want meta.ErrSchemaUnknown", err)
	}
}

func TestOpenStoresNeedsAMigratedRegistry(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			parent := t.TempDir()
			cfg := testConfig(t, filepath.Join(parent, "data"))
			if b.Name != "sqlite" {
				cfg.DB = b.DSN(t)
				if err := os.Mkdir(cfg.Data, 0o700); err != nil { // the blobs' directory
					t.Fatal(err)
				}
			}
			// Nothing there: refused, and nothing created.
			if _, err := OpenStores(t.Context(), cfg); !errors.Is(err, ErrNoRegistry) {
				t.Fatalf("OpenStores on nothing: got %v, want ErrNoRegistry", err)
			}
			if _, err := OpenAccounts(t.Context(), cfg); !errors.Is(err, ErrNoRegistry) {
				t.Fatalf("OpenAccounts on nothing: got %v, want ErrNoRegistry", err)
			}
			if b.Name == "sqlite" {
				if _, err := os.Stat(cfg.Data); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("data directory after OpenStores: got %v, want it not to exist", err)
				}
			} else if ents, _ := os.ReadDir(cfg.Data); len(ents) != 0 {
				t.Errorf("data directory after OpenStores: got %v, want it empty", ents)
			}

			if err := Migrate(t.Context(), cfg, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			s, err := OpenStores(t.Context(), cfg)
			if err != nil {
				t.Fatalf("OpenStores after migrate: %v", err)
			}
			if got, want := s.Meta.Dialect(), cfg.Backend(); got != want {
				t.Errorf("Dialect() = %q, want %q", got, want)
			}
			// One migration behind: outdated, not "no registry".
			latest := s.Meta.LatestVersion()
			db := s.Meta.DB()
			if b.Name == "sqlite" { // DB() is the read-only pool there
				c, err := sqlite.NewConnector("file:" + cfg.DSN())
				if err != nil {
					t.Fatal(err)
				}
				db = sql.OpenDB(c)
				defer db.Close()
			}
			if _, err := db.ExecContext(t.Context(), fmt.Sprintf(`DELETE FROM schema_migration WHERE version = %d`, latest)); err != nil {
				t.Fatal(err)
			}
			s.Close()
			if _, err := OpenStores(t.Context(), cfg); !errors.Is(err, meta.ErrSchemaOutdated) {
				t.Fatalf("OpenStores one migration behind: got %v, want meta.ErrSchemaOutdated", err)
			}
		})
	}
}

// A taken port fails serve before it creates or migrates anything.
func TestServeBindsBeforeCreating(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, b := range sqltest.Backends() {
		for _, which := range []string{"addr", "metrics_addr"} {
			t.Run(b.Name+"/"+which, func(t *testing.T) {
				cfg := testConfig(t, filepath.Join(t.TempDir(), "data"))
				if b.Name != "sqlite" {
					cfg.DB = b.DSN(t)
				}
				if which == "addr" {
					cfg.Addr = taken.Addr().String()
				} else {
					cfg.Metrics = true
					cfg.MetricsAddr = taken.Addr().String()
				}
				err := serve(t.Context(), cfg, slog.New(slog.DiscardHandler), func(net.Addr) {
					t.Error("serve listened on a taken port")
				})
				if err == nil || !strings.Contains(err.Error(), "listening on "+taken.Addr().String()) {
					t.Fatalf("serve on a taken %s: got %v, want a listening error", which, err)
				}
				if _, err := os.Stat(cfg.Data); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("data directory after a failed start: got %v, want it not to exist", err)
				}
				if b.Name != "sqlite" {
					store, err := sqlstore.Open(t.Context(), cfg.DB, sqlstore.Options{})
					if err != nil {
						t.Fatal(err)
					}
					defer store.Close()
					if v, err := store.SchemaVersion(t.Context()); err != nil || v != 0 {
						t.Errorf("schema version after a failed start: got %d (%v), want 0: nothing migrated", v, err)
					}
				}
			})
		}
	}
}

func TestServeRejectsInvalidConfig(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.GC.BatchSize = 0
	cfg.TLS.Cert = "cert.pem"
	err := Serve(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "gc.batch_size") || !strings.Contains(err.Error(), "tls") {
		t.Fatalf("Serve: got %v, want errors naming gc.batch_size and tls", err)
	}
}

func TestRegistryOptions(t *testing.T) {
	cfg := config.Default()
	policy := review.DefaultPolicy()
	got := registryOptions(cfg, policy, slog.New(slog.DiscardHandler))
	if want := (registry.Limits{UploadSessions: 100_000, UploadSessionsPerRepository: 1000, BlobSize: 10 << 30}); got.Limits != want {
		t.Errorf("default limits: got %+v, want %+v", got.Limits, want)
	}
	if got.PullInterval != 10*time.Minute {
		t.Errorf("default pull interval: got %s, want 10m", got.PullInterval)
	}
	cfg.Limits = config.Limits{UploadSessions: 7, UploadSessionsPerRepository: 0, BlobSize: 3 * config.MiB}
	got = registryOptions(cfg, policy, slog.New(slog.DiscardHandler))
	if want := (registry.Limits{UploadSessions: 7, BlobSize: 3 << 20}); got.Limits != want {
		t.Errorf("configured limits: got %+v, want %+v", got.Limits, want)
	}
	cfg.Policy.PullInterval = 0
	if got = registryOptions(cfg, policy, slog.New(slog.DiscardHandler)); got.PullInterval != 0 {
		t.Errorf("pull interval 0 (every pull): got %s", got.PullInterval)
	}
}

func TestNewLogger(t *testing.T) {
	tests := []struct {
		level, format string
		wantDebug     bool
		wantPrefix    string
	}{
		{"info", "text", false, "time="},
		{"debug", "json", true, "{"},
		{"error", "text", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.level+"/"+tt.format, func(t *testing.T) {
			cfg := config.Default()
			cfg.Log.Level, cfg.Log.Format = tt.level, tt.format
			var b bytes.Buffer
			l := newLogger(&b, cfg)
			if got := l.Enabled(context.Background(), slog.LevelDebug); got != tt.wantDebug {
				t.Errorf("debug enabled = %v, want %v", got, tt.wantDebug)
			}
			l.Warn("w")
			if tt.wantPrefix != "" && !strings.HasPrefix(b.String(), tt.wantPrefix) {
				t.Errorf("output %q, want prefix %q", b.String(), tt.wantPrefix)
			}
			if tt.level == "error" && b.Len() != 0 {
				t.Errorf("level error logged a warning: %q", b.String())
			}
		})
	}
}

func TestVersion(t *testing.T) {
	v := Version()
	if v.Version == "" || v.Commit == "" || !strings.HasPrefix(v.GoVersion, "go") {
		t.Errorf("Version() = %+v, want every field set", v)
	}
}
