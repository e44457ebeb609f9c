package gc_test

// One test per rule of DESIGN.md §3: each root and each edge keeps what it
// should, and nothing else.

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv"
)

// Root 1: a live tag keeps its image forever; a hidden live tag too.
func TestRootLiveTag(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := randomImage(t, 2)
		d := h.pushImage("ns/app", "v1", img)
		hidden := ociImage(t, 1)
		hd := h.pushImage("ns/app", "", hidden)
		// A hidden tag (an internal pin) is written straight to the store.
		if err := h.store.Update(h.ctx, func(tx meta.Tx) error {
			_, err := tx.PutTag(h.ctx, meta.Tag{RepoID: h.repoID("ns/app"), Name: "pin", Manifest: digestOf(hd), Start: h.clock.Now(), Hidden: true})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		h.settle()
		h.assertPullable(h.tag("ns/app", "v1"))
		h.assertPullable(h.dig("ns/app", hd))
		h.assertFixedPoint(nil)
		if !h.hasManifest("ns/app", d) {
			t.Fatal("tagged manifest collected")
		}
	})
}

// Root 2 and restore: a deleted tag stays recoverable for the namespace's
// window, restore works inside it, and everything goes after it.
func TestRootRecoverableTagAndRestore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := randomImage(t, 2)
		d := h.pushImage("ns/app", "v1", img)
		h.deleteRef(h.tag("ns/app", "v1"))
		h.advance(retention - time.Minute)
		h.collect()
		h.assertPullable(h.dig("ns/app", d))
		if _, err := h.reg.RestoreTag(h.ctx, "ns/app", "v1", registry.RestoreTarget{Digest: d.String()}); err != nil {
			t.Fatalf("restore inside the window: %v", err)
		}
		h.advance(retention)
		h.collect()
		h.assertPullable(h.tag("ns/app", "v1"))

		// Delete again: restorable until the window closes, refused after.
		h.deleteRef(h.tag("ns/app", "v1"))
		h.advance(retention + time.Minute)
		_, err := h.reg.RestoreTag(h.ctx, "ns/app", "v1", registry.RestoreTarget{Digest: d.String()})
		if !errors.Is(err, registry.ErrDenied) {
			t.Fatalf("restore after the window: %v, want ErrDenied", err)
		}
		h.settle()
		h.assertGone("ns/app", []v1.Hash{d}, layerDigests(t, img)...)
		h.assertFixedPoint(nil)
		if _, err := h.reg.RestoreTag(h.ctx, "ns/app", "v1", registry.RestoreTarget{Digest: d.String()}); err == nil {
			t.Fatal("restore after collection succeeded")
		}
	})
}

// Root 2, per namespace: a namespace's own window (0 here) overrides the default.
func TestRootNamespaceRetention(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := randomImage(t, 1)
		d := h.pushImage("fast/app", "v1", img)
		zero := time.Duration(0)
		if _, err := h.reg.SetNamespaceRetention(h.ctx, "fast", &zero); err != nil {
			t.Fatal(err)
		}
		h.advance(grace + time.Minute) // past the untagged grace of the push
		h.deleteRef(h.tag("fast/app", "v1"))
		h.collect()
		if h.hasManifest("fast/app", d) {
			t.Fatal("manifest kept although the namespace has no time machine")
		}
		h.settle()
		h.assertGone("fast/app", []v1.Hash{d}, layerDigests(t, img)...)
		h.assertFixedPoint(nil)
	})
}

// Root 3: an uploaded blob is kept until its marker expires, then
// collected with its bytes.
func TestRootUploadedBlob(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		d := h.pushBlob("ns/app", []byte("lonely blob"))
		h.advance(grace - time.Minute)
		h.collect()
		if n := h.count(`SELECT COUNT(*) FROM repository_blob WHERE blob_digest = ?`, d.String()); n != 1 {
			t.Fatal("uploaded blob unlinked inside the grace")
		}
		h.advance(2 * time.Minute) // (no read in between: a HEAD would revive it, see scenario 2)
		s := h.collect()
		if s.Deleted[review.KindBlob] != 1 || s.Deleted[review.KindLink] != 1 {
			t.Fatalf("after the grace: deleted %v, want the link and the blob", s.Deleted)
		}
		if st := h.headBlob("ns/app", d); st != http.StatusNotFound {
			t.Fatalf("HEAD after collection: %d", st)
		}
		h.assertGone("ns/app", nil, toHash(t, d))
		h.fixedPoint()
	})
}

