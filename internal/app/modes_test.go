package app

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth/berth/internal/datadir"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// modes maps every path under root to its permission bits.
func modes(t *testing.T, root string) map[string]fs.FileMode {
	t.Helper()
	out := map[string]fs.FileMode{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = fi.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestServeDataIsPrivate: after serve and a push, the data directory and
// every directory under it are 0700 and every file 0600: the SQLite
// database with its -wal and -shm files, staging files and blobs.
func TestServeDataIsPrivate(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "berth-data")
			cfg := testConfig(t, data)
			if b.Name != "sqlite" {
				cfg.DB = b.DSN(t)
			}
			base, _ := start(t, cfg, &syncBuffer{})
			pushImage(t, base, "acme/app", "v1")
			resp := do(t, "POST", base+"/v2/acme/app/blobs/uploads/", "", nil)
			wantStatus(t, resp, 202)
			req := do(t, "PATCH", base+resp.Header.Get("Location"), "application/octet-stream", []byte("staged"))
			wantStatus(t, req, 202)

			var uploads, blobs int
			for p, m := range modes(t, data) {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				want := datadir.FileMode
				switch rel, _ := filepath.Rel(data, p); {
				case fi.IsDir():
					want = datadir.DirMode
				case strings.HasPrefix(rel, "storage/uploads/"):
					uploads++
				case strings.HasPrefix(rel, "storage/blobs/"):
					blobs++
				}
				if m != want {
					t.Errorf("%s: got mode %v, want %v", p, m, want)
				}
			}
			if uploads != 1 || blobs != 2 {
				t.Errorf("got %d staging files and %d blobs, want 1 and 2 (a config and a layer)", uploads, blobs)
			}
			if b.Name == "sqlite" {
				for _, f := range []string{"berth.db", "berth.db-wal", "berth.db-shm"} {
					if _, err := os.Stat(filepath.Join(data, f)); err != nil {
						t.Errorf("the SQLite files: %v", err)
					}
				}
			}
		})
	}
}

// TestServeTightensOlderData: a data directory an older berth left
// world-readable (0755 directories, 0644 database) is made private when
// serve starts, with a warning naming each path; what lies under a
// private directory is left as it is.
func TestServeTightensOlderData(t *testing.T) {
	data := filepath.Join(t.TempDir(), "berth-data")
	cfg := testConfig(t, data)
	_, stop := start(t, cfg, &syncBuffer{})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	older := map[string]fs.FileMode{
		data:                                 0o755,
		filepath.Join(data, "storage"):       0o755,
		filepath.Join(data, "storage/blobs"): 0o755,
		filepath.Join(data, "berth.db"):      0o644,
	}
	for p, m := range older {
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}

	var logs syncBuffer
	_, stop = start(t, cfg, &logs)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{
		data:                                 datadir.DirMode,
		filepath.Join(data, "storage"):       datadir.DirMode,
		filepath.Join(data, "storage/blobs"): 0o755, // behind two private directories
		filepath.Join(data, "berth.db"):      datadir.FileMode,
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: got mode %v, want %v", p, got, want)
		}
	}
	for _, p := range []string{data, filepath.Join(data, "storage"), filepath.Join(data, "berth.db")} {
		if !strings.Contains(logs.String(), "path="+p+" ") {
			t.Errorf("no warning names %s; log:\n%s", p, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "made private"); n != 3 {
		t.Errorf("got %d warnings, want 3; log:\n%s", n, logs.String())
	}
}
