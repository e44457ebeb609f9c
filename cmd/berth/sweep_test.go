package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob/fs"
	"github.com/berth/berth/internal/gc"
)

func TestSweepRefusesShortSettle(t *testing.T) {
	_, err := run(t, nil, "sweep", "--settle", "0", "--data", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "--settle 0s is too short") {
		t.Fatalf("sweep --settle 0: got %v, want a refusal", err)
	}
}

// TestSweepWaitsThenDeletes: a leftover with no row is a candidate; sweep
// waits --settle before it deletes it, and says so in its summary.
func TestSweepWaitsThenDeletes(t *testing.T) {
	data := t.TempDir()
	if _, err := run(t, nil, "migrate", "--data", data, "--log-level", "error"); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	store, err := fs.New(filepath.Join(data, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := store.UploadAppend(ctx, "crashed", 0, strings.NewReader("leftover")); err != nil {
		t.Fatal(err)
	}
	key, _, err := store.UploadCommit(ctx, "crashed", digest.FromString("leftover"))
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(filepath.Join(data, "storage", "blobs", filepath.FromSlash(key)), old, old); err != nil {
		t.Fatal(err)
	}
	args := []string{"sweep", "--data", data, "--log-level", "error", "--settle", "1s"}
	out, err := run(t, nil, append(args, "--dry-run")...)
	if err != nil || !strings.Contains(out, key) || !strings.Contains(out, "1s (for upload commits in flight)") {
		t.Fatalf("sweep --dry-run: %v\n%s", err, out)
	}
	start := time.Now()
	out, err = run(t, nil, append(args, "--json")...)
	if err != nil {
		t.Fatalf("sweep: %v\n%s", err, out)
	}
	var s gc.SweepSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("sweep --json: %v\n%s", err, out)
	}
	if s.Candidates != 1 || s.Leaked != 1 || s.Spared != 0 || s.Settle != time.Second || time.Since(start) < time.Second {
		t.Errorf("sweep: got %+v after %s, want 1 candidate deleted after waiting 1s", s, time.Since(start))
	}
	if _, err := store.Stat(ctx, key); err == nil {
		t.Errorf("leftover %s still stored after sweep", key)
	}
}