// Root 4: an untagged manifest lives for the grace after its push.
func TestRootUntaggedGrace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := randomImage(t, 1)
		d := h.pushImage("ns/app", "", img)
		h.advance(grace - time.Minute)
		h.collect()
		if !h.hasManifest("ns/app", d) {
			t.Fatal("untagged manifest collected inside the grace")
		}
		h.advance(2 * time.Minute)
		h.collect()
		if h.hasManifest("ns/app", d) {
			t.Fatal("untagged manifest kept past the grace")
		}
		h.settle()
		h.assertGone("ns/app", []v1.Hash{d}, layerDigests(t, img)...)
		h.assertFixedPoint(nil)
	})
}

// Root 5: an open upload session lives until the upload expiry after its
// last activity; then the session and its staging bytes go.
func TestRootOpenUpload(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		resp, body := h.do("POST", "/v2/ns/app/blobs/uploads/", nil, nil)
		h.expect(resp, body, http.StatusAccepted)
		loc := resp.Header.Get("Location")
		resp, body = h.do("PATCH", loc, map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "0-4"}, []byte("hello"))
		h.expect(resp, body, http.StatusAccepted)
		loc = resp.Header.Get("Location")
		h.advance(uploadExpiry - time.Minute)
		h.collect()
		// Still open: another chunk is accepted, and pushes the expiry later.
		resp, body = h.do("PATCH", loc, map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "5-9"}, []byte("world"))
		h.expect(resp, body, http.StatusAccepted)
		loc = resp.Header.Get("Location")
		h.advance(uploadExpiry - time.Minute)
		h.collect()
		if n := h.count(`SELECT COUNT(*) FROM upload`); n != 1 {
			t.Fatalf("active upload collected (%d sessions)", n)
		}
		h.advance(2 * time.Minute)
		s := h.collect()
		if s.Deleted[review.KindUpload] != 1 {
			t.Fatalf("idle upload: deleted %v", s.Deleted)
		}
		if ids := h.stagedUploads(); len(ids) != 0 {
			t.Fatalf("staging bytes left: %v", ids)
		}
		resp, _ = h.do("PATCH", loc, map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "10-10"}, []byte("!"))
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("PATCH on a collected upload: %d", resp.StatusCode)
		}
		h.fixedPoint()
	})
}

// Edge tag → manifest: moving a tag sends the old manifest to the time
// machine; the new one stays.
func TestEdgeTagMove(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		old := randomImage(t, 1)
		od := h.pushImage("ns/app", "latest", old)
		nw := randomImage(t, 1)
		h.pushImage("ns/app", "latest", nw)
		h.advance(retention - time.Minute)
		h.collect()
		h.assertPullable(h.dig("ns/app", od))
		h.settle()
		h.assertGone("ns/app", []v1.Hash{od}, layerDigests(t, old)...)
		h.assertPullable(h.tag("ns/app", "latest"))
		h.assertFixedPoint(nil)
	})
}

// Edges manifest → blobs and labels: labels are kept while any manifest
// uses them, and collected with the last one.
func TestEdgeManifestLabels(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		a := labeledImage(t, map[string]string{"team": "core", "only-a": "x"})
		b := labeledImage(t, map[string]string{"team": "core"})
		h.pushImage("ns/app", "a", a)
		h.pushImage("ns/app", "b", b)
		if n := h.count(`SELECT COUNT(*) FROM label`); n != 2 {
			t.Fatalf("%d labels, want 2", n)
		}
		h.deleteRef(h.tag("ns/app", "a"))
		h.settle()
		if got := h.strings(`SELECT key FROM label`); len(got) != 1 || got[0] != "team" {
			t.Fatalf("labels after a's collection: %v, want [team]", got)
		}
		h.assertPullable(h.tag("ns/app", "b"))
		h.assertFixedPoint(nil)
		h.deleteRef(h.tag("ns/app", "b"))
		h.settle()
		if n := h.count(`SELECT COUNT(*) FROM label`); n != 0 {
			t.Fatalf("%d labels left", n)
		}
		h.assertFixedPoint(nil)
	})
}

