package gc_test

// Purge (DESIGN.md §4), its interruption and resumption, scenarios 26 and
// 27, and the dry run.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// fillRepo pushes into repo a tagged nested index (an inner index listed by
// the outer one), a tagged image with a signature and an SBOM, a moved tag,
// an uploaded blob and an open upload; it returns the blob digests that
// only repo uses.
func (h *harness) fillRepo(repo string) []v1.Hash {
	h.t.Helper()
	a, b := ociImage(h.t, 1), ociImage(h.t, 1)
	inner := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: a})
	outer := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: inner}, mutate.IndexAddendum{Add: b})
	h.pushIndex(repo, "multi", outer)
	img := ociImage(h.t, 2)
	h.pushImage(repo, "v1", img)
	h.pushReferrers(repo, descriptor(h.t, img))
	h.pushImage(repo, "v1", ociImage(h.t, 1)) // moves v1: the old row is history
	h.pushBlob(repo, []byte("uploaded, never referenced "+repo))
	resp, body := h.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
	h.expect(resp, body, http.StatusAccepted)
	out := append(layerDigests(h.t, a), layerDigests(h.t, b)...)
	return append(out, layerDigests(h.t, img)...)
}

// assertRepoEmpty checks that no row of repo is left, nor the repository.
func (h *harness) assertRepoEmpty(repo string) {
	h.t.Helper()
	if n := h.count(`SELECT COUNT(*) FROM repository WHERE name = ?`, repo); n != 0 {
		h.t.Fatalf("repository %s still exists", repo)
	}
	for _, tb := range []string{"tag", "manifest", "manifest_child", "manifest_blob", "manifest_label", "repository_blob", "uploaded_blob", "upload"} {
		if n := h.count(`SELECT COUNT(*) FROM ` + tb + ` WHERE repository_id NOT IN (SELECT id FROM repository)`); n != 0 {
			h.t.Errorf("%d %s rows of a purged repository", n, tb)
		}
	}
}

func TestPurgeRepository(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		own := h.fillRepo("ns/app")
		keep := ociImage(t, 1)
		h.pushImage("ns/other", "v1", keep)
		s, err := h.gc.Purge(h.ctx, "ns/app", nil)
		if err != nil {
			t.Fatalf("purge: %v", err)
		}
		if s.Deleted[review.KindRepository] != 1 || s.Deleted[review.KindManifest] != 8 {
			t.Errorf("purge deleted %v, want the repository and 8 manifests", s.Deleted)
		}
		h.assertRepoEmpty("ns/app")
		h.assertGone("ns/app", nil, own...)
		h.assertPullable(h.tag("ns/other", "v1"))
		if ev := h.eventsOf(event.RepositoryPurged); len(ev) != 1 || ev[0].Repository != "ns/app" {
			t.Errorf("purge events: %+v", ev)
		}
		h.fixedPoint()
		h.assertPullable(h.tag("ns/other", "v1"))
	})
}

// A purge interrupted after a step (its context cancelled from the
// progress callback) refuses writes to the repository until it is
// resumed, by the workers' RunOnce after the lease or by a second Purge.
func TestPurgeInterruptedAndResumed(t *testing.T) {
	for _, resume := range []string{"RunOnce", "Purge"} {
		t.Run(resume, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, h *harness) {
				own := h.fillRepo("ns/app")
				c := gc.New(h.store, h.blobs, func() gc.Options { o := h.opts; o.BatchSize = 1; return o }())
				ctx, cancel := context.WithCancel(h.ctx)
				steps := 0
				_, err := c.Purge(ctx, "ns/app", func(gc.Summary) {
					if steps++; steps == 3 {
						cancel()
					}
				})
				if err == nil {
					t.Fatal("interrupted purge reported success")
				}
				if err := h.tryPushImage("ns/app", "v2", randomImage(t, 1)); err == nil {
					t.Fatal("push into a repository being purged succeeded")
				}
				switch resume {
				case "RunOnce":
					h.collect() // the purge's lease has not run out: not resumed yet
					if n := h.count(`SELECT COUNT(*) FROM repository WHERE name = 'ns/app'`); n != 1 {
						t.Fatal("purge resumed before its lease ran out")
					}
					h.advance(11 * time.Minute)
					h.collect()
				case "Purge":
					if _, err := h.gc.Purge(h.ctx, "ns/app", nil); err != nil {
						t.Fatalf("second purge: %v", err)
					}
				}
				h.assertRepoEmpty("ns/app")
				h.assertGone("ns/app", nil, own...)
				// The name starts over, empty.
				h.pushImage("ns/app", "fresh", randomImage(t, 1))
				tags, _, err := h.reg.Tags(h.ctx, "ns/app", "", -1)
				if err != nil || !slices.Equal(tags, []string{"fresh"}) {
					t.Fatalf("tags of the re-created repository: %v %v", tags, err)
				}
				h.fixedPoint()
			})
		})
	}
}

