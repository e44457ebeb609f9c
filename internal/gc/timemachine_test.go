package gc_test

// The time machine's promise (docs/design/gc.md, "The time machine"): every
// lifetime that ended, however it ended, stays restorable with everything
// it reaches for its namespace's window. These tests cover the two ends
// that used to bypass it: a DELETE by digest and an expiry in the past.

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
)

// A tagged manifest deleted by digest answers 404 at once, but it, its
// blobs and its referrers stay stored for the window; restore brings it
// back complete; after the window everything goes.
func TestWithdrawnManifestRestorableForWindow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := ociImage(t, 2)
		d := h.pushImage("ns/app", "v1", img)
		h.retag("ns/app", "stable", d)
		sigs := h.pushReferrers("ns/app", descriptor(t, img))
		h.advance(2 * grace) // past every push's grace: only the time machine keeps it

		h.deleteRef(h.dig("ns/app", d))
		if st := h.manifestStatus("ns/app", d); st != http.StatusNotFound {
			t.Fatalf("GET after DELETE by digest: %d, want 404", st)
		}
		resp, body := h.do("DELETE", "/v2/ns/app/manifests/"+d.String(), nil, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("second DELETE: %d %s, want 404", resp.StatusCode, body)
		}
		hist, err := h.reg.TagHistory(h.ctx, "ns/app", "")
		if err != nil || len(hist.Lifetimes) != 2 {
			t.Fatalf("history: %+v, %v; want two lifetimes", hist, err)
		}
		for _, l := range hist.Lifetimes {
			if l.Live || !l.Restorable {
				t.Errorf("lifetime of %s after DELETE by digest: live %v restorable %v, want ended and restorable", l.Name, l.Live, l.Restorable)
			}
		}

		h.advance(retention - time.Hour)
		h.collect()
		for _, m := range append([]v1.Hash{d}, sigs...) {
			if !h.hasManifest("ns/app", m) {
				t.Fatalf("manifest %s collected inside the window", m)
			}
		}
		for _, b := range layerDigests(t, img) {
			if !h.hasBlob(b) {
				t.Fatalf("blob %s collected inside the window", b)
			}
		}
		l, err := h.reg.RestoreTag(h.ctx, "ns/app", "v1", registry.RestoreTarget{Digest: d.String()})
		if err != nil || !l.Live {
			t.Fatalf("restore after DELETE by digest: %+v, %v", l, err)
		}
		h.assertPullable(h.tag("ns/app", "v1")) // with the referrers
		h.assertPullable(h.dig("ns/app", d))

		// The other tag was not restored; once its window closes only v1
		// keeps the image.
		h.settle()
		h.assertPullable(h.tag("ns/app", "v1"))
		h.assertFixedPoint(nil)

		// Deleted by digest again and left alone: gone after the window.
		h.deleteRef(h.dig("ns/app", d))
		h.advance(retention + time.Minute)
		if _, err := h.reg.RestoreTag(h.ctx, "ns/app", "v1", registry.RestoreTarget{Digest: d.String()}); !errors.Is(err, registry.ErrDenied) {
			t.Fatalf("restore after the window: %v, want ErrDenied", err)
		}
		h.settle()
		h.assertGone("ns/app", append([]v1.Hash{d}, sigs...), layerDigests(t, img)...)
		h.assertFixedPoint(nil)
	})
}

// A manifest no tag ever pointed at has nothing to restore: deleted by
// digest, it is collected at the next run even inside its push's grace,
// and its blobs keep their own grace.
func TestWithdrawnUntaggedCollectedAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := ociImage(t, 1)
		d := h.pushImage("ns/app", "", img)
		h.deleteRef(h.dig("ns/app", d))
		h.collect()
		h.assertGone("ns/app", []v1.Hash{d})
		for _, b := range layerDigests(t, img) {
			if st := h.headBlob("ns/app", digestOf(b)); st != http.StatusOK {
				t.Fatalf("blob %s right after its manifest went: %d, want 200 for a grace", b, st)
			}
		}
		h.settle()
		h.assertGone("ns/app", nil, layerDigests(t, img)...)
		h.assertFixedPoint(nil)
	})
}

