package gc

import (
	"testing"
	"time"

	"github.com/berth/berth/internal/review"
)

// TestActivityDeletedAllocatesNothing: recording a transaction's deletions
// writes ring slots allocated when the Collector was made, whatever the
// ring has seen.
func TestActivityDeletedAllocatesNothing(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := newActivity(func() time.Time { return now })
	ds := []Deletion{
		{Kind: review.KindManifest, Repository: "ns/app", Digest: "sha256:0123", Cause: review.CauseTagCollected, Reason: "tag v1 collected"},
		{Kind: review.KindBlob, Digest: "sha256:4567", Size: 42, Cause: review.CauseUnlinked, Reason: "no repository links it"},
	}
	if n := testing.AllocsPerRun(ActivityDeletions, func() {
		now = now.Add(time.Second)
		a.deleted(now, ds)
	}); n != 0 {
		t.Errorf("recording deletions allocated %v times per transaction, want 0", n)
	}
	if got := a.snapshot().Totals.ObjectsDeleted; got != int64(len(ds)*(ActivityDeletions+1)) {
		t.Errorf("%d deletions counted, want %d", got, len(ds)*(ActivityDeletions+1))
	}
}
