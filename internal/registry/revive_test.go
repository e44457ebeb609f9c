package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// A HEAD that revives a blob while the collector decides its upload marker
// keeps the link: deciding the marker records the link's review, and the
// read postpones it once the collector has committed (docs/design/gc.md,
// "A read that revives": the read postpones the reviews in the order the
// collector records them from one another). Found by the torture run
// (seed 22, PostgreSQL + S3): the read postponed the link's review before
// it existed, then waited for the marker's, which the collector was
// deciding; it answered 200 and the link was collected 90 ms later.
func TestReviveFollowsTheMarkersDecision(t *testing.T) {
	registryenv.ForEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		ctx := context.Background()
		grace := review.DefaultGrace
		d := e.PushBlob("ns/app", []byte("a layer pushed and not yet referenced"))
		var repoID int64
		if err := e.Store.View(ctx, func(tx meta.Tx) error {
			r, err := tx.Repository(ctx, "ns/app", meta.LockNone)
			repoID = r.ID
			return err
		}); err != nil {
			t.Fatal(err)
		}
		object := review.RepoDigestObject(repoID, d)
		// The marker's review falls due within the grace: a read revives.
		e.Clock.Add(grace / 2)
		now := e.Clock.Now()

		held, release := make(chan struct{}), make(chan struct{})
		decided := make(chan error, 1)
		go func() {
			decided <- e.Store.Update(ctx, func(tx meta.Tx) error {
				// The collector: claim the marker's review (locked), and,
				// once the read waits, decide it as collect.go does —
				// delete the marker, record the link's review due now.
				claimed, err := tx.ClaimDue(ctx, review.KindUploadedBlob, now.Add(grace), "", 10)
				if err != nil || len(claimed) != 1 {
					t.Errorf("claiming the marker's review: %d claimed, %v", len(claimed), err)
				}
				close(held)
				<-release
				if err := tx.DeleteUploadedBlob(ctx, repoID, d); err != nil {
					return err
				}
				if err := tx.DeleteReview(ctx, review.KindUploadedBlob, object); err != nil {
					return err
				}
				return tx.AddReview(ctx, meta.Review{Kind: review.KindLink, Object: object, ReviewAfter: now,
					Cause: review.CauseUploadProtectionExpired, Reason: "upload protection expired"})
			})
		}()
		<-held
		read := make(chan error, 1)
		go func() {
			_, err := e.Registry.StatBlob(ctx, "ns/app", d.String())
			read <- err
		}()
		time.Sleep(300 * time.Millisecond) // the read reaches the marker's review and waits
		close(release)
		if err := <-decided; err != nil {
			t.Fatalf("deciding the marker: %v", err)
		}
		if err := <-read; err != nil {
			t.Fatalf("HEAD of the blob: %v, want it found", err)
		}
		var after time.Time
		var pending bool
		if err := e.Store.View(ctx, func(tx meta.Tx) error {
			var err error
			after, pending, err = tx.PendingReview(ctx, review.KindLink, object)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if !pending || after.Before(now.Add(grace)) {
			t.Errorf("the link's review after the HEAD: pending %v, due %v; want it postponed past %v (the read answered 200, so its client keeps a full grace)",
				pending, after, now.Add(grace))
		}
	})
}
