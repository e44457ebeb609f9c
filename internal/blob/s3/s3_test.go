package s3_test

import (
	"context"
	"testing"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/blob/blobtest"
	"github.com/berth/berth/internal/blob/s3"
	"github.com/berth/berth/internal/blob/s3/s3test"
)

// testPartSize is S3's minimum, so blobtest's large and chunked cases span
// several parts.
const testPartSize = s3.MinPartSize

func newStore(tb testing.TB, cfg s3.Config) *s3.Store {
	tb.Helper()
	if cfg.PartSize == 0 {
		cfg.PartSize = testPartSize
	}
	s, err := s3.New(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("s3.New: %v", err)
	}
	return s
}

func TestStore(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t, s3test.New(t)) })
}

func BenchmarkStore(b *testing.B) {
	blobtest.Benchmark(b, func(tb testing.TB) blob.Store {
		cfg := s3test.New(tb)
		cfg.PartSize = s3.DefaultPartSize
		return newStore(tb, cfg)
	})
}
