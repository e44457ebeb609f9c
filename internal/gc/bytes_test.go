package gc_test

// Bytes after rows with batch deletes (gc.md "Bytes after rows"): the
// collector deletes the bytes of a pass's tombstones in batches
// (blob.DeleteMany; one DeleteObjects request per batch on S3) and clears
// exactly the tombstones whose delete succeeded.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// pushGarbageBlobs pushes n blobs no manifest uses to repo, and an image
// tagged "keep", and returns the storage keys of the n blobs, in order.
func (h *harness) pushGarbageBlobs(repo string, n int) []string {
	h.t.Helper()
	for i := range n {
		h.pushBlob(repo, fmt.Appendf(nil, "blob %d of %d in %s", i, n, repo))
	}
	h.pushImage(repo, "keep", randomImage(h.t, 1))
	garbage := h.strings(`SELECT storage_key FROM blob WHERE digest NOT IN (SELECT blob_digest FROM manifest_blob) ORDER BY storage_key`)
	if len(garbage) != n {
		h.t.Fatalf("%d unreferenced blobs, want %d", len(garbage), n)
	}
	return garbage
}

// TestBatchDeleteClearsOnlySucceededTombstones collects many blobs at once
// while the byte store refuses the deletes of some of their keys: the
// others go in batches and lose their tombstones, the refused ones keep
// theirs (and their bytes), and a later run, with the store healed,
// deletes them.
func TestBatchDeleteClearsOnlySucceededTombstones(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		garbage := h.pushGarbageBlobs("ns/many", 12)
		refused := garbage[:3]
		h.blobs.failOn(refused...)
		batches := h.blobs.batches.Load()
		h.settle()
		if got := h.blobs.batches.Load() - batches; got == 0 {
			t.Fatal("the collector never deleted through DeleteBatch")
		}
		tombs := h.strings(`SELECT storage_key FROM tombstone ORDER BY storage_key`)
		if !slices.Equal(tombs, refused) {
			t.Fatalf("tombstones %v, want exactly the refused keys %v", tombs, refused)
		}
		stored := h.storedKeys()
		for _, k := range garbage {
			if want := slices.Contains(refused, k); stored[k] != want {
				t.Errorf("bytes %s stored %v, want %v", k, stored[k], want)
			}
		}
		h.blobs.failOn()
		if _, err := h.gc.RunOnce(h.ctx, gc.RunOptions{}); err != nil {
			t.Fatal(err)
		}
		if n := h.count(`SELECT COUNT(*) FROM tombstone`); n != 0 {
			t.Fatalf("%d tombstones after the healed run", n)
		}
		h.assertPullable(h.tag("ns/many", "keep"))
		h.fixedPoint()
	})
}

// TestStoppingCollectorLeavesTombstonesQuietly cancels a run right after
// a transaction that deleted a blob row committed: the batch's byte deletes
// are not attempted under the cancelled context (a warning per key, up to
// a thousand, was logged before), one line says how many tombstones are
// left, those tombstones and their bytes stay, and the next run deletes
// them.
func TestStoppingCollectorLeavesTombstonesQuietly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		for i := range 4 {
			h.pushBlob("ns/stop", fmt.Appendf(nil, "blob %d of a stopped run", i))
		}
		h.pushImage("ns/stop", "keep", randomImage(t, 1))
		h.advance(pastEverything)
		ctx, cancel := context.WithCancel(h.ctx)
		defer cancel()
		logs := &recorder{}
		opts := h.opts
		opts.Logger = slog.New(logs)
		opts.Hooks = []func(gc.Event){func(e gc.Event) {
			if e.Kind == event.BlobDeleted {
				cancel()
			}
		}}
		if _, err := gc.New(h.store, h.blobs, opts).RunOnce(ctx, gc.RunOptions{}); err == nil {
			t.Fatal("cancelled run reported success")
		}
		tombs := h.strings(`SELECT storage_key FROM tombstone ORDER BY storage_key`)
		if len(tombs) == 0 {
			t.Fatal("no tombstone left by the stopped run")
		}
		if warns := logs.at(slog.LevelWarn); len(warns) != 0 {
			t.Errorf("got warnings %q, want none", warns)
		}
		left := logs.matching("gc stopping: left tombstones for the next run")
		if len(left) != 1 || left[0] != fmt.Sprint(len(tombs)) {
			t.Errorf("got 'left tombstones' lines with counts %q, want one with %d", left, len(tombs))
		}
		stored := h.storedKeys()
		for _, k := range tombs {
			if !stored[k] {
				t.Errorf("bytes %s of a tombstone left for the next run are gone", k)
			}
		}
		h.settle()
		h.assertPullable(h.tag("ns/stop", "keep"))
		h.fixedPoint()
	})
}

// recorder is a slog handler that keeps every record.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// at returns the messages logged at level or above.
func (r *recorder) at(level slog.Level) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.recs {
		if rec.Level >= level {
			out = append(out, rec.Message)
		}
	}
	return out
}

// matching returns the "count" attribute of every record logged with msg.
func (r *recorder) matching(msg string) []string { return r.attr(msg, "count") }

// attr returns the key attribute of every record logged with msg.
func (r *recorder) attr(msg, key string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.recs {
		if rec.Message != msg {
			continue
		}
		v := ""
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v = a.Value.String()
			}
			return true
		})
		out = append(out, v)
	}
	return out
}

