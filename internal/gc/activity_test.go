package gc_test

// The activity record (activity.go): what this process's collector did
// lately, for the web interface's collector page, checked against what its
// runs report.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/review"
)

// timedRun is a run's summary and when it ran.
type timedRun struct {
	gc.Summary
	at time.Time
}

// settleRuns advances past every window and runs c, again and again, until
// a run decides nothing (a link's grace starts when its manifest goes),
// keeping the deletions.
func (h *harness) settleRuns(c *gc.Collector) []timedRun {
	h.t.Helper()
	var runs []timedRun
	for {
		if len(runs) == 6 {
			h.t.Fatalf("collector did not settle after %d runs", len(runs))
		}
		h.advance(pastEverything)
		s, err := c.RunOnce(h.ctx, gc.RunOptions{KeepDeletions: true})
		if err != nil {
			h.t.Fatalf("RunOnce: %v", err)
		}
		runs = append(runs, timedRun{s, h.clock.Now()})
		if s.Reviews == 0 && s.Expired == 0 {
			return runs
		}
	}
}

// recorded is the runs' deletions as the record lists them, newest first,
// keeping the last n.
func recorded(runs []timedRun, n int) []gc.DeletionRecord {
	var out []gc.DeletionRecord
	for _, r := range runs {
		for _, d := range r.Deletions {
			out = append(out, gc.DeletionRecord{At: r.at, Event: gc.EventKind(d.Kind), Deletion: d})
		}
	}
	out = out[max(0, len(out)-n):]
	slices.Reverse(out)
	return out
}

// TestActivityRecordsDeletions collects an image whose tag was deleted: a
// dry run leaves no trace; the real runs' deletions are in the record,
// newest first, each with its event, the cause of its review and its
// reason; the runs that did something are listed, the idle one counted;
// the totals add up.
func TestActivityRecordsDeletions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		layer := []byte("a layer the collector page sees freed")
		old := h.PushImage("ns/act", "old", layer)
		h.PushImage("ns/act", "keep", []byte("a layer that stays"))
		h.deleteRef(h.tag("ns/act", "old"))
		h.advance(pastEverything)

		dry, err := h.gc.RunOnce(h.ctx, gc.RunOptions{DryRun: true})
		if err != nil || len(dry.Deletions) == 0 {
			t.Fatalf("dry run: %v, %d deletions", err, len(dry.Deletions))
		}
		if a := h.gc.Activity(); len(a.Deletions) != 0 || len(a.Runs) != 0 || a.Totals != (gc.ActivityTotals{}) {
			t.Fatalf("after a dry run the record holds %+v, want nothing", a)
		}

		runs := h.settleRuns(h.gc)
		total := gc.Summary{Deleted: map[review.Kind]int{}}
		var busy []timedRun
		for _, r := range runs {
			total.Add(r.Summary)
			if r.Reviews > 0 {
				busy = append(busy, r)
			}
		}
		if len(busy) < 2 {
			t.Fatalf("%d runs decided something, want the tag's and the links' after their grace", len(busy))
		}
		a := h.gc.Activity()
		if diff := cmp.Diff(recorded(runs, len(total.Deletions)), a.Deletions); diff != "" {
			t.Fatalf("recorded deletions (-the runs' +recorded):\n%s", diff)
		}
		find := func(kind review.Kind, match func(gc.DeletionRecord) bool) gc.DeletionRecord {
			t.Helper()
			for _, d := range a.Deletions {
				if d.Kind == kind && match(d) {
					return d
				}
			}
			t.Fatalf("no %s deletion recorded in %+v", kind, a.Deletions)
			return gc.DeletionRecord{}
		}
		tag := find(review.KindTag, func(d gc.DeletionRecord) bool { return d.Tag == "old" })
		if tag.Event != event.TagCollected || tag.Cause != review.CauseTagEnded || tag.Repository != "ns/act" || tag.Digest != old.Digest ||
			!strings.Contains(tag.Reason, "time-machine window") {
			t.Errorf("tag deletion: got %+v, want tag.collected of ns/act:old, cause tag_ended, outside the window", tag)
		}
		m := find(review.KindManifest, func(d gc.DeletionRecord) bool { return d.Digest == old.Digest })
		if m.Event != event.ManifestDeleted || m.Cause != review.CauseTagCollected || m.Repository != "ns/act" {
			t.Errorf("manifest deletion: got %+v, want manifest.deleted in ns/act, cause tag_collected", m)
		}
		b := find(review.KindBlob, func(d gc.DeletionRecord) bool { return d.Digest == digest.FromBytes(layer) })
		if b.Event != event.BlobDeleted || b.Cause != review.CauseUnlinked || b.Size != int64(len(layer)) {
			t.Errorf("layer deletion: got %+v, want blob.deleted of %d bytes, cause unlinked", b, len(layer))
		}

		if len(a.Runs) != len(busy) {
			t.Fatalf("%d runs listed, want the %d that decided something of %d", len(a.Runs), len(busy), len(runs))
		}
		for i, r := range a.Runs {
			s := busy[len(busy)-1-i]
			if r.Reviews != s.Reviews || !cmp.Equal(r.Deleted, s.Deleted) || r.BytesFreed != s.BytesFreed || r.Errors != 0 ||
				!r.Start.Equal(s.at) || r.Duration <= 0 {
				t.Errorf("run %d: got %+v, want the run's %d reviews, %v deleted, %d bytes", i, r, s.Reviews, s.Deleted, s.BytesFreed)
			}
		}
		want := gc.ActivityTotals{Runs: int64(len(runs)), LastRun: runs[len(runs)-1].at, Reviews: int64(total.Reviews),
			ObjectsDeleted: int64(len(total.Deletions)), BytesFreed: total.BytesFreed}
		if diff := cmp.Diff(want, a.Totals); diff != "" {
			t.Errorf("totals (-want +got):\n%s", diff)
		}
		if len(a.Errors) != 0 {
			t.Errorf("errors recorded: %+v", a.Errors)
		}
		if !a.Since.Before(h.clock.Now()) {
			t.Errorf("since %v, want the collector's making, before %v", a.Since, h.clock.Now())
		}
	})
}

