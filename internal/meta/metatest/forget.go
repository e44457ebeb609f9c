package metatest

import (
	"context"
	"testing"
	"time"

	"github.com/berth/berth/internal/meta"
)

// testForgetTags: ForgetTags deletes the ended rows of one tag, oldest end
// first, those that ended before the cutoff, at most limit; never the live
// row, nor the rows of another tag or repository.
func testForgetTags(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r, other := repo(t, s, "ns/app"), repo(t, s, "ns/other")
	// ci points at m0, m1, m2, m3 in turn: the first three rows end at
	// t0+1m, +2m, +3m; m3's is live. Another tag and another repository
	// have ended rows of the same name or manifest.
	update(t, s, func(tx meta.Tx) error {
		for i := range 4 {
			if _, err := tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: "ci", Manifest: dg("m" + string(rune('0'+i))), Start: t0.Add(time.Duration(i) * time.Minute)}); err != nil {
				return err
			}
		}
		for _, rp := range []meta.Repository{r, other} {
			name := "other"
			if rp.ID == other.ID {
				name = "ci"
			}
			if _, err := tx.PutTag(ctx, meta.Tag{RepoID: rp.ID, Name: name, Manifest: dg("m0"), Start: t0}); err != nil {
				return err
			}
			if _, err := tx.PutTag(ctx, meta.Tag{RepoID: rp.ID, Name: name, Manifest: dg("m9"), Start: t0.Add(time.Minute)}); err != nil {
				return err
			}
		}
		return nil
	})
	forget := func(before time.Time, limit int) []meta.Tag {
		t.Helper()
		var out []meta.Tag
		update(t, s, func(tx meta.Tx) (err error) {
			out, err = tx.ForgetTags(ctx, r.ID, "ci", before, limit)
			return err
		})
		return out
	}
	// Before t0+2m: only m0's row (it ended at t0+1m; m1's at t0+2m is
	// not before).
	if got := forget(t0.Add(2*time.Minute), 10); len(got) != 1 || got[0].Manifest != dg("m0") || got[0].End == nil {
		t.Fatalf("ForgetTags before t0+2m: got %+v, want m0's ended row", got)
	}
	// A limit of 1: the oldest end first.
	if got := forget(t0.Add(time.Hour), 1); len(got) != 1 || got[0].Manifest != dg("m1") {
		t.Fatalf("ForgetTags limit 1: got %+v, want m1's row", got)
	}
	if got := forget(t0.Add(time.Hour), 10); len(got) != 1 || got[0].Manifest != dg("m2") {
		t.Fatalf("ForgetTags: got %+v, want m2's row", got)
	}
	if got := forget(t0.Add(time.Hour), 10); len(got) != 0 {
		t.Fatalf("ForgetTags with only the live row left: got %+v, want none", got)
	}
	view(t, s, func(tx meta.Tx) error {
		hist, err := tx.TagHistory(ctx, r.ID, "ci", 10)
		if err != nil || len(hist) != 1 || hist[0].End != nil || hist[0].Manifest != dg("m3") {
			t.Errorf("history of ci after forgetting: got %+v, %v; want the live row on m3", hist, err)
		}
		for _, c := range []struct {
			repo int64
			name string
		}{{r.ID, "other"}, {other.ID, "ci"}} {
			hist, err := tx.TagHistory(ctx, c.repo, c.name, 10)
			if err != nil || len(hist) != 2 {
				t.Errorf("history of %s in repository %d: got %d rows, %v; want both kept", c.name, c.repo, len(hist), err)
			}
		}
		return nil
	})
}