// 26. Purge of a repository whose manifests reference each other (nested
// indexes, referrers, a child listed by two parents) terminates, one
// manifest per transaction.
func TestScenario26PurgeParentsBeforeChildren(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.fillRepo("ns/app")
		shared := ociImage(t, 1)
		p1 := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: shared})
		p2 := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: shared}, mutate.IndexAddendum{Add: p1})
		h.pushIndex("ns/app", "p1", p1)
		h.pushIndex("ns/app", "p2", p2)
		c := gc.New(h.store, h.blobs, func() gc.Options { o := h.opts; o.BatchSize = 1; return o }())
		rounds := 0
		ctx, cancel := context.WithTimeout(h.ctx, time.Minute)
		defer cancel()
		if _, err := c.Purge(ctx, "ns/app", func(gc.Summary) { rounds++ }); err != nil {
			t.Fatalf("purge: %v", err)
		}
		if rounds > 100 {
			t.Errorf("purge took %d transactions for a small repository", rounds)
		}
		h.assertRepoEmpty("ns/app")
		h.fixedPoint()
	})
}

// 27. A namespace being purged refuses new repositories and writes; its
// name can be registered again only once the purge finished, and then
// starts empty.
func TestScenario27NamespaceReRegisteredDuringPurge(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.fillRepo("acme/app")
		h.fillRepo("acme/lib")
		ctx, cancel := context.WithCancel(h.ctx)
		steps := 0
		_, err := h.gc.Purge(ctx, "acme", func(gc.Summary) {
			if steps++; steps == 2 {
				cancel()
			}
		})
		if err == nil {
			t.Fatal("interrupted namespace purge reported success")
		}
		for _, repo := range []string{"acme/app", "acme/new"} {
			resp, body := h.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("upload into %s during the purge: %d %s", repo, resp.StatusCode, body)
			}
		}
		h.advance(11 * time.Minute)
		h.collect() // resumes the namespace purge
		if n := h.count(`SELECT COUNT(*) FROM namespace WHERE name = 'acme'`); n != 0 {
			t.Fatal("namespace row left after the resumed purge")
		}
		h.assertRepoEmpty("acme/app")
		h.assertRepoEmpty("acme/lib")
		h.pushImage("acme/app", "v1", randomImage(t, 1))
		hist, err := h.reg.TagHistory(h.ctx, "acme/app", "")
		if err != nil || len(hist.Lifetimes) != 1 {
			t.Fatalf("history of the re-registered repository: %d rows, %v", len(hist.Lifetimes), err)
		}
		h.fixedPoint()
	})
}