// A signature deleted by digest goes, though its subject lives: the
// subject does not undo the DELETE.
func TestWithdrawnReferrerNotKeptBySubject(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := ociImage(t, 1)
		h.pushImage("ns/app", "v1", img)
		sigs := h.pushReferrers("ns/app", descriptor(t, img))
		h.deleteRef(h.dig("ns/app", sigs[0]))
		resp, body := h.do("GET", "/v2/ns/app/referrers/"+mustDigest(t, img).String(), nil, nil)
		if resp.StatusCode != http.StatusOK || containsDigest(body, sigs[0]) || !containsDigest(body, sigs[1]) {
			t.Fatalf("referrers after deleting %s: %d %s", sigs[0], resp.StatusCode, body)
		}
		h.collect()
		h.assertGone("ns/app", sigs[:1])
		h.settle()
		h.assertPullable(h.tag("ns/app", "v1"))
		if !h.hasManifest("ns/app", sigs[1]) {
			t.Fatal("the other referrer was collected")
		}
		h.assertFixedPoint(nil)
	})
}

// A withdrawn index keeps its children; a child may then be deleted by
// digest too; restoring the index's tag brings the whole index back.
func TestWithdrawnIndexRestoresChildren(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		amd, arm := ociImage(t, 1), ociImage(t, 1)
		idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
			mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
			mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
		d := h.pushIndex("ns/multi", "v1", idx)
		ad := mustDigest(t, amd)

		// A stored index refuses the DELETE of its child.
		resp, body := h.do("DELETE", "/v2/ns/multi/manifests/"+ad.String(), nil, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("DELETE of a listed child: %d %s, want 403", resp.StatusCode, body)
		}
		h.deleteRef(h.dig("ns/multi", d))
		h.deleteRef(h.dig("ns/multi", ad)) // its parent is withdrawn: allowed
		if st := h.manifestStatus("ns/multi", ad); st != http.StatusNotFound {
			t.Fatalf("GET of the deleted child: %d, want 404", st)
		}
		// A new index cannot list a withdrawn child.
		other := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: amd})
		raw, err := other.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		if st, body := h.putManifest("ns/multi", "other", string(types.OCIImageIndex), raw); st != http.StatusNotFound {
			t.Fatalf("index listing a withdrawn child: %d %s, want 404", st, body)
		}
		h.advance(2 * grace)
		h.collect()
		for _, m := range []v1.Hash{d, ad, mustDigest(t, arm)} {
			if !h.hasManifest("ns/multi", m) {
				t.Fatalf("manifest %s collected while the index is restorable", m)
			}
		}
		if _, err := h.reg.RestoreTag(h.ctx, "ns/multi", "v1", registry.RestoreTarget{Digest: d.String()}); err != nil {
			t.Fatalf("restore: %v", err)
		}
		h.assertPullable(h.tag("ns/multi", "v1"))
		h.assertPullable(h.dig("ns/multi", ad))
		h.fixedPoint()
	})
}

// A re-PUT of the same bytes brings a manifest deleted by digest back.
func TestWithdrawnManifestRePushed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := ociImage(t, 1)
		d := h.pushImage("ns/app", "v1", img)
		h.deleteRef(h.dig("ns/app", d))
		h.pushImage("ns/app", "", img)
		h.assertPullable(h.dig("ns/app", d))
		h.advance(grace / 2)
		h.collect()
		h.assertPullable(h.dig("ns/app", d))
	})
}

// An expiry in the past is refused: a lifetime never ends before berth
// records its end. An expiry "in 0s" ends the tag now, and the time machine
// keeps it for the whole window from then.
func TestPastExpiryRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := ociImage(t, 1)
		d := h.pushImage("ns/app", "v1", img)
		past := h.clock.Now().Add(-time.Second)
		if _, err := h.reg.SetTagExpiry(h.ctx, "ns/app", "v1", registry.Expiry{At: &past}); !errors.Is(err, registry.ErrInvalidArgument) {
			t.Fatalf("expiry in the past: %v, want ErrInvalidArgument", err)
		}
		h.assertPullable(h.tag("ns/app", "v1"))
		zero := time.Duration(0)
		l, err := h.reg.SetTagExpiry(h.ctx, "ns/app", "v1", registry.Expiry{In: &zero})
		if err != nil || l.Live || !l.Restorable || !l.RestorableUntil.Equal(h.clock.Now().Add(retention)) {
			t.Fatalf("expiry in 0s: %+v, %v; want ended now and restorable for the window", l, err)
		}
		h.advance(retention - time.Minute)
		if s := h.collect(); s.Expired != 1 {
			t.Fatalf("expired %d tags, want 1", s.Expired)
		}
		if _, err := h.reg.RestoreTag(h.ctx, "ns/app", "v1", registry.RestoreTarget{Digest: d.String()}); err != nil {
			t.Fatalf("restore inside the window: %v", err)
		}
		h.assertPullable(h.tag("ns/app", "v1"))
	})
}

