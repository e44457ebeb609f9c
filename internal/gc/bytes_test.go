package gc_test

// Bytes after rows with batch deletes (gc.md "Bytes after rows"): the
// collector deletes the bytes of a pass's tombstones in batches
// (blob.DeleteMany; one DeleteObjects request per batch on S3) and clears
// exactly the tombstones whose delete succeeded.

import (
	"fmt"
	"slices"
	"testing"

	"github.com/berth/berth/internal/gc"
)

// TestBatchDeleteClearsOnlySucceededTombstones collects many blobs at once
// while the byte store refuses the deletes of some of their keys: the
// others go in batches and lose their tombstones, the refused ones keep
// theirs (and their bytes), and a later run, with the store healed,
// deletes them.
func TestBatchDeleteClearsOnlySucceededTombstones(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const n = 12
		for i := range n {
			h.pushBlob("ns/many", fmt.Appendf(nil, "blob %d of a batch", i))
		}
		h.pushImage("ns/many", "keep", randomImage(t, 1))
		garbage := h.strings(`SELECT storage_key FROM blob WHERE digest NOT IN (SELECT blob_digest FROM manifest_blob) ORDER BY storage_key`)
		if len(garbage) != n {
			t.Fatalf("%d unreferenced blobs, want %d", len(garbage), n)
		}
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