// Global dedup: a layer shared by two repositories survives the deletion
// of one repository's image, with its single blob row and bytes.
func TestSharedLayerAcrossRepositories(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		shared := randomLayer(t)
		a := withLayers(t, ociImage(t, 1), shared)
		b := withLayers(t, ociImage(t, 1), shared)
		h.pushImage("team-a/app", "v1", a)
		h.pushImage("team-b/app", "v1", b)
		sd := mustDigest(t, shared)
		if n := h.count(`SELECT COUNT(*) FROM repository_blob WHERE blob_digest = ?`, sd.String()); n != 2 {
			t.Fatalf("shared layer linked %d times, want 2", n)
		}
		h.deleteRef(h.tag("team-a/app", "v1"))
		h.settle()
		if !h.hasBlob(sd) {
			t.Fatal("shared layer collected while team-b uses it")
		}
		h.assertPullable(h.tag("team-b/app", "v1"))
		h.assertFixedPoint(nil)
		h.deleteRef(h.tag("team-b/app", "v1"))
		h.settle()
		h.assertGone("team-b/app", nil, sd)
		h.assertFixedPoint(nil)
	})
}

// A multi-arch index keeps its untagged children (scenario 9 too), and
// they go with it.
func TestEdgeIndexChildren(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		amd, arm := ociImage(t, 1), ociImage(t, 1)
		idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
			mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
			mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
		d := h.pushIndex("ns/multi", "v1", idx)
		h.settle()
		h.assertPullable(h.tag("ns/multi", "v1"))
		h.assertFixedPoint(nil)
		h.deleteRef(h.tag("ns/multi", "v1"))
		h.settle()
		h.assertGone("ns/multi", []v1.Hash{d, mustDigest(t, amd), mustDigest(t, arm)}, append(layerDigests(t, amd), layerDigests(t, arm)...)...)
		h.assertFixedPoint(nil)
	})
}

// Root via expiry labels: berth.expires-after and quay.expires-after end the
// tag at push time + the duration; the tag then sits in the time machine
// (restorable) and is collected after the window.
func TestExpiryLabels(t *testing.T) {
	for _, label := range []string{registry.LabelExpiresAfter, registry.LabelQuayExpiresAfter} {
		t.Run(label, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, h *harness) {
				img := labeledImage(t, map[string]string{label: "2h"})
				d := h.pushImage("ns/app", "nightly", img)
				h.advance(2*time.Hour - time.Minute)
				if s := h.collect(); s.Expired != 0 {
					t.Fatalf("expired %d tags before the expiry", s.Expired)
				}
				h.assertPullable(h.tag("ns/app", "nightly"))
				h.advance(2 * time.Minute)
				if s := h.collect(); s.Expired != 1 {
					t.Fatalf("expired %d tags after the expiry, want 1", s.Expired)
				}
				if ev := h.eventsOf(event.TagExpired); len(ev) != 1 || ev[0].Tag != "nightly" {
					t.Fatalf("tag.expired events: %+v", ev)
				}
				if st := h.manifestStatus("ns/app", d); st != http.StatusOK {
					t.Fatalf("expired tag's manifest by digest inside the window: %d", st)
				}
				resp, _ := h.do("GET", "/v2/ns/app/manifests/nightly", map[string]string{"Accept": "*/*"}, nil)
				if resp.StatusCode != http.StatusNotFound {
					t.Fatalf("expired tag still served: %d", resp.StatusCode)
				}
				hh, err := h.reg.TagHistory(h.ctx, "ns/app", "nightly")
				hist := hh.Lifetimes
				if err != nil || len(hist) != 1 || hist[0].End == nil || !hist[0].End.Equal(*hist[0].ExpiresAt) {
					t.Fatalf("history after expiry: %+v, %v", hist, err)
				}
				h.advance(retention - 2*time.Hour)
				h.collect()
				h.assertPullable(h.dig("ns/app", d))
				h.settle()
				h.assertGone("ns/app", []v1.Hash{d}, layerDigests(t, img)...)
				h.assertFixedPoint(nil)
			})
		})
	}
}

