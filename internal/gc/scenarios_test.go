package gc_test

// Named scenarios of reference/gc-failure-scenarios.md, driven over HTTP
// with go-containerregistry where a client is involved. The number in each
// name is the scenario's.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
)

// configBlob is a minimal OCI image config.
func configBlob(seed string) []byte {
	return []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"seed":%q}}}`, seed))
}

// 1. Blobs uploaded (201) are kept until the manifest PUT inside the grace,
// even with the collector running at every step; after the grace without a
// manifest the PUT fails with MANIFEST_BLOB_UNKNOWN (the loser sees the
// truth) and nothing is left.
func TestScenario01UploadedBlobSurvivesUntilManifestPut(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		cfg := configBlob("one")
		layer := []byte("layer of scenario 1")
		cd := h.pushBlob("ns/app", cfg)
		ld := h.pushBlob("ns/app", layer)
		for range 5 {
			h.advance(grace/5 - time.Second)
			h.collect()
		}
		body := imageManifest(cd, int64(len(cfg)), map[digest.Digest]int64{ld: int64(len(layer))})
		if st, b := h.putManifest("ns/app", "v1", "application/vnd.oci.image.manifest.v1+json", body); st != http.StatusCreated {
			t.Fatalf("manifest PUT inside the grace: %d %s", st, b)
		}
		h.assertPullable(h.tag("ns/app", "v1"))

		// The other side: blobs left alone past the grace are collected
		// and a late PUT is refused.
		cfg2 := configBlob("two")
		cd2 := h.pushBlob("ns/app", cfg2)
		h.advance(grace + time.Second)
		h.collect()
		st, b := h.putManifest("ns/app", "late", "application/vnd.oci.image.manifest.v1+json", imageManifest(cd2, int64(len(cfg2)), nil))
		if st/100 != 4 || !strings.Contains(string(b), "MANIFEST_BLOB_UNKNOWN") {
			t.Fatalf("PUT after the grace: %d %s, want MANIFEST_BLOB_UNKNOWN", st, b)
		}
		h.assertGone("ns/app", nil, toHash(t, cd2))

		// Concurrently: pushes through go-containerregistry while a collector
		// runs in a loop; every push succeeds and pulls.
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(h.ctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := h.gc.RunOnce(ctx, gc.RunOptions{}); err != nil && ctx.Err() == nil {
					t.Errorf("RunOnce: %v", err)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		for i := range 8 {
			if err := h.tryPushImage("ns/app", fmt.Sprintf("c%d", i), randomImage(t, 2)); err != nil {
				t.Errorf("push %d during collection: %v", i, err)
			}
		}
		cancel()
		wg.Wait()
		for i := range 8 {
			h.assertPullable(h.tag("ns/app", fmt.Sprintf("c%d", i)))
		}
		h.fixedPoint()
	})
}

// 2. HEAD-then-skip: a client HEADs a blob left over from an old push (its
// manifest deleted, or an upload nobody referenced), skips uploading it and
// PUTs its manifest a while later. The HEAD revives the blob for a full
// grace, so the PUT succeeds even though the collector ran in between.
func TestScenario02HeadThenSkipUpload(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		zero := time.Duration(0)
		// Leftover of a deleted manifest.
		cfg, layer := configBlob("old"), []byte("old layer")
		cd, ld := h.pushBlob("ns/app", cfg), h.pushBlob("ns/app", layer)
		old := imageManifest(cd, int64(len(cfg)), map[digest.Digest]int64{ld: int64(len(layer))})
		if st, b := h.putManifest("ns/app", "old", "application/vnd.oci.image.manifest.v1+json", old); st != http.StatusCreated {
			t.Fatalf("PUT: %d %s", st, b)
		}
		if _, err := h.reg.SetNamespaceRetention(h.ctx, "ns", &zero); err != nil {
			t.Fatal(err)
		}
		h.advance(grace + time.Minute)
		h.deleteRef(h.tag("ns/app", "old"))
		h.collect() // tag row and manifest go; the links are reviewed after a grace
		if h.hasManifest("ns/app", toHash(t, digest.FromBytes(old))) {
			t.Fatal("old manifest not collected")
		}
		h.advance(grace - time.Minute)
		if st := h.headBlob("ns/app", ld); st != http.StatusOK {
			t.Fatalf("HEAD of the leftover layer: %d", st)
		}
		if st := h.headBlob("ns/app", cd); st != http.StatusOK {
			t.Fatalf("HEAD of the leftover config: %d", st)
		}
		h.advance(grace - time.Minute) // the link's own review is long due; the HEAD moved it
		h.collect()
		cfg2 := configBlob("new") // a new config, uploaded; the layer skipped
		cd2 := h.pushBlob("ns/app", cfg2)
		body := imageManifest(cd2, int64(len(cfg2)), map[digest.Digest]int64{ld: int64(len(layer))})
		if st, b := h.putManifest("ns/app", "new", "application/vnd.oci.image.manifest.v1+json", body); st != http.StatusCreated {
			t.Fatalf("PUT after HEAD-then-skip: %d %s", st, b)
		}
		h.assertPullable(h.tag("ns/app", "new"))

		// Leftover of an upload that no manifest referenced: its marker is
		// about to expire when the HEAD comes.
		orphan := []byte("orphan layer")
		od := h.pushBlob("ns/app", orphan)
		h.advance(grace - time.Minute)
		if st := h.headBlob("ns/app", od); st != http.StatusOK {
			t.Fatalf("HEAD of the uploaded layer: %d", st)
		}
		h.advance(grace - time.Minute)
		h.collect()
		body = imageManifest(cd2, int64(len(cfg2)), map[digest.Digest]int64{od: int64(len(orphan))})
		if st, b := h.putManifest("ns/app", "orphan", "application/vnd.oci.image.manifest.v1+json", body); st != http.StatusCreated {
			t.Fatalf("PUT after HEAD-then-skip of an uploaded blob: %d %s", st, b)
		}
		h.assertPullable(h.tag("ns/app", "orphan"))
		h.fixedPoint()
	})
}

// 3. A blob row deleted, the same digest re-uploaded, then the old bytes
// deleted: bytes are addressed by a storage key unique per upload, so the
// re-upload is never hit. The collector is stopped between its commit and
// its byte delete (the byte store refuses deletes), the client re-pushes,
// then the tombstone is flushed.
func TestScenario03ReuploadDuringDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		layer := randomLayer(t)
		img := withLayers(t, ociImage(t, 0), layer)
		ld := mustDigest(t, layer)
		h.pushImage("ns/app", "v1", img)
		oldKeys := h.strings(`SELECT storage_key FROM blob WHERE digest = ?`, ld.String())
		h.deleteRef(h.tag("ns/app", "v1"))
		h.blobs.failDelete.Store(true)
		h.settle()
		if h.hasBlob(ld) {
			t.Fatal("layer row not collected")
		}
		if n := h.count(`SELECT COUNT(*) FROM tombstone WHERE storage_key = ?`, oldKeys[0]); n != 1 {
			t.Fatalf("no tombstone for the old bytes")
		}
		// Re-upload of the same digest while the old bytes still wait.
		img2 := withLayers(t, ociImage(t, 0), layer)
		h.pushImage("ns/app", "v2", img2)
		newKeys := h.strings(`SELECT storage_key FROM blob WHERE digest = ?`, ld.String())
		if newKeys[0] == oldKeys[0] {
			t.Fatalf("re-upload reused storage key %s", oldKeys[0])
		}
		h.blobs.failDelete.Store(false)
		h.collect() // flushes the tombstone: deletes the old key only
		h.assertPullable(h.tag("ns/app", "v2"))
		if keys := h.storedKeys(); keys[oldKeys[0]] || !keys[newKeys[0]] {
			t.Fatalf("old key present %v, new key present %v", keys[oldKeys[0]], keys[newKeys[0]])
		}
		h.fixedPoint()

		// Concurrently: a client pushes images that share one layer and
		// deletes the previous one, while a collector runs with the clock
		// moving; every acknowledged tag pulls completely.
		zero := time.Duration(0)
		if _, err := h.reg.SetNamespaceRetention(h.ctx, "ns", &zero); err != nil {
			t.Fatal(err)
		}
		shared := randomLayer(t)
		h.race(12, func(i int) error {
			tag := fmt.Sprintf("r%d", i)
			if err := h.tryPushImage("ns/app", tag, withLayers(t, ociImage(t, 0), shared)); err != nil {
				return fmt.Errorf("push %s: %w", tag, err)
			}
			if err := h.pullable(h.tag("ns/app", tag), 0); err != nil {
				return fmt.Errorf("pull %s: %w", tag, err)
			}
			if i > 0 {
				return h.tryDelete(h.tag("ns/app", fmt.Sprintf("r%d", i-1)))
			}
			return nil
		})
		h.assertPullable(h.tag("ns/app", "r11"))
		h.fixedPoint()
		h.assertPullable(h.tag("ns/app", "r11"))
	})
}

// race runs step(0..n-1) in order in one goroutine while another runs
// the collector in a loop and moves the clock by small steps (never a whole
// grace during one push). Errors of either side fail the test.
func (h *harness) race(n int, step func(i int) error, collectors ...*gc.Collector) {
	h.t.Helper()
	if len(collectors) == 0 {
		collectors = []*gc.Collector{h.gc}
	}
	ctx, cancel := context.WithCancel(h.ctx)
	var wg sync.WaitGroup
	for _, c := range collectors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				s, err := c.RunOnce(ctx, gc.RunOptions{})
				if err != nil && ctx.Err() == nil {
					h.t.Errorf("RunOnce: %v", err)
				}
				if s.Errors > 0 {
					h.t.Errorf("collector decisions failed: %d", s.Errors)
				}
				h.advance(time.Second)
				time.Sleep(2 * time.Millisecond) // a worker's pause, short: leave the clients CPU
			}
		}()
	}
	for i := range n {
		if err := step(i); err != nil {
			h.t.Errorf("step %d: %v", i, err)
		}
	}
	cancel()
	wg.Wait()
}

func (h *harness) tryDelete(ref interface{ String() string }) error {
	path := ""
	s := strings.TrimPrefix(ref.String(), h.host+"/")
	if i := strings.LastIndex(s, "@"); i >= 0 {
		path = "/v2/" + s[:i] + "/manifests/" + s[i+1:]
	} else {
		i := strings.LastIndex(s, ":")
		path = "/v2/" + s[:i] + "/manifests/" + s[i+1:]
	}
	req, err := http.NewRequestWithContext(h.ctx, "DELETE", h.srv.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("DELETE %s: %d", path, resp.StatusCode)
	}
	return nil
}

// 5. A manifest pulled by digest is not collected while clients use it:
// a GET by digest with less than a grace left postpones its review to 1.5
// graces from then; left alone it goes.
func TestScenario05DigestPinnedManifest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := randomImage(t, 1)
		d := h.pushImage("ns/app", "", img)
		for range 4 {
			h.advance(grace - time.Minute)
			h.assertPullable(h.dig("ns/app", d))
			h.collect()
		}
		if !h.hasManifest("ns/app", d) {
			t.Fatal("manifest pulled by digest was collected")
		}
		h.advance(grace + grace/2 + time.Minute)
		h.collect()
		if h.hasManifest("ns/app", d) {
			t.Fatal("unused untagged manifest kept past the revived grace")
		}
		h.fixedPoint()
		h.assertGone("ns/app", []v1.Hash{d}, layerDigests(t, img)...)
	})
}

// 6. Manifest then tag in two requests with the collector in between.
func TestScenario06TagAfterManifest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := randomImage(t, 2)
		d := h.pushImage("ns/app", "", img)
		h.advance(grace - time.Minute)
		h.collect()
		h.advance(30 * time.Second)
		h.retag("ns/app", "v1", d)
		h.advance(grace)
		h.collect()
		h.fixedPoint()
		h.assertPullable(h.tag("ns/app", "v1"))
	})
}

// 7. The collector decides a manifest is alive through its last tag while
// that tag is deleted concurrently: the tag row's deletion records a new
// review, so the manifest is collected in the end, never left dangling.
func TestScenario07ReviewNotDroppedWhenLastTagGoes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		zero := time.Duration(0)
		h.pushImage("ns/app", "seed", randomImage(t, 1))
		if _, err := h.reg.SetNamespaceRetention(h.ctx, "ns", &zero); err != nil {
			t.Fatal(err)
		}
		const n = 10
		var ds []v1.Hash
		for i := range n {
			ds = append(ds, h.pushImage("ns/app", fmt.Sprintf("t%d", i), randomImage(t, 1)))
		}
		h.advance(grace + time.Minute) // every "pushed" review is due now
		h.race(n, func(i int) error { return h.tryDelete(h.tag("ns/app", fmt.Sprintf("t%d", i))) })
		h.settle()
		for i, d := range ds {
			if h.hasManifest("ns/app", d) {
				t.Errorf("manifest of t%d dangles after its last tag went", i)
			}
		}
		h.assertFixedPoint(nil)
	})
}

// 8. An index is PUT referencing a child the collector is deleting: either
// the PUT wins (child kept, index pullable) or the collector wins (PUT
// refused with MANIFEST_UNKNOWN); never a stored index with a missing child.
func TestScenario08IndexPutWhileChildCollected(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const n = 10
		children := make([]v1.Image, n)
		for i := range n {
			children[i] = ociImage(t, 1)
			h.pushImage("ns/app", "", children[i])
		}
		h.advance(grace + time.Minute) // every child is due for collection
		won, lost := 0, 0
		h.race(n, func(i int) error {
			c := descriptor(t, children[i])
			body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
				"manifests": []any{map[string]any{"mediaType": c.MediaType, "digest": c.Digest.String(), "size": c.Size}}})
			resp, b := h.do("PUT", fmt.Sprintf("/v2/ns/app/manifests/i%d", i), map[string]string{"Content-Type": "application/vnd.oci.image.index.v1+json"}, body)
			switch {
			case resp.StatusCode == http.StatusCreated:
				won++
				return h.pullable(h.tag("ns/app", fmt.Sprintf("i%d", i)), 0)
			case resp.StatusCode/100 == 4 && strings.Contains(string(b), `"MANIFEST_UNKNOWN"`):
				lost++
				return nil
			}
			return fmt.Errorf("index PUT: %d %s", resp.StatusCode, b)
		})
		t.Logf("index PUT won %d, collector won %d", won, lost)
		h.settle()
		for i := range n {
			resp, _ := h.do("GET", fmt.Sprintf("/v2/ns/app/manifests/i%d", i), map[string]string{"Accept": "*/*"}, nil)
			if resp.StatusCode == http.StatusOK {
				h.assertPullable(h.tag("ns/app", fmt.Sprintf("i%d", i)))
			}
		}
		h.assertFixedPoint(nil)
	})
}

// 9. "Delete untagged" never removes the untagged children of a tagged
// index or Docker manifest list, however long they sit.
func TestScenario09UntaggedChildrenOfTaggedIndex(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		oci, err := random.Index(300, 1, 3)
		if err != nil {
			t.Fatal(err)
		}
		list := mutate.IndexMediaType(mutate.AppendManifests(empty.Index,
			mutate.IndexAddendum{Add: randomImage(t, 1)}, mutate.IndexAddendum{Add: randomImage(t, 1)}), types.DockerManifestList)
		h.pushIndex("ns/multi", "oci", oci)
		h.pushIndex("ns/multi", "docker", list)
		for range 3 {
			h.advance(retention)
			h.collect()
		}
		h.settle()
		h.assertPullable(h.tag("ns/multi", "oci"))
		h.assertPullable(h.tag("ns/multi", "docker"))
		if n := h.count(`SELECT COUNT(*) FROM manifest`); n != 2+3+2 {
			t.Fatalf("%d manifests, want 7", n)
		}
		h.assertFixedPoint(nil)
	})
}

// 10. A nested index referenced by two parents survives its own tag and
// one parent going; it goes with the last parent.
func TestScenario10NestedIndexTwoParents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		a, b := ociImage(t, 1), ociImage(t, 1)
		inner := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: a}, mutate.IndexAddendum{Add: b})
		p1 := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: inner}, mutate.IndexAddendum{Add: ociImage(t, 1)})
		p2 := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: inner})
		id := h.pushIndex("ns/app", "inner", inner)
		h.pushIndex("ns/app", "p1", p1)
		h.pushIndex("ns/app", "p2", p2)
		h.deleteRef(h.tag("ns/app", "inner"))
		h.settle()
		h.assertPullable(h.tag("ns/app", "p1"))
		h.assertPullable(h.tag("ns/app", "p2"))
		h.deleteRef(h.tag("ns/app", "p1"))
		h.settle()
		h.assertPullable(h.tag("ns/app", "p2"))
		if !h.hasManifest("ns/app", id) {
			t.Fatal("nested index collected while p2 lists it")
		}
		h.assertFixedPoint(nil)
		h.deleteRef(h.tag("ns/app", "p2"))
		h.settle()
		h.assertGone("ns/app", []v1.Hash{id, mustDigest(t, a), mustDigest(t, b)}, append(layerDigests(t, a), layerDigests(t, b)...)...)
		h.assertFixedPoint(nil)
	})
}

// pushReferrers pushes a signature and an SBOM of subject, by digest.
func (h *harness) pushReferrers(repo string, subject v1.Descriptor) []v1.Hash {
	h.t.Helper()
	sig := artifact(h.t, "application/vnd.dev.cosign.artifact.sig.v1+json", subject)
	sbom := artifact(h.t, "application/spdx+json", subject)
	return []v1.Hash{h.pushImage(repo, "", sig), h.pushImage(repo, "", sbom)}
}

// 11. Untagged signatures and SBOMs live as long as their subject.
func TestScenario11ReferrersLiveWithSubject(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := ociImage(t, 1)
		h.pushImage("ns/app", "v1", img)
		refs := h.pushReferrers("ns/app", descriptor(t, img))
		h.settle()
		h.assertPullable(h.tag("ns/app", "v1")) // walks the referrers
		for _, r := range refs {
			if !h.hasManifest("ns/app", r) {
				t.Fatalf("referrer %s collected while its subject lives", r)
			}
		}
		h.assertFixedPoint(nil)
	})
}

// 12. Referrers of a deleted subject are collected, whether the subject's
// tag ended or the subject was deleted by digest — once the time machine
// no longer keeps the subject: a DELETE by digest of a tagged subject
// withdraws it, and it stays restorable (with its referrers) for the window.
func TestScenario12ReferrersDieWithSubject(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		a, b := ociImage(t, 1), ociImage(t, 1)
		h.pushImage("ns/app", "a", a)
		bd := h.pushImage("ns/app", "b", b)
		ra := h.pushReferrers("ns/app", descriptor(t, a))
		rb := h.pushReferrers("ns/app", descriptor(t, b))
		h.advance(grace + time.Minute)
		h.deleteRef(h.tag("ns/app", "a"))
		h.deleteRef(h.dig("ns/app", bd))
		h.collect()
		if st := h.manifestStatus("ns/app", bd); st != http.StatusNotFound {
			t.Fatalf("GET of a manifest deleted by digest: %d, want 404", st)
		}
		for _, d := range append([]v1.Hash{bd}, rb...) {
			if !h.hasManifest("ns/app", d) {
				t.Fatalf("manifest %s collected while tag b is inside its window", d)
			}
		}
		h.settle()
		h.assertGone("ns/app", append([]v1.Hash{bd, mustDigest(t, a)}, append(ra, rb...)...))
		if n := h.count(`SELECT COUNT(*) FROM manifest`); n != 0 {
			t.Fatalf("%d manifests left", n)
		}
		h.assertFixedPoint(nil)
	})
}

// 13. An untagged artifact with a signature is collected without error:
// the signature does not keep its subject, and goes after it.
func TestScenario13SignatureDoesNotPinSubject(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := ociImage(t, 1)
		d := h.pushImage("ns/app", "", img)
		refs := h.pushReferrers("ns/app", descriptor(t, img))
		h.advance(grace + time.Minute)
		s := h.collect()
		if s.Errors != 0 {
			t.Fatalf("collection errors: %d", s.Errors)
		}
		h.assertGone("ns/app", append([]v1.Hash{d}, refs...))
		h.fixedPoint()
	})
}

// 17. Concurrent manifest deletes share blob and label rows, in different
// orders, while collectors run: no deadlock surfaces, every delete succeeds.
func TestScenario17ConcurrentDeletesNoDeadlock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		shared := []v1.Layer{randomLayer(t), randomLayer(t), randomLayer(t)}
		const n = 12
		ds := make([]v1.Hash, n)
		for i := range n {
			ls := []v1.Layer{shared[i%3], shared[(i+1)%3], shared[(i+2)%3]}
			img, err := mutate.Config(withLayers(t, ociImage(t, 0), ls...), v1.Config{Labels: map[string]string{"team": "core", "n": fmt.Sprint(i % 2), "i": fmt.Sprint(i)}})
			if err != nil {
				t.Fatal(err)
			}
			ds[i] = h.pushImage("ns/app", fmt.Sprintf("t%d", i), img)
		}
		h.advance(grace + time.Minute)
		ctx, cancel := context.WithCancel(h.ctx)
		var cw sync.WaitGroup
		for _, c := range []*gc.Collector{h.gc, h.newCollector()} {
			cw.Add(1)
			go func() {
				defer cw.Done()
				for ctx.Err() == nil {
					if s, err := c.RunOnce(ctx, gc.RunOptions{}); (err != nil && ctx.Err() == nil) || s.Errors > 0 {
						t.Errorf("RunOnce: %v (%d errors)", err, s.Errors)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}()
		}
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range n / 3 {
					i := w + 3*j
					if w == 1 {
						i = w + 3*(n/3-1-j) // another order
					}
					if err := h.tryDelete(h.dig("ns/app", ds[i])); err != nil {
						t.Errorf("delete %d: %v", i, err)
					}
				}
			}()
		}
		wg.Wait()
		cancel()
		cw.Wait()
		// Deadlocks are retried, so clients never see them, but each costs
		// PostgreSQL's deadlock_timeout: the lock order must rule them out.
		if n := h.deadlocks.Load(); n > 0 {
			t.Errorf("%d transactions deadlocked (and were retried)", n)
		}
		h.settle()
		if n := h.count(`SELECT COUNT(*) FROM blob`); n != 0 {
			t.Fatalf("%d blobs left", n)
		}
		h.assertFixedPoint(nil)
	})
}

// 18. Two collectors (two replicas) run at once against pushes and deletes:
// every step is idempotent, nothing errors, everything acknowledged pulls.
func TestScenario18TwoCollectors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		zero := time.Duration(0)
		h.pushImage("ns/app", "keep", randomImage(t, 1))
		if _, err := h.reg.SetNamespaceRetention(h.ctx, "ns", &zero); err != nil {
			t.Fatal(err)
		}
		shared := randomLayer(t)
		h.race(12, func(i int) error {
			tag := fmt.Sprintf("t%d", i%4)
			img := withLayers(t, ociImage(t, 1), shared)
			if err := h.tryPushImage("ns/app", tag, img); err != nil { // moves the tag
				return err
			}
			if i%3 == 2 {
				return h.tryDelete(h.tag("ns/app", tag))
			}
			return h.pullable(h.tag("ns/app", tag), 0)
		}, h.gc, h.newCollector())
		if n := h.deadlocks.Load(); n > 0 {
			t.Logf("%d transactions deadlocked (and were retried)", n)
		}
		h.assertPullable(h.tag("ns/app", "keep"))
		h.settle()
		h.assertPullable(h.tag("ns/app", "keep"))
		h.assertFixedPoint(nil)
	})
}

// 19. Bytes after rows: a storage failure after the rows' commit leaves
// tombstones and leaked bytes, never a row without bytes; the next run
// deletes the bytes and clears the tombstones.
func TestScenario19CrashBetweenRowsAndBytes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		keep := randomImage(t, 1)
		h.pushImage("ns/app", "keep", keep)
		gone := randomImage(t, 2)
		h.pushImage("ns/app", "gone", gone)
		h.deleteRef(h.tag("ns/app", "gone"))
		h.blobs.failDelete.Store(true)
		h.advance(pastEverything)
		h.collect()
		h.advance(pastEverything)
		h.collect()
		for _, d := range layerDigests(t, gone) {
			if h.hasBlob(d) {
				t.Fatalf("blob row %s kept", d)
			}
		}
		if n := h.count(`SELECT COUNT(*) FROM tombstone`); n != 3 {
			t.Fatalf("%d tombstones, want 3", n)
		}
		// Never a row without its bytes.
		keys := h.storedKeys()
		for _, k := range h.strings(`SELECT storage_key FROM blob`) {
			if !keys[k] {
				t.Fatalf("blob row %s has no bytes", k)
			}
		}
		h.assertPullable(h.tag("ns/app", "keep"))
		h.blobs.failDelete.Store(false)
		if _, err := h.gc.RunOnce(h.ctx, gc.RunOptions{}); err != nil {
			t.Fatal(err)
		}
		if n := h.count(`SELECT COUNT(*) FROM tombstone`); n != 0 {
			t.Fatalf("%d tombstones after the retry", n)
		}
		h.assertGone("ns/app", nil, layerDigests(t, gone)...)
		h.fixedPoint()
	})
}

// 20. Abandoned uploads: sessions are collected after the upload expiry
// with their staging bytes; staging bytes with no session (a crash before
// the session row committed) are swept.
func TestScenario20AbandonedUploads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		for i := range 3 {
			resp, body := h.do("POST", "/v2/ns/app/blobs/uploads/", nil, nil)
			h.expect(resp, body, http.StatusAccepted)
			resp, body = h.do("PATCH", resp.Header.Get("Location"), map[string]string{"Content-Type": "application/octet-stream"}, []byte(strings.Repeat("x", 100*(i+1))))
			h.expect(resp, body, http.StatusAccepted)
		}
		if _, err := h.raw.UploadAppend(h.ctx, "crashed-upload", 0, strings.NewReader("no session")); err != nil {
			t.Fatal(err)
		}
		h.advance(uploadExpiry + time.Minute)
		s := h.collect()
		if s.Deleted[review.KindUpload] != 3 {
			t.Fatalf("deleted %v, want 3 uploads", s.Deleted)
		}
		if ids := h.stagedUploads(); len(ids) != 1 || ids[0] != "crashed-upload" {
			t.Fatalf("staging after collection: %v", ids)
		}
		sw, err := h.gc.Sweep(h.ctx, gc.SweepOptions{OlderThan: grace})
		if err != nil {
			t.Fatal(err)
		}
		if sw.LeakedUploads != 1 {
			t.Fatalf("sweep: %+v", sw)
		}
		if ids := h.stagedUploads(); len(ids) != 0 {
			t.Fatalf("staging after sweep: %v", ids)
		}
		h.fixedPoint()
	})
}

// 23. Protected tags with an expiry: an expiry only ends that tag's
// lifetime into the time machine; another live (or hidden) tag still keeps
// the manifest, and the expired tag stays restorable for the window.
func TestScenario23ExpiryNeverDeletesProtectedManifest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		img := randomImage(t, 1)
		d := h.pushImage("ns/app", "release", img)
		h.retag("ns/app", "temp", d)
		at := h.clock.Now().Add(time.Hour)
		if _, err := h.reg.SetTagExpiry(h.ctx, "ns/app", "temp", registry.Expiry{At: &at}); err != nil {
			t.Fatal(err)
		}
		// A hidden pin with an expiry in the past on another manifest.
		pinned := randomImage(t, 1)
		pd := h.pushImage("ns/app", "", pinned)
		if err := h.store.Update(h.ctx, func(tx meta.Tx) error {
			_, err := tx.PutTag(h.ctx, meta.Tag{RepoID: h.repoID("ns/app"), Name: "pin", Manifest: digestOf(pd), Start: h.clock.Now(), Hidden: true})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		h.advance(2 * time.Hour)
		if s := h.collect(); s.Expired != 1 {
			t.Fatalf("expired %d, want 1", s.Expired)
		}
		h.settle()
		h.assertPullable(h.tag("ns/app", "release"))
		h.assertPullable(h.dig("ns/app", pd))
		h.assertFixedPoint(nil)
	})
}

// 25. A collector killed mid-run (its context cancelled between batches)
// loses nothing: a fresh collector finishes the work. Bytes whose delete
// never ran are flushed from their tombstones by the next RunOnce, and
// bytes with neither row nor tombstone are swept once older than the grace.
func TestScenario25CrashMidRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		var imgs []v1.Image
		for i := range 6 {
			img := randomImage(t, 2)
			imgs = append(imgs, img)
			h.pushImage("ns/app", fmt.Sprintf("t%d", i), img)
			h.deleteRef(h.tag("ns/app", fmt.Sprintf("t%d", i)))
		}
		h.pushImage("ns/app", "keep", randomImage(t, 1))
		h.advance(pastEverything)
		c := gc.New(h.store, h.blobs, func() gc.Options { o := h.opts; o.BatchSize = 2; return o }())
		ctx, cancel := context.WithCancel(h.ctx)
		batches := 0
		_, err := c.RunOnce(ctx, gc.RunOptions{Progress: func(gc.Summary) {
			if batches++; batches == 2 {
				cancel()
			}
		}})
		if err == nil {
			t.Fatal("cancelled run reported success")
		}
		// Rows deleted, bytes not: the "process" dies before its byte deletes.
		h.blobs.failDelete.Store(true)
		h.collectWith(h.newCollector(), gc.RunOptions{})
		h.advance(pastEverything)
		h.collectWith(h.newCollector(), gc.RunOptions{})
		if n := h.count(`SELECT COUNT(*) FROM tombstone`); n == 0 {
			t.Fatal("no tombstone left by the failed byte deletes")
		}
		h.blobs.failDelete.Store(false)
		stray, err := h.writeStray()
		if err != nil {
			t.Fatal(err)
		}
		h.settle()
		// The stray bytes are fresh by the real clock of the file system and
		// old by the injected clock: sweep with the grace reclaims them.
		sw, err := h.gc.Sweep(h.ctx, gc.SweepOptions{OlderThan: grace})
		if err != nil {
			t.Fatal(err)
		}
		if sw.Leaked != 1 || sw.Keys[0] != stray {
			t.Fatalf("sweep: %+v", sw)
		}
		for _, img := range imgs {
			h.assertGone("ns/app", []v1.Hash{mustDigest(t, img)}, layerDigests(t, img)...)
		}
		h.assertPullable(h.tag("ns/app", "keep"))
		h.assertFixedPoint(nil)
	})
}

// writeStray commits bytes through a staging upload, with no row, and
// returns their key.
func (h *harness) writeStray() (string, error) {
	b := []byte("stray bytes")
	if _, err := h.raw.UploadAppend(h.ctx, "stray", 0, strings.NewReader(string(b))); err != nil {
		return "", err
	}
	key, _, err := h.raw.UploadCommit(h.ctx, "stray", digest.FromBytes(b))
	return key, err
}

// 29. A "touch on every read" protection becomes a row-lock hotspot. A read
// writes only when a review of what it read is due within the grace, and
// then postpones it to 1.5 graces from now: a hot blob is written at most
// once per half grace, and every reader keeps a full grace.
func TestScenario29ReadsWriteOnlyWhenReviewNear(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		d := h.pushBlob("ns/hot", []byte("hot layer"))
		reviewAt := func() time.Time {
			t.Helper()
			var at time.Time
			err := h.store.View(h.ctx, func(tx meta.Tx) error {
				r, err := tx.Repository(h.ctx, "ns/hot", meta.LockNone)
				if err != nil {
					return err
				}
				var pending bool
				at, pending, err = tx.PendingReview(h.ctx, review.KindUploadedBlob, review.RepoDigestObject(r.ID, digest.Digest(d.String())))
				if !pending && err == nil {
					t.Fatal("uploaded-blob review is not pending")
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return at
		}
		head := func() {
			t.Helper()
			if st := h.headBlob("ns/hot", d); st != http.StatusOK {
				t.Fatalf("HEAD: %d", st)
			}
		}
		h.advance(time.Minute)
		head() // the first read after the push: the review is due within a grace
		revived := h.clock.Now().Add(grace + grace/2)
		if got := reviewAt(); !got.Equal(revived) {
			t.Fatalf("first read: review at %v, want %v", got, revived)
		}
		for i := 0; i < 5; i++ { // the next half grace of reads writes nothing
			h.advance(grace / 10)
			head()
		}
		if got := reviewAt(); !got.Equal(revived) {
			t.Errorf("reads within half a grace moved the review again: got %v, want %v", got, revived)
		}
		h.advance(grace / 10) // less than a grace left: the next read revives
		head()
		if got, want := reviewAt(), h.clock.Now().Add(grace+grace/2); !got.Equal(want) {
			t.Errorf("a read with less than a grace left: review at %v, want %v", got, want)
		}
		// Every reader kept a full grace: a manifest referencing the blob a
		// grace minus a minute after the last read is accepted.
		h.advance(grace - time.Minute)
		h.collect()
		cfg := configBlob("hot")
		cd := h.pushBlob("ns/hot", cfg)
		body := imageManifest(cd, int64(len(cfg)), map[digest.Digest]int64{d: int64(len("hot layer"))})
		if st, b := h.putManifest("ns/hot", "v1", "application/vnd.oci.image.manifest.v1+json", body); st != http.StatusCreated {
			t.Fatalf("PUT a grace after the last read: %d %s", st, b)
		}
	})
}

// 12b. One run collects a subject whose tag left the time machine and, in
// the same run, the referrers it kept: a client that collects once sees
// no signature of an image that is gone.
func TestScenario12bReferrersGoInTheSameRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		a := ociImage(t, 1)
		h.pushImage("ns/app", "a", a)
		ra := h.pushReferrers("ns/app", descriptor(t, a))
		h.deleteRef(h.tag("ns/app", "a"))
		h.advance(retention + grace)
		h.collect()
		h.assertGone("ns/app", append([]v1.Hash{mustDigest(t, a)}, ra...))
	})
}