// TestBytesGoOnWhileTombstonesWait: the byte deleter deletes a run's next
// batch of bytes while the transaction clearing the previous batch's
// tombstones waits for the writer (gc.md, "Bytes while deciding"). On
// SQLite a push holding the writer from the first batch's delete until the
// second begins makes the clearing wait; a deleter that cleared each
// batch's tombstones before deleting the next would wait for the push,
// and the push for it. The run then ends with every tombstone cleared.
func TestBytesGoOnWhileTombstonesWait(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		if h.store.Dialect() != "sqlite" {
			t.Skip("PostgreSQL's writers do not wait for one another's transactions")
		}
		const n = 6
		for i := range n {
			h.pushBlob("ns/pipe", fmt.Appendf(nil, "blob %d of a pipelined run", i))
		}
		h.pushImage("ns/pipe", "keep", randomImage(t, 1))
		h.advance(pastEverything)

		second := make(chan struct{})
		pushed := make(chan error, 1)
		h.blobs.onBatch = func(n int64) {
			switch n {
			case 1:
				inside := make(chan struct{})
				go func() {
					// A push: a foreground transaction, which background
					// ones (the clearing among them) wait for.
					pushed <- h.store.Update(context.Background(), func(meta.Tx) error {
						close(inside)
						select {
						case <-second:
							return nil
						case <-time.After(10 * time.Second):
							return errors.New("the second batch of bytes waited for the first batch's tombstones")
						}
					})
				}()
				<-inside
			case 2:
				close(second)
			}
		}
		opts := h.opts
		gc.SetDeleteBatch(&opts, 2)
		s, err := gc.New(h.store, h.blobs, opts).RunOnce(h.ctx, gc.RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-pushed; err != nil {
			t.Fatal(err)
		}
		if got := s.Deleted[review.KindBlob]; got != n {
			t.Errorf("deleted %d blobs, want %d", got, n)
		}
		if got := h.blobs.batches.Load(); got < 3 {
			t.Errorf("%d byte batches, want at least 3 of 2 keys", got)
		}
		if left := h.count(`SELECT COUNT(*) FROM tombstone`); left != 0 {
			t.Errorf("%d tombstones left after the run", left)
		}
		h.blobs.onBatch = nil
		h.assertPullable(h.tag("ns/pipe", "keep"))
		h.fixedPoint()
	})
}

// unsyncable is a store whose SyncCommitted fails while fail is set: a
// disk that refuses to flush.
type unsyncable struct {
	meta.Store
	fail  atomic.Bool
	calls atomic.Int32
}

func (u *unsyncable) SyncCommitted(ctx context.Context) error {
	u.calls.Add(1)
	if u.fail.Load() {
		return errors.New("fsync: input/output error")
	}
	return u.Store.SyncCommitted(ctx)
}

// TestBytesWaitForDurableCommits: a collector deletes bytes only after
// the commits that wrote their tombstones are durable (gc.md, "The
// collector's commits wait for no fsync; its bytes wait for one"). While
// the store cannot make them so, the run deletes the rows, keeps every
// tombstone and every byte, says why, and fails; once it can, the next
// run deletes the bytes and clears the tombstones.
func TestBytesWaitForDurableCommits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		garbage := h.pushGarbageBlobs("ns/durable", 5)
		h.advance(pastEverything)
		store := &unsyncable{Store: h.store}
		store.fail.Store(true)
		logs := &recorder{}
		opts := h.opts
		opts.Logger = slog.New(logs)
		c := gc.New(store, h.blobs, opts)
		batches := h.blobs.batches.Load()
		if _, err := c.RunOnce(h.ctx, gc.RunOptions{}); err == nil {
			t.Fatal("a run whose commits could not be synced reported success")
		}
		if store.calls.Load() == 0 {
			t.Fatal("the run never asked for its commits to be made durable")
		}
		if got := h.blobs.batches.Load() - batches; got != 0 {
			t.Errorf("%d byte batches deleted before the commits were durable", got)
		}
		tombs := h.strings(`SELECT storage_key FROM tombstone ORDER BY storage_key`)
		if !slices.Equal(tombs, garbage) {
			t.Fatalf("tombstones %v, want every collected blob's %v", tombs, garbage)
		}
		stored := h.storedKeys()
		for _, k := range garbage {
			if !stored[k] {
				t.Errorf("bytes %s deleted though the commit of their tombstone was not durable", k)
			}
		}
		if warns := logs.at(slog.LevelWarn); len(warns) == 0 || !strings.Contains(warns[0], "syncing its commits failed") {
			t.Errorf("warnings %q, want one saying the sync failed", warns)
		}
		store.fail.Store(false)
		if _, err := c.RunOnce(h.ctx, gc.RunOptions{}); err != nil {
			t.Fatal(err)
		}
		if n := h.count(`SELECT COUNT(*) FROM tombstone`); n != 0 {
			t.Fatalf("%d tombstones after the run that could sync", n)
		}
		stored = h.storedKeys()
		for _, k := range garbage {
			if stored[k] {
				t.Errorf("bytes %s still stored after the run that could sync", k)
			}
		}
		h.assertPullable(h.tag("ns/durable", "keep"))
		h.fixedPoint()
	})
}