// collect_untagged=false keeps a manifest pushed by digest and never tagged.
func TestCollectUntaggedOff(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := randomImage(t, 1)
		d := h.pushImage("ns/pinned", "", img)
		h.settle()
		h.assertPullable(h.dig("ns/pinned", d))
		h.assertFixedPoint([]string{h.manifestKey("ns/pinned", d)})
		// A manifest that lost its tag is still collected.
		other := randomImage(t, 1)
		od := h.pushImage("ns/pinned", "tmp", other)
		h.deleteRef(h.tag("ns/pinned", "tmp"))
		h.settle()
		h.assertGone("ns/pinned", []v1.Hash{od}, layerDigests(t, other)...)
		h.assertPullable(h.dig("ns/pinned", d))
	}, withoutUntagged())
}

// --repo scoping: a scoped run touches only that repository's reviews and
// what they free.
func TestRepoScoping(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		a := randomImage(t, 1)
		b := randomImage(t, 1)
		ad := h.pushImage("ns/a", "v1", a)
		bd := h.pushImage("ns/b", "v1", b)
		h.deleteRef(h.tag("ns/a", "v1"))
		h.deleteRef(h.tag("ns/b", "v1"))
		h.advance(retention + time.Minute)
		s := h.collectWith(h.gc, gc.RunOptions{Repo: "ns/a", KeepDeletions: true})
		for _, del := range s.Deletions {
			if del.Repository != "" && del.Repository != "ns/a" {
				t.Errorf("scoped run deleted %+v", del)
			}
		}
		if h.hasManifest("ns/a", ad) {
			t.Fatal("scoped run kept ns/a's garbage")
		}
		if !h.hasManifest("ns/b", bd) {
			t.Fatal("scoped run to ns/a collected ns/b")
		}
		h.settle()
		h.assertGone("ns/a", []v1.Hash{ad}, layerDigests(t, a)...)
		h.assertGone("ns/b", []v1.Hash{bd}, layerDigests(t, b)...)
		h.assertFixedPoint(nil)
		if _, err := h.gc.RunOnce(h.ctx, gc.RunOptions{Repo: "ns/nope"}); err == nil || !strings.Contains(err.Error(), "ns/nope") {
			t.Fatalf("run scoped to an unknown repository: %v", err)
		}
	})
}