// TestActivityKeepsTheLastDeletions collects one deletion more than the
// record keeps (each blob pushed alone is an upload marker, a link and a
// blob: 201): it keeps the newest gc.ActivityDeletions, the last one
// having evicted the oldest, while the totals count them all.
func TestActivityKeepsTheLastDeletions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		for i := range gc.ActivityDeletions/3 + 1 {
			h.pushBlob("ns/many", []byte("blob "+strings.Repeat("x", i)))
		}
		runs := h.settleRuns(h.gc)
		total := gc.Summary{Deleted: map[review.Kind]int{}}
		for _, r := range runs {
			total.Add(r.Summary)
		}
		n := len(total.Deletions)
		if n <= gc.ActivityDeletions {
			t.Fatalf("%d deletions, want more than %d", n, gc.ActivityDeletions)
		}
		a := h.gc.Activity()
		if diff := cmp.Diff(recorded(runs, gc.ActivityDeletions), a.Deletions); diff != "" {
			t.Fatalf("recorded deletions (-the newest %d +recorded):\n%s", gc.ActivityDeletions, diff)
		}
		oldest := recorded(runs, n)[n-1].Deletion
		if slices.ContainsFunc(a.Deletions, func(d gc.DeletionRecord) bool { return d.Deletion == oldest }) {
			t.Errorf("the oldest deletion %+v was not evicted", oldest)
		}
		if a.Totals.ObjectsDeleted != int64(n) || a.Totals.BytesFreed != total.BytesFreed {
			t.Errorf("totals %+v, want %d objects, %d bytes", a.Totals, n, total.BytesFreed)
		}
	})
}

// TestActivityRecordsErrors records the collector's errors: bytes the
// storage backend refuses to delete (one error per refused batch, the
// tombstones retried and cleared once it heals), and a run whose database
// went away.
func TestActivityRecordsErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.PushImage("ns/err", "old", []byte("bytes the storage refuses to delete"))
		h.deleteRef(h.tag("ns/err", "old"))
		h.blobs.failDelete.Store(true)
		runs := h.settleRuns(h.gc)
		a := h.gc.Activity()
		if len(a.Errors) == 0 || a.Totals.Errors != int64(len(a.Errors)) {
			t.Fatalf("errors %+v, totals %+v: want the refused deletes", a.Errors, a.Totals)
		}
		for _, e := range a.Errors {
			if !strings.Contains(e.Message, errInjected.Error()) || !strings.Contains(e.Message, "tombstones are retried") ||
				e.At.Before(runs[0].at) || e.At.After(h.clock.Now()) {
				t.Errorf("error %+v: want the injected failure, during the runs", e)
			}
		}
		if a.Totals.BytesFreed == 0 {
			t.Error("the blob rows' bytes are not counted freed")
		}

		h.blobs.failDelete.Store(false)
		errs := a.Totals.Errors
		h.settleRuns(h.gc)
		if n := h.count(`SELECT COUNT(*) FROM tombstone`); n != 0 {
			t.Fatalf("%d tombstones after the storage healed", n)
		}
		if a := h.gc.Activity(); a.Totals.Errors != errs {
			t.Errorf("errors %+v after the storage healed, want no new one", a.Errors)
		}

		// A collector whose database closed under it.
		store, err := sqlstore.Open(h.ctx, h.DSN, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c := gc.New(store, h.blobs, h.opts)
		store.Close()
		if _, err := c.RunOnce(h.ctx, gc.RunOptions{}); err == nil {
			t.Fatal("RunOnce on a closed store succeeded")
		}
		a = c.Activity()
		if len(a.Runs) != 1 || a.Runs[0].Error == "" || a.Runs[0].Errors != 1 || len(a.Errors) != 1 ||
			!strings.HasPrefix(a.Errors[0].Message, "run failed: ") || a.Totals.Errors != 1 || a.Totals.Runs != 1 {
			t.Errorf("after a failed run: runs %+v, errors %+v, totals %+v; want the run and its error", a.Runs, a.Errors, a.Totals)
		}
	})
}

