package fs_test

// Tests of what is particular to the filesystem backend: the on-disk layout
// written down in doc.go, bounded memory, and serving through http.ServeContent.
// The behaviour shared with every backend is in blobtest.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/blob/fs"
)

func TestLayout(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := fs.New(root)
	if err != nil {
		t.Fatalf("fs.New: %v", err)
	}
	for _, d := range []string{"blobs", "uploads", "tmp"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s/: got %v, want a directory", d, err)
		}
	}
	if _, err := s.UploadAppend(ctx, "up-1", 0, bytes.NewReader([]byte("hello"))); err != nil {
		t.Fatalf("UploadAppend: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "uploads", "up-1")); err != nil || string(b) != "hello" {
		t.Errorf("uploads/up-1: got %q, %v, want %q", b, err, "hello")
	}
	d := digest.FromString("hello")
	key, _, err := s.UploadCommit(ctx, "up-1", d)
	if err != nil {
		t.Fatalf("UploadCommit: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "blobs", filepath.FromSlash(key))); err != nil || string(b) != "hello" {
		t.Errorf("blobs/%s: got %q, %v, want %q", key, b, err, "hello")
	}
	if _, err := os.Stat(filepath.Join(root, "uploads", "up-1")); !os.IsNotExist(err) {
		t.Errorf("uploads/up-1 after commit: got %v, want not exist", err)
	}

	// Temporary and stray files are neither objects nor uploads.
	stray := map[string]string{
		filepath.Join("blobs", filepath.Dir(filepath.FromSlash(key)), ".tmp-123"): "partial",
		filepath.Join("blobs", ".tmp", "x"):                                       "partial",
		filepath.Join("uploads", ".tmp-up"):                                       "partial",
		filepath.Join("uploads", "bad.name"):                                      "partial",
		filepath.Join("tmp", "leftover"):                                          "partial",
	}
	for p, c := range stray {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	if err := s.Walk(ctx, func(i blob.Info) error { keys = append(keys, i.Key); return nil }); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if len(keys) != 1 || keys[0] != key {
		t.Errorf("Walk: got %q, want [%q]", keys, key)
	}
	var ids []string
	if err := s.WalkUploads(ctx, func(id string, _ blob.Info) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatalf("WalkUploads: %v", err)
	}
	if len(ids) != 0 {
		t.Errorf("WalkUploads: got %q, want none", ids)
	}

	// A key is one file in a fan-out directory, not a directory of its own.
	enc := d.Encoded()
	if want := "sha256/" + enc[:2] + "/" + enc + "-"; !strings.HasPrefix(key, want) || strings.Count(key, "/") != 2 {
		t.Errorf("UploadCommit key: got %q, want %s<random>", key, want)
	}

	// Delete keeps the fan-out directories, even emptied.
	if err := os.Remove(filepath.Join(root, "blobs", filepath.Dir(filepath.FromSlash(key)), ".tmp-123")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	fanout := filepath.Join(root, "blobs", "sha256", enc[:2])
	if _, err := os.Stat(filepath.Join(root, "blobs", filepath.FromSlash(key))); !os.IsNotExist(err) {
		t.Errorf("blobs/%s after Delete: got %v, want gone", key, err)
	}
	if fi, err := os.Stat(fanout); err != nil || !fi.IsDir() {
		t.Errorf("fan-out directory after deleting its only object: got %v, want it kept", err)
	}

	// An object of the older form (a directory per blob, written before
	// keys were flat) is read and deleted, and its own directory pruned.
	old := putOldForm(t, root, d, "hello")
	oldPath := filepath.Join(root, "blobs", filepath.FromSlash(old))
	if got, err := blob.KeyDigest(old); err != nil || got != d {
		t.Errorf("KeyDigest(%q): got %q, %v, want %q", old, got, err, d)
	}
	rc, err := s.Open(ctx, old)
	if err != nil {
		t.Fatalf("Open(old form): %v", err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != "hello" {
		t.Errorf("reading the old form: got %q, %v", b, err)
	}
	if err := s.Delete(ctx, old); err != nil {
		t.Fatalf("Delete(old form): %v", err)
	}
	if _, err := os.Stat(filepath.Dir(oldPath)); !os.IsNotExist(err) {
		t.Errorf("the old form's own directory after Delete: got %v, want pruned", err)
	}
	if _, err := os.Stat(fanout); err != nil {
		t.Errorf("fan-out directory after deleting an old-form object: got %v, want it kept", err)
	}
	if _, err := os.Stat(filepath.Join(root, "blobs")); err != nil {
		t.Errorf("blobs/ after Delete: got %v, want it kept", err)
	}
}

// putOldForm writes content under a key of the form made before keys were
// flat, <alg>/<xx>/<hex>/<random> (a directory per blob), as a store of
// that time did, and returns the key.
func putOldForm(t *testing.T, root string, d digest.Digest, content string) string {
	t.Helper()
	enc := d.Encoded()
	key := string(d.Algorithm()) + "/" + enc[:2] + "/" + enc + "/" + strings.Repeat("0f", 16)
	p := filepath.Join(root, "blobs", filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return key
}

// TestBoundedMemory: committing and reading a 64 MiB object allocates a
// small, fixed amount, not the object's size.
func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB upload skipped in -short mode")
	}
	ctx := context.Background()
	s := newStore(t).(*fs.Store)
	const size = 64 << 20
	const limit = 8 << 20
	zeros := io.LimitReader(zeroReader{}, size)
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	if n := allocated(func() {
		if _, err := s.UploadAppend(ctx, "mem", 0, zeros); err != nil {
			t.Fatalf("UploadAppend: %v", err)
		}
	}); n > limit {
		t.Errorf("UploadAppend of 64 MiB: allocated %d bytes, want at most %d", n, limit)
	}
	h := digest.SHA256.Digester()
	if _, err := io.Copy(h.Hash(), io.LimitReader(zeroReader{}, size)); err != nil {
		t.Fatal(err)
	}
	d := h.Digest()
	if n := allocated(func() {
		if _, _, err := s.UploadCommit(ctx, "mem", d); err != nil {
			t.Fatalf("UploadCommit: %v", err)
		}
	}); n > limit {
		t.Errorf("UploadCommit of 64 MiB: allocated %d bytes, want at most %d", n, limit)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestServeContent: the Reader from Open serves Range requests through
// http.ServeContent, as the API will.
func TestServeContent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	payload := []byte("0123456789abcdefghij")
	d := digest.FromBytes(payload)
	if _, err := s.UploadAppend(ctx, "serve", 0, bytes.NewReader(payload)); err != nil {
		t.Fatal(err)
	}
	key, _, err := s.UploadCommit(ctx, "serve", d)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rng    string
		status int
		body   string
	}{
		{"", http.StatusOK, string(payload)},
		{"bytes=0-3", http.StatusPartialContent, "0123"},
		{"bytes=10-", http.StatusPartialContent, "abcdefghij"},
		{"bytes=-2", http.StatusPartialContent, "ij"},
		{"bytes=100-", http.StatusRequestedRangeNotSatisfiable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.rng, func(t *testing.T) {
			r, err := s.Open(ctx, key)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer r.Close()
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.rng != "" {
				req.Header.Set("Range", tt.rng)
			}
			rec := httptest.NewRecorder()
			http.ServeContent(rec, req, "", time.Time{}, r)
			if rec.Code != tt.status {
				t.Errorf("status: got %d, want %d", rec.Code, tt.status)
			}
			if tt.status != http.StatusRequestedRangeNotSatisfiable && rec.Body.String() != tt.body {
				t.Errorf("body: got %q, want %q", rec.Body.String(), tt.body)
			}
		})
	}
}

// TestCommitIsYoung: a committed object's ModTime is its commit time, not
// the time of the upload's last append, which a rename would keep. Sweep
// deletes an object with no row once it is older than its cutoff; a PUT
// closing a session idle for longer than that must not commit bytes sweep
// takes for a crash leftover before their row commits.
func TestCommitIsYoung(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := fs.New(root)
	if err != nil {
		t.Fatalf("fs.New: %v", err)
	}
	if _, err := s.UploadAppend(ctx, "idle", 0, bytes.NewReader([]byte("appended hours ago"))); err != nil {
		t.Fatalf("UploadAppend: %v", err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(filepath.Join(root, "uploads", "idle"), old, old); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	key, _, err := s.UploadCommit(ctx, "idle", digest.FromString("appended hours ago"))
	if err != nil {
		t.Fatalf("UploadCommit: %v", err)
	}
	info, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	var walked time.Time
	if err := s.Walk(ctx, func(i blob.Info) error { walked = i.ModTime; return nil }); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	// Allow for a filesystem's coarse timestamps.
	for name, got := range map[string]time.Time{"Stat": info.ModTime, "Walk": walked} {
		if got.Before(before.Add(-time.Second)) {
			t.Errorf("%s: got ModTime %s, want the commit time (at least %s)", name, got, before)
		}
	}
}

// TestDeleteBatch: a batch large enough to run on several threads deletes
// every object it names, reports none missing as an error (deleting twice
// is harmless), leaves the objects it does not name, and prunes the
// directories it empties below the fan-out levels.
func TestDeleteBatch(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for i := range 300 {
		id := "up-" + strconv.Itoa(i)
		content := "object " + strconv.Itoa(i)
		if _, err := s.UploadAppend(ctx, id, 0, bytes.NewReader([]byte(content))); err != nil {
			t.Fatal(err)
		}
		key, _, err := s.UploadCommit(ctx, id, digest.FromString(content))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	// Objects of the older form, a directory per blob: their directories
	// are pruned, the fan-out directories are not.
	var oldForm []string
	for i := range 50 {
		oldForm = append(oldForm, putOldForm(t, root, digest.FromString("old "+strconv.Itoa(i)), "old"))
	}
	doomed, kept := append(keys[:250:250], oldForm...), keys[250:]
	batch := append(slices.Clone(doomed), doomed[0]) // named twice
	for i, err := range blob.DeleteMany(ctx, s, batch) {
		if err != nil {
			t.Errorf("deleting %s: %v", batch[i], err)
		}
	}
	var left []string
	if err := s.Walk(ctx, func(i blob.Info) error { left = append(left, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(left)
	slices.Sort(kept)
	if !slices.Equal(left, kept) {
		t.Fatalf("after the batch: %d objects left, want the %d not named", len(left), len(kept))
	}
	for _, k := range doomed {
		dir := filepath.Join(root, "blobs", filepath.Dir(filepath.FromSlash(k)))
		if slices.Contains(oldForm, k) {
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("the directory of %s: got %v, want pruned", k, err)
			}
			dir = filepath.Dir(dir)
		}
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("the fan-out directory of %s: got %v, want it kept", k, err)
		}
	}
}