// --repo scoping and expiry: a scoped run (and its dry run) expires the
// repository's expired tags even when a batch or more of older expired
// tags wait in other repositories (the expired-tag query filters by
// repository in SQL; it used to take the oldest batch and skip the rest).
func TestRepoScopingExpiresItsTags(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := randomImage(t, 1)
		d := h.pushImage("ns/other", "base", img)
		soon := h.clock.Now().Add(time.Minute)
		for i := range 3 { // three older expired tags elsewhere: more than the batch of 2
			tag := fmt.Sprintf("old%d", i)
			h.retag("ns/other", tag, d)
			if _, err := h.reg.SetTagExpiry(h.ctx, "ns/other", tag, registry.Expiry{At: &soon}); err != nil {
				t.Fatal(err)
			}
		}
		h.pushImage("ns/mine", "v1", randomImage(t, 1))
		later := h.clock.Now().Add(2 * time.Minute)
		if _, err := h.reg.SetTagExpiry(h.ctx, "ns/mine", "v1", registry.Expiry{At: &later}); err != nil {
			t.Fatal(err)
		}
		h.advance(time.Hour)
		dry, err := h.gc.RunOnce(h.ctx, gc.RunOptions{Repo: "ns/mine", DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if dry.Expired != 1 {
			t.Errorf("dry run scoped to ns/mine: expired %d, want 1", dry.Expired)
		}
		s, err := h.gc.RunOnce(h.ctx, gc.RunOptions{Repo: "ns/mine"})
		if err != nil {
			t.Fatal(err)
		}
		if s.Expired != 1 {
			t.Errorf("run scoped to ns/mine: expired %d, want 1", s.Expired)
		}
		// The other repository's rows are left to an unscoped run.
		if err := h.store.View(h.ctx, func(tx meta.Tx) error {
			rows, err := tx.TagHistory(h.ctx, h.repoID("ns/other"), "old0", 10)
			if err != nil {
				return err
			}
			if len(rows) != 1 || rows[0].End != nil {
				t.Errorf("ns/other old0 after a run scoped to ns/mine: %+v, want one row not ended", rows)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}, withBatch(2))
}

// A review whose object cannot be read (review.Parse refuses it) is
// dropped with a warning that names its kind, its object and the error,
// never silently — labels and blobs too.
func TestMalformedReviewIsLogged(t *testing.T) {
	var logs testenv.LogBuffer // the registry's and collector's lines
	malformed := []meta.Review{
		{Kind: review.KindTag, Object: "7@not-an-id"},
		{Kind: review.KindManifest, Object: "not-a-repo-object"},
		{Kind: review.KindLink, Object: "7@sha256:short"},
		{Kind: review.KindBlob, Object: "not-a-digest"},
		{Kind: review.KindLabel, Object: "not-a-label-id"},
		{Kind: review.KindUploadedBlob, Object: "x@sha256:" + strings.Repeat("ab", 32)},
		{Kind: review.KindUpload, Object: ""},
	}
	forEachBackend(t, func(t *testing.T, h *harness) {
		logs.Reset() // each backend's own lines
		if err := h.store.Update(h.ctx, func(tx meta.Tx) error {
			for _, r := range malformed {
				r.ReviewAfter = h.clock.Now()
				if err := tx.AddReview(h.ctx, r); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		h.collect()
		h.assertFixedPoint(nil)
		for _, r := range malformed {
			want := fmt.Sprintf("kind=%s object=%q", r.Kind, r.Object)
			if r.Object != "" && !strings.ContainsAny(r.Object, " \"=") {
				want = fmt.Sprintf("kind=%s object=%s", r.Kind, r.Object)
			}
			found := false
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "level=WARN") && strings.Contains(line, want) && strings.Contains(line, "malformed object") {
					found = true
				}
			}
			if !found {
				t.Errorf("no warning with %s and the parse error:\n%s", want, logs.String())
			}
		}
		if n := h.count(`SELECT COUNT(*) FROM review`); n != 0 {
			t.Errorf("reviews left after the run: got %d, want 0 (malformed ones are dropped)", n)
		}
	}, func(o *gc.Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
}

// Causes travel with the decisions (gc.md, "Deciding sets"): a follow-up
// put off keeps the cause it was recorded for (a deleted manifest's links
// wait out their grace as manifest_deleted, after the tag row's deletion
// carried the manifest down as tag_collected), and a claimed review put
// off keeps its own (a manifest reviewed inside its grace stays pushed, so
// collect_untagged=false can still tell it was pushed by digest).
func TestFollowUpsKeepTheirCause(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := randomImage(t, 2)
		h.pushImage("ns/app", "v1", img)
		h.deleteRef(h.tag("ns/app", "v1"))
		h.advance(retention + time.Minute)
		s := h.collect()
		if s.Deleted[review.KindTag] != 1 || s.Deleted[review.KindManifest] != 1 || s.Deleted[review.KindLink] != 0 {
			t.Fatalf("past the window: deleted %v, want the tag row and its manifest, links kept for their grace", s.Deleted)
		}
		got := h.strings(`SELECT kind || ' ' || cause FROM review ORDER BY kind, object`)
		want := []string{"link manifest_deleted", "link manifest_deleted", "link manifest_deleted"} // config and two layers
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("reviews after the manifest's deletion (-want +got):\n%s", diff)
		}

		pinned := h.pushImage("ns/app", "", randomImage(t, 1))
		key := h.manifestKey("ns/app", pinned)
		if err := h.store.Update(h.ctx, func(tx meta.Tx) error {
			return tx.RescheduleReview(h.ctx, meta.Review{Kind: review.KindManifest, Object: key, ReviewAfter: h.clock.Now(),
				Cause: review.CausePushed, Reason: "pushed"})
		}); err != nil {
			t.Fatal(err)
		}
		h.collect()
		got = h.strings(`SELECT cause FROM review WHERE kind = 'manifest' AND object = ?`, key)
		if diff := cmp.Diff([]string{string(review.CausePushed)}, got); diff != "" {
			t.Errorf("manifest reviewed inside its grace: cause (-want +got):\n%s", diff)
		}
	})
}
