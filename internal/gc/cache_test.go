package gc_test

// The index → blob edge: a BuildKit registry cache (image-manifest=false)
// is an index whose entries are its layers and its cache config, blobs
// rather than manifests. The PUT records them in manifest_blob, like an
// image's layers, so the rules of the manifest → blob edge keep them
// (gc.md, "Index entries that are blobs").

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

const (
	mtCacheIndex  = "application/vnd.oci.image.index.v1+json"
	mtCacheLayer  = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtCacheConfig = "application/vnd.buildkit.cacheconfig.v0"
)

// cacheEntry is one entry of a BuildKit cache index.
type cacheEntry struct {
	MediaType   string            `json:"mediaType"`
	Digest      digest.Digest     `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// cacheIndex is the index BuildKit PUTs for a registry cache.
func cacheIndex(entries []cacheEntry) []byte {
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mtCacheIndex, "manifests": entries})
	return b
}

// uploadCache uploads n fresh cache layers and a cache config to repo, plus
// the layers given in shared (already uploaded), and returns the entries of
// the index listing them, config last.
func (h *harness) uploadCache(repo string, n int, shared ...cacheEntry) []cacheEntry {
	h.t.Helper()
	entries := append([]cacheEntry(nil), shared...)
	for i := range n {
		layer := []byte(fmt.Sprintf("cache layer %d of %s at %s", i, repo, time.Now().Format(time.RFC3339Nano)))
		entries = append(entries, cacheEntry{MediaType: mtCacheLayer, Digest: h.pushBlob(repo, layer), Size: int64(len(layer)),
			Annotations: map[string]string{"buildkit/createdat": h.clock.Now().Format(time.RFC3339Nano)}})
	}
	cfg := []byte(fmt.Sprintf(`{"layers":[],"records":[],"nonce":%q}`, time.Now().Format(time.RFC3339Nano)))
	return append(entries, cacheEntry{MediaType: mtCacheConfig, Digest: h.pushBlob(repo, cfg), Size: int64(len(cfg))})
}

// pushCache uploads a cache of n fresh layers (plus shared) and PUTs its
// index as repo:tag ("" to push by digest); it returns the index's digest
// and its entries.
func (h *harness) pushCache(repo, tag string, n int, shared ...cacheEntry) (v1.Hash, []cacheEntry) {
	h.t.Helper()
	entries := h.uploadCache(repo, n, shared...)
	body := cacheIndex(entries)
	d := digest.FromBytes(body)
	ref := d.String()
	if tag != "" {
		ref = tag
	}
	if st, b := h.putManifest(repo, ref, mtCacheIndex, body); st != http.StatusCreated {
		h.t.Fatalf("cache index PUT %s:%s: %d %s", repo, ref, st, b)
	}
	return toHash(h.t, d), entries
}

func entryHashes(t testing.TB, entries []cacheEntry) []v1.Hash {
	t.Helper()
	out := make([]v1.Hash, len(entries))
	for i, e := range entries {
		out[i] = toHash(t, e.Digest)
	}
	return out
}

// assertBlobsKept checks every entry still has a blob row and pulls it.
func (h *harness) assertBlobsKept(repo string, entries []cacheEntry) {
	h.t.Helper()
	for _, e := range entries {
		if err := h.pullBlob(h.repo(repo), toHash(h.t, e.Digest)); err != nil {
			h.t.Fatalf("cache blob %s: %v", e.Digest, err)
		}
	}
}

// Edge index → blobs, tagged: a cache's blobs live while its index is
// tagged, and while it is recoverable after BuildKit moves the tag to the
// next export; they go with the index, except the ones the next export
// lists too.
func TestEdgeIndexBlobsTagged(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const repo = "ci/cache"
		first, firstEntries := h.pushCache(repo, "buildcache", 2)
		h.settle()
		h.assertPullable(h.tag(repo, "buildcache"))
		h.assertFixedPoint(nil)

		// The next export shares the first layer and moves the tag.
		second, secondEntries := h.pushCache(repo, "buildcache", 1, firstEntries[0])
		h.advance(retention - time.Minute)
		h.collect()
		h.assertPullable(h.dig(repo, first))
		h.assertBlobsKept(repo, firstEntries)

		h.settle()
		h.assertGone(repo, []v1.Hash{first}, entryHashes(t, firstEntries[1:])...)
		h.assertPullable(h.tag(repo, "buildcache"))
		if !h.hasManifest(repo, second) || !h.hasBlob(toHash(t, firstEntries[0].Digest)) {
			t.Fatal("the current cache or the layer it shares was collected")
		}
		h.assertFixedPoint(nil)

		h.deleteRef(h.tag(repo, "buildcache"))
		h.settle()
		h.assertGone(repo, []v1.Hash{second}, entryHashes(t, secondEntries)...)
		h.assertFixedPoint(nil)
	})
}

// Edge index → blobs, untagged: a cache pushed by digest keeps its blobs
// for the untagged grace, then goes with them.
func TestEdgeIndexBlobsUntagged(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const repo = "ci/cache"
		d, entries := h.pushCache(repo, "", 2)
		h.advance(grace - time.Minute)
		h.collect()
		// (Rows only: a read would revive the index, see scenario 5.)
		if !h.hasManifest(repo, d) {
			t.Fatal("untagged cache index collected inside the grace")
		}
		for _, e := range entries {
			if !h.hasBlob(toHash(t, e.Digest)) {
				t.Fatalf("blob %s of an untagged cache index collected inside the grace", e.Digest)
			}
		}
		h.advance(2 * time.Minute)
		h.collect()
		if h.hasManifest(repo, d) {
			t.Fatal("untagged cache index kept past the grace")
		}
		h.settle()
		h.assertGone(repo, []v1.Hash{d}, entryHashes(t, entries)...)
		h.assertFixedPoint(nil)
	})
}

// Deleting a cache index records the review of each of its blobs' links at
// now + grace, as for an image's layers: the blobs stay for a grace (a
// client that just saw them may reference them again), then go. A DELETE by
// digest of the tagged index withdraws it into the time machine; the
// collector deletes it once the tag's window has closed, and that deletion
// records the link reviews.
func TestEdgeIndexBlobsDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const repo = "ci/cache"
		d, entries := h.pushCache(repo, "buildcache", 2)
		h.advance(time.Hour)
		h.deleteRef(h.dig(repo, d))
		h.advance(retention + time.Minute)
		h.collect()
		if h.hasManifest(repo, d) {
			t.Fatal("withdrawn cache index kept past its tag's window")
		}
		deletedAt := us(h.clock.Now())
		for _, e := range entries {
			obj := review.RepoDigestObject(h.repoID(repo), digest.Digest(e.Digest.String()))
			if n := h.count(`SELECT COUNT(*) FROM review WHERE kind = ? AND object = ? AND review_after = ?`,
				review.KindLink, obj, deletedAt+grace.Microseconds()); n != 1 {
				t.Errorf("link review of %s: got %d at now+grace, want 1 (reviews: %v)", e.Digest, n,
					h.strings(`SELECT kind || ' ' || object || ' ' || CAST(review_after AS TEXT) FROM review`))
			}
		}
		h.advance(grace - time.Minute)
		h.collect()
		for _, e := range entries {
			if !h.hasBlob(toHash(t, e.Digest)) {
				t.Fatalf("blob %s collected inside the grace after its index's deletion", e.Digest)
			}
		}
		h.advance(2 * time.Minute)
		h.collect()
		h.assertGone(repo, []v1.Hash{d}, entryHashes(t, entries)...)
		h.fixedPoint()
	})
}

// 8, for blob entries: a cache index PUT races the collection of its
// blobs (their upload markers expired). The PUT locks each link and blob
// FOR SHARE, as for an image's layers, so either the PUT wins and the cache
// pulls, or the collector wins and the PUT answers MANIFEST_BLOB_UNKNOWN;
// never an index listing a blob that is gone.
func TestScenario08CacheIndexPutWhileBlobsCollected(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const n = 10
		caches := make([][]cacheEntry, n)
		for i := range n {
			caches[i] = h.uploadCache("ci/cache", 1)
		}
		h.advance(grace + time.Minute) // every upload marker has expired
		won, lost := 0, 0
		h.race(n, func(i int) error {
			tag := fmt.Sprintf("c%d", i)
			resp, b := h.do("PUT", "/v2/ci/cache/manifests/"+tag, map[string]string{"Content-Type": mtCacheIndex}, cacheIndex(caches[i]))
			switch {
			case resp.StatusCode == http.StatusCreated:
				won++
				return h.pullable(h.tag("ci/cache", tag), 0)
			case resp.StatusCode == http.StatusNotFound && strings.Contains(string(b), `"MANIFEST_BLOB_UNKNOWN"`):
				lost++
				return nil
			}
			return fmt.Errorf("cache index PUT: %d %s", resp.StatusCode, b)
		})
		t.Logf("cache index PUT won %d, collector won %d", won, lost)
		h.settle()
		for i := range n {
			tag := fmt.Sprintf("c%d", i)
			resp, _ := h.do("GET", "/v2/ci/cache/manifests/"+tag, map[string]string{"Accept": "*/*"}, nil)
			if resp.StatusCode == http.StatusOK {
				h.assertPullable(h.tag("ci/cache", tag))
			}
		}
		h.assertFixedPoint(nil)
	})
}

// The same race, decided in one order on purpose: the collector holds a
// cache blob's link FOR UPDATE (its link decision) when the index PUT
// arrives, then deletes the link and commits. The PUT waits (on its FOR
// SHARE lock of the link; on SQLite, for the single writer) and then sees
// the truth: a clean MANIFEST_BLOB_UNKNOWN naming the blob. (On PostgreSQL
// the manifest_blob foreign key would also catch a PUT that read the link
// without locking it: the store retries a foreign-key violation, and the
// retry sees the link gone. The lock is what the protocol states.)
func TestScenario08CacheIndexPutWaitsForLinkDecision(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const repo = "ci/cache"
		entries := h.uploadCache(repo, 1)
		victim := entries[0].Digest
		repoID := h.repoID(repo)
		locked := make(chan struct{})
		release := make(chan struct{})
		collected := make(chan error, 1)
		go func() {
			collected <- h.store.Update(h.ctx, func(tx meta.Tx) error {
				if _, err := tx.RepoBlob(h.ctx, repoID, victim, meta.LockUpdate); err != nil {
					return err
				}
				select {
				case <-locked:
				default:
					close(locked)
				}
				<-release
				// What the collector does with a link no manifest uses.
				if err := tx.DeleteUploadedBlob(h.ctx, repoID, victim); err != nil {
					return err
				}
				if err := tx.UnlinkBlob(h.ctx, repoID, victim); err != nil {
					return err
				}
				return tx.AddReview(h.ctx, meta.Review{Kind: review.KindBlob, Object: review.BlobObject(victim), ReviewAfter: h.clock.Now(), Reason: "test: unlinked"})
			})
		}()
		<-locked
		type result struct {
			status int
			body   []byte
		}
		put := make(chan result, 1)
		go func() {
			resp, b := h.do("PUT", "/v2/"+repo+"/manifests/buildcache", map[string]string{"Content-Type": mtCacheIndex}, cacheIndex(entries))
			put <- result{resp.StatusCode, b}
		}()
		h.waitForLockWaiter()
		close(release)
		if err := <-collected; err != nil {
			t.Fatalf("collector's transaction: %v", err)
		}
		got := <-put
		if got.status != http.StatusNotFound || !strings.Contains(string(got.body), `"MANIFEST_BLOB_UNKNOWN"`) || !strings.Contains(string(got.body), victim.String()) {
			t.Fatalf("index PUT racing the link's deletion: got %d %s, want 404 MANIFEST_BLOB_UNKNOWN naming %s", got.status, got.body, victim)
		}
		h.fixedPoint()
	})
}

// waitForLockWaiter waits until another session waits on a row lock
// (PostgreSQL), or a moment for the request to reach the store (SQLite,
// where it waits for the single writer connection, invisibly).
func (h *harness) waitForLockWaiter() {
	h.t.Helper()
	if h.store.Dialect() != "postgres" {
		time.Sleep(200 * time.Millisecond)
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if h.count(`SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatal("no session waits on the locked link after 10s")
}