// The dry run reports exactly what the real run then deletes (kinds,
// objects, bytes) and changes nothing.
func TestDryRunEqualsRealRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		signed := h.mixedGarbage()
		zero := time.Duration(0)
		if _, err := h.reg.SetNamespaceRetention(h.ctx, "ns", &zero); err != nil {
			t.Fatal(err)
		}
		h.deleteRef(h.tag("ns/signed", "v1")) // under the window of 0
		h.advance(uploadExpiry + time.Minute)

		before, keys := h.snapshot(), h.storedKeys()
		dry, err := h.gc.RunOnce(h.ctx, gc.RunOptions{DryRun: true})
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
		if !dry.DryRun || len(dry.Deletions) == 0 {
			t.Fatalf("dry run summary: %+v", dry)
		}
		if after := h.snapshot(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatal("the dry run changed the metadata")
		}
		if after := h.storedKeys(); len(after) != len(keys) {
			t.Fatal("the dry run changed the byte store")
		}
		real := h.collect()
		if got, want := deletionKeys(real.Deletions), deletionKeys(dry.Deletions); !slices.Equal(got, want) {
			t.Errorf("real run deleted\n%v\ndry run said\n%v", got, want)
		}
		if real.BytesFreed != dry.BytesFreed || real.Expired != dry.Expired {
			t.Errorf("real run freed %d bytes, expired %d; dry run said %d, %d", real.BytesFreed, real.Expired, dry.BytesFreed, dry.Expired)
		}
		// The tags ended: the expired one, and the attachments of the
		// collected subject (whose manifests the same run deleted).
		if got, want := endKeys(real.Ends), endKeys(dry.Ends); !slices.Equal(got, want) {
			t.Errorf("real run ended\n%v\ndry run said\n%v", got, want)
		}
		if real.AttachmentsEnded != 4 || dry.AttachmentsEnded != 4 {
			t.Errorf("attachment tags ended: real %d, dry %d; want 4", real.AttachmentsEnded, dry.AttachmentsEnded)
		}
		h.assertGone("ns/signed", append([]v1.Hash{signed.subject}, signed.manifests...))
		if errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		h.fixedPoint()
		h.assertPullable(h.tag("ns/keep", "v1"))
	})
}

// mixedGarbage makes garbage of every kind (fillRepo's in ns/app with its
// index deleted, an untagged image, an expiring tag in ns/exp), a live
// image in ns/keep, and a signed subject in ns/signed, which it returns:
// the caller decides what becomes of its tag.
func (h *harness) mixedGarbage() attached {
	h.t.Helper()
	h.fillRepo("ns/app")
	h.deleteRef(h.tag("ns/app", "multi"))
	h.pushImage("ns/app", "", randomImage(h.t, 1))
	h.pushImage("ns/exp", "nightly", labeledImage(h.t, map[string]string{"berth.expires-after": "1h"}))
	h.pushImage("ns/keep", "v1", randomImage(h.t, 1))
	return h.pushAttached("ns/signed", "v1")
}

func deletionKeys(ds []gc.Deletion) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s %s %s %s %d", d.Kind, d.Repository, d.Digest, d.Tag, d.Size))
	}
	slices.Sort(out)
	return out
}

// The dry run (gc --dry-run, gc/status?reclaimable=true) takes no lock a
// push could wait for: it completes while a write transaction holds the
// SQLite writer, or, on PostgreSQL, the row of a manifest it decides.
func TestDryRunTakesNoLocks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.pushImage("ns/app", "", randomImage(t, 2))
		h2 := h.pushImage("ns/app", "", randomImage(t, 1))
		d := digest.Digest(h2.String())
		h.advance(grace + time.Minute)
		held, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- h.store.Update(h.ctx, func(tx meta.Tx) error {
				repo, err := tx.Repository(h.ctx, "ns/app", meta.LockNone)
				if err == nil {
					_, err = tx.Manifest(h.ctx, repo.ID, d, meta.LockUpdate)
				}
				close(held)
				<-release
				return err
			})
		}()
		<-held
		ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
		dry, err := h.gc.RunOnce(ctx, gc.RunOptions{DryRun: true})
		cancel()
		close(release)
		if err != nil {
			t.Fatalf("dry run while a writer held a candidate: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if dry.Deleted[review.KindManifest] != 2 {
			t.Fatalf("dry run would delete %v, want both untagged manifests", dry.Deleted)
		}
		real := h.collect()
		if real.Deleted[review.KindManifest] != 2 || real.BytesFreed != dry.BytesFreed {
			t.Fatalf("real run deleted %v (%d bytes), dry run said %v (%d bytes)", real.Deleted, real.BytesFreed, dry.Deleted, dry.BytesFreed)
		}
		h.fixedPoint()
	})
}
