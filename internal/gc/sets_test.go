package gc_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// reviewCounter is a meta.Store that counts the reviews its transactions
// record, by kind, so that a test can see which follow-ups a collection
// wrote as rows and which it decided in memory.
type reviewCounter struct {
	meta.Store
	mu      sync.Mutex
	written map[review.Kind]int
}

func (s *reviewCounter) Update(ctx context.Context, fn func(tx meta.Tx) error) error {
	return s.Store.Update(ctx, func(tx meta.Tx) error { return fn(&countingTx{Tx: tx, s: s}) })
}

func (s *reviewCounter) add(kind review.Kind) {
	s.mu.Lock()
	s.written[kind]++
	s.mu.Unlock()
}

type countingTx struct {
	meta.Tx
	s *reviewCounter
}

func (t *countingTx) ScheduleReviews(ctx context.Context, rs []meta.Review) error {
	for _, r := range rs {
		t.s.add(r.Kind)
	}
	return t.Tx.ScheduleReviews(ctx, rs)
}

func (t *countingTx) AddReview(ctx context.Context, r meta.Review) error {
	t.s.add(r.Kind)
	return t.Tx.AddReview(ctx, r)
}

func (t *countingTx) ScheduleReview(ctx context.Context, r meta.Review) (time.Time, error) {
	t.s.add(r.Kind)
	return t.Tx.ScheduleReview(ctx, r)
}

// A cascade decided in the same transaction writes no review row: a tag
// row's deletion decides its manifest, the manifest's deletion records its
// links' reviews a grace later (the one follow-up really put off), and the
// links' deletion decides their blobs — no manifest or blob review is ever
// written, and every object goes.
func TestCascadeWritesNoFollowUpRows(t *testing.T) {
	if splitForced() {
		t.Skip("BERTH_TEST_GC_SPLIT=1: every transaction records its follow-ups as rows")
	}
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.pushImage("ns/app", "v1", randomImage(t, 3))
		h.deleteRef(h.tag("ns/app", "v1"))
		h.advance(retention + time.Minute)
		counter := &reviewCounter{Store: h.store, written: map[review.Kind]int{}}
		c := gc.New(counter, h.blobs, h.opts)
		s, err := c.RunOnce(h.ctx, gc.RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s.Deleted[review.KindTag] != 1 || s.Deleted[review.KindManifest] != 1 {
			t.Fatalf("first run deleted %v, want the tag row and the manifest", s.Deleted)
		}
		if got := counter.written; got[review.KindManifest] != 0 || got[review.KindBlob] != 0 || got[review.KindLink] != 4 {
			t.Fatalf("first run wrote reviews %v, want only the 4 links' (a grace later)", got)
		}
		h.advance(grace + time.Minute)
		counter.written = map[review.Kind]int{}
		if s, err = c.RunOnce(h.ctx, gc.RunOptions{}); err != nil {
			t.Fatal(err)
		}
		if s.Deleted[review.KindLink] != 4 || s.Deleted[review.KindBlob] != 4 {
			t.Fatalf("second run deleted %v, want 4 links and 4 blobs", s.Deleted)
		}
		if len(counter.written) != 0 {
			t.Fatalf("second run wrote reviews %v, want none", counter.written)
		}
		h.fixedPoint()
	})
}

// A collector whose transactions decide one stage each (as under pushes)
// decides what whole cascades would: the same deletions, tag ends and bytes
// as a dry run of whole cascades at the same time, with what each stage
// freed recorded as review rows instead of carried — and it reaches the
// same fixed point.
func TestStageSplitTransactions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		signed := h.mixedGarbage()
		h.deleteRef(h.tag("ns/signed", "v1"))
		h.advance(pastEverything)

		whole, err := h.gc.RunOnce(h.ctx, gc.RunOptions{DryRun: true})
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
		opts := h.opts
		gc.SplitStages(&opts)
		counter := &reviewCounter{Store: h.store, written: map[review.Kind]int{}}
		h.gc = gc.New(counter, h.blobs, opts)
		split := h.collect()
		if got, want := deletionKeys(split.Deletions), deletionKeys(whole.Deletions); !slices.Equal(got, want) {
			t.Errorf("split run deleted\n%v\nwhole cascades would delete\n%v", got, want)
		}
		if got, want := endKeys(split.Ends), endKeys(whole.Ends); !slices.Equal(got, want) {
			t.Errorf("split run ended\n%v\nwhole cascades would end\n%v", got, want)
		}
		if split.BytesFreed != whole.BytesFreed || split.Expired != whole.Expired {
			t.Errorf("split run freed %d bytes, expired %d; whole cascades %d, %d", split.BytesFreed, split.Expired, whole.BytesFreed, whole.Expired)
		}
		if split.Deleted[review.KindManifest] == 0 || split.Deleted[review.KindBlob] == 0 {
			t.Fatalf("split run deleted %v, want manifests and blobs", split.Deleted)
		}
		// Every manifest a tag stage freed, every blob a link stage
		// unlinked, went through a review row.
		if got := counter.written; got[review.KindManifest] == 0 || got[review.KindBlob] == 0 || got[review.KindLabel] == 0 {
			t.Errorf("split run wrote reviews %v, want manifest, blob and label follow-ups as rows", got)
		}
		// The subject's attachments go once their tags' window has passed,
		// by the same split transactions.
		h.fixedPoint()
		h.assertGone("ns/signed", append([]v1.Hash{signed.subject}, signed.manifests...))
		h.assertPullable(h.tag("ns/keep", "v1"))
	})
}
