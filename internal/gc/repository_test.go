package gc_test

import (
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// An empty repository is collected (gc.md, "Empty repositories"): one
// created by a bare POST whose session expired, one whose only upload was
// cancelled, one whose images were all collected. A repository a write holds
// is left alone and reviewed again later. The namespace row stays.
func TestEmptyRepositoryCollected(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		hasRepo := func(name string) bool {
			return h.count(`SELECT COUNT(*) FROM repository WHERE name = ?`, name) == 1
		}
		// A bare POST, left to expire.
		resp, body := h.do("POST", "/v2/empty/bare/blobs/uploads/", nil, nil)
		h.expect(resp, body, http.StatusAccepted)
		// A POST cancelled at once.
		resp, body = h.do("POST", "/v2/empty/cancelled/blobs/uploads/", nil, nil)
		h.expect(resp, body, http.StatusAccepted)
		resp, body = h.do("DELETE", resp.Header.Get("Location"), nil, nil)
		h.expect(resp, body, http.StatusNoContent)
		// An image whose tag is deleted: empty once everything is collected.
		img := ociImage(t, 1)
		d := h.pushImage("empty/image", "v1", img)
		h.deleteRef(h.tag("empty/image", "v1"))

		h.advance(grace / 2)
		h.collect()
		for _, name := range []string{"empty/bare", "empty/cancelled", "empty/image"} {
			if !hasRepo(name) {
				t.Fatalf("repository %s collected within a grace of its last write", name)
			}
		}
		h.settle()
		for _, name := range []string{"empty/bare", "empty/cancelled", "empty/image"} {
			if hasRepo(name) {
				t.Errorf("empty repository %s still stored", name)
			}
		}
		h.assertGone("empty/image", []v1.Hash{d}, layerDigests(t, img)...)
		if n := h.count(`SELECT COUNT(*) FROM namespace WHERE name = ?`, "empty"); n != 1 {
			t.Errorf("namespace rows of empty: %d, want 1 (namespaces stay)", n)
		}
		h.assertFixedPoint(nil)
		// The name works again at once.
		h.pushImage("empty/bare", "v1", img)
		h.assertPullable(h.tag("empty/bare", "v1"))

		if !strings.HasPrefix(h.backend, "postgres") {
			return // SQLite has one writer: no write can hold the row meanwhile
		}
		// A write in flight holds the repository FOR SHARE: the review is
		// moved later, the collector does not wait.
		resp, body = h.do("POST", "/v2/empty/busy/blobs/uploads/", nil, nil)
		h.expect(resp, body, http.StatusAccepted)
		resp, body = h.do("DELETE", resp.Header.Get("Location"), nil, nil)
		h.expect(resp, body, http.StatusNoContent)
		tx, err := h.store.DB().BeginTx(h.ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(h.ctx, `SELECT id FROM repository WHERE name = $1 FOR SHARE`, "empty/busy"); err != nil {
			t.Fatal(err)
		}
		h.advance(2 * grace)
		h.collect()
		if !hasRepo("empty/busy") {
			t.Fatal("repository collected while a transaction held it")
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		h.settle()
		if hasRepo("empty/busy") {
			t.Error("empty repository still stored after the write that held it ended")
		}
		h.assertFixedPoint(nil)
	})
}