func containsDigest(body []byte, d v1.Hash) bool {
	return bytes.Contains(body, []byte(d.String()))
}

// A blob only withdrawn manifests reference can be deleted (the OCI
// conformance suite deletes a manifest's blobs after the manifest): its
// link is withdrawn (404), and restoring the manifest brings it back; a
// blob a stored manifest references is still refused.
func TestWithdrawnBlobRestoredWithManifest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := ociImage(t, 2)
		d := h.pushImage("ns/app", "v1", img)
		blobs := layerDigests(t, img)
		resp, body := h.do("DELETE", "/v2/ns/app/blobs/"+blobs[1].String(), nil, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("DELETE of a blob a stored manifest uses: %d %s, want 403", resp.StatusCode, body)
		}
		h.deleteRef(h.dig("ns/app", d))
		for _, b := range blobs {
			resp, body := h.do("DELETE", "/v2/ns/app/blobs/"+b.String(), nil, nil)
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("DELETE of blob %s after its manifest: %d %s, want 202", b, resp.StatusCode, body)
			}
			if st := h.headBlob("ns/app", digestOf(b)); st != http.StatusNotFound {
				t.Fatalf("HEAD of deleted blob %s: %d, want 404", b, st)
			}
		}
		h.advance(retention - time.Hour)
		h.collect()
		for _, b := range blobs {
			if !h.hasBlob(b) {
				t.Fatalf("blob %s collected while a restorable manifest references it", b)
			}
		}
		if _, err := h.reg.RestoreTag(h.ctx, "ns/app", "v1", registry.RestoreTarget{Digest: d.String()}); err != nil {
			t.Fatalf("restore: %v", err)
		}
		h.assertPullable(h.tag("ns/app", "v1"))
		h.fixedPoint()
		h.assertPullable(h.tag("ns/app", "v1"))

		// Withdrawn again, then re-uploaded: the upload brings the link back.
		h.deleteRef(h.dig("ns/app", d))
		resp, body = h.do("DELETE", "/v2/ns/app/blobs/"+blobs[1].String(), nil, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("DELETE of blob %s: %d %s", blobs[1], resp.StatusCode, body)
		}
		h.pushImage("ns/app", "v2", img)
		h.assertPullable(h.tag("ns/app", "v2"))
		h.settle()
		h.assertPullable(h.tag("ns/app", "v2"))
		h.assertFixedPoint(nil)
	})
}

// A tag review names its row as repoID@rowID. SQLite reuses the largest
// rowid after a delete (a purge deletes tag rows and leaves their pending
// reviews), so a stale review of a row of repository B can name a new row of
// repository A. Found by a 30-minute torture run: the collector decided A's
// row with B's window and reviewed its manifest in B, so A's manifest was
// never collected — and with B's window shorter than A's, the row would go
// inside its own window. The collector decides a row only for the
// repository that holds it.
func TestStaleTagReviewOfAnotherRepository(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := ociImage(t, 1)
		d := h.pushImage("a/app", "v1", img)
		h.pushImage("b/app", "v1", ociImage(t, 1))
		zero := time.Duration(0)
		if _, err := h.reg.SetNamespaceRetention(h.ctx, "b", &zero); err != nil {
			t.Fatal(err)
		}
		h.deleteRef(h.tag("a/app", "v1"))
		ids := h.strings(`SELECT CAST(t.id AS TEXT) FROM tag t JOIN repository r ON r.id = t.repository_id WHERE r.name = ? AND t.name = ?`, "a/app", "v1")
		if len(ids) != 1 {
			t.Fatalf("tag rows of a/app:v1: %v", ids)
		}
		id, err := strconv.ParseInt(ids[0], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.store.Update(h.ctx, func(tx meta.Tx) error {
			return tx.AddReview(h.ctx, meta.Review{Kind: review.KindTag, Object: review.TagObject(h.repoID("b/app"), id), ReviewAfter: h.clock.Now(), Reason: "stale"})
		}); err != nil {
			t.Fatal(err)
		}
		h.advance(time.Minute)
		h.collect()
		if _, err := h.reg.RestoreTag(h.ctx, "a/app", "v1", registry.RestoreTarget{Digest: d.String()}); err != nil {
			t.Fatalf("restore inside a/app's window after a stale review of b/app named its row: %v", err)
		}
		h.assertPullable(h.tag("a/app", "v1"))
		h.deleteRef(h.tag("a/app", "v1"))
		h.settle()
		h.assertGone("a/app", []v1.Hash{d}, layerDigests(t, img)...)
		h.assertFixedPoint(nil)
	})
}
