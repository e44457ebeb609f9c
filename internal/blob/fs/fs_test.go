package fs_test

import (
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/blob/blobtest"
	"github.com/berth/berth/internal/blob/fs"
)

func newStore(tb testing.TB) blob.Store {
	s, err := fs.New(tb.TempDir())
	if err != nil {
		tb.Fatalf("fs.New: %v", err)
	}
	return s
}

func TestStore(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t) })
}

func BenchmarkStore(b *testing.B) { blobtest.Benchmark(b, newStore) }

// TestPingRemovedRoot: Ping fails once the root is gone, or a directory
// under it is replaced by a file.
func TestPingRemovedRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "storage")
	s, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(root, "uploads")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "uploads"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Ping with uploads a file: got %v, want not a directory", err)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("Ping of a removed root: got %v, want fs.ErrNotExist", err)
	}
}