// TestActivityThroughput measures the deletions per second over the last
// five minutes on the injected clock: over the whole window for a
// collector made long ago, over the time since it was made for a new one,
// and zero once the deletions are older than the window. Each blob pushed
// alone is collected in one run (its marker, link and blob), at one time.
func TestActivityThroughput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		garbage := func(what string) {
			for i := range 5 {
				h.pushBlob("ns/rate", fmt.Appendf(nil, "%s: blob %d", what, i))
			}
			h.advance(pastEverything)
		}
		collect := func(c *gc.Collector) (objects, bytes int64) {
			t.Helper()
			s, err := c.RunOnce(h.ctx, gc.RunOptions{KeepDeletions: true})
			if err != nil || len(s.Deletions) == 0 || s.BytesFreed == 0 {
				t.Fatalf("RunOnce: %v, %d deletions, %d bytes", err, len(s.Deletions), s.BytesFreed)
			}
			return int64(len(s.Deletions)), s.BytesFreed
		}
		check := func(c *gc.Collector, what string, want gc.Throughput) {
			t.Helper()
			if got := c.Activity().Throughput; got != want {
				t.Errorf("%s: throughput %+v, want %+v", what, got, want)
			}
		}
		window := gc.ThroughputWindow.Seconds()

		garbage("first")
		objects, bytes := collect(h.gc)
		h.advance(2 * time.Minute)
		check(h.gc, "2 min after", gc.Throughput{Window: gc.ThroughputWindow, Objects: float64(objects) / window, Bytes: float64(bytes) / window})
		h.advance(4 * time.Minute)
		check(h.gc, "6 min after", gc.Throughput{Window: gc.ThroughputWindow})

		garbage("second")
		c := h.newCollector()
		objects, bytes = collect(c)
		h.advance(30 * time.Second)
		check(c, "a new collector, 30 s after", gc.Throughput{Window: 30 * time.Second, Objects: float64(objects) / 30, Bytes: float64(bytes) / 30})
		check(h.gc, "the other collector", gc.Throughput{Window: gc.ThroughputWindow})
	})
}

// TestActivityUnderConcurrentWorkers runs the collector's workers while the
// record is read (the race detector watches): the garbage is collected and
// recorded once, and idle runs are counted but not listed.
func TestActivityUnderConcurrentWorkers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		for i := range 20 {
			h.pushBlob("ns/busy", []byte("concurrent "+strings.Repeat("y", i)))
		}
		h.advance(pastEverything)
		h.opts.Workers, h.opts.Interval = 3, 10*time.Millisecond
		c := h.newCollector()
		ctx, cancel := context.WithCancel(h.ctx)
		defer cancel()
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := c.Run(ctx); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		const want = 3 * 20 // a marker, a link and a blob each
		deadline := time.Now().Add(30 * time.Second)
		var a gc.Activity
		for a = c.Activity(); a.Totals.ObjectsDeleted < want || a.Totals.Runs < 10; a = c.Activity() {
			if time.Now().After(deadline) {
				t.Fatalf("after 30 s: %+v", a.Totals)
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		wg.Wait()
		a = c.Activity()
		if a.Totals.ObjectsDeleted != want || len(a.Deletions) != want {
			t.Errorf("%d deleted, %d recorded; want %d", a.Totals.ObjectsDeleted, len(a.Deletions), want)
		}
		keys := make([]string, len(a.Deletions))
		for i, d := range a.Deletions {
			keys[i] = string(d.Kind) + " " + d.Repository + " " + d.Digest.String()
		}
		slices.Sort(keys)
		if len(slices.Compact(keys)) != want {
			t.Errorf("a deletion was recorded twice: %v", keys)
		}
		listed := 0
		for _, r := range a.Runs {
			if r.Reviews == 0 {
				t.Errorf("idle run listed: %+v", r)
			}
			listed++
		}
		if int64(listed) >= a.Totals.Runs || a.Totals.Errors != 0 {
			t.Errorf("%d runs listed of %d, errors %+v; want the idle ones counted only, no error (stopping is none)", listed, a.Totals.Runs, a.Errors)
		}
	})
}
