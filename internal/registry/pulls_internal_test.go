package registry

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/berth/berth/internal/meta"
)

// stalledStore is a store whose write transactions wait until release is
// closed, and then write nothing: a database that stalls.
type stalledStore struct {
	meta.Store
	release chan struct{}
	updates atomic.Int32
}

func (s *stalledStore) Update(ctx context.Context, _ func(meta.Tx) error) error {
	s.updates.Add(1)
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestPullQueueFull: while the database stalls, pulls are noted without
// waiting for it, one pending write per tag; past the limit they are
// dropped and counted. What is pending is written once it answers.
func TestPullQueueFull(t *testing.T) {
	store := &stalledStore{release: make(chan struct{})}
	p := newPullRecorder(store, time.Minute, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	p.limit = 2
	now := time.Now()
	p.note(1, now)
	for store.updates.Load() == 0 { // the recorder took tag 1 and stalls writing it
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, id := range []int64{2, 3, 2, 4, 5, 3} {
			p.note(id, now)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("noting pulls waited for the stalled database")
	}
	if got := testutil.ToFloat64(p.dropped.WithLabelValues(pullDropFull)); got != 2 {
		t.Errorf("pulls dropped with 2 tags pending: got %v, want 2 (tags 4 and 5; 2 and 3 again are pending already)", got)
	}
	close(store.release)
	if err := p.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := store.updates.Load(); got != 2 {
		t.Errorf("write transactions: got %d, want 2 (tag 1, then tags 2 and 3)", got)
	}
	if got := len(p.pending); got != 0 {
		t.Errorf("pending after close: got %d, want 0", got)
	}
}
