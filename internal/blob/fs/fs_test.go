package fs_test

import (
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
