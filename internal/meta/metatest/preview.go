package metatest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
)

// testPreviewReads: ManifestNodes reads a set of manifests with every edge
// a preview walks (parents, children, referrers, blobs with sizes, the
// subject and whether it is stored, withdrawal), leaving out digests not
// stored in the repository; BlobUses counts a blob's users in every
// repository, withdrawn manifests included.
func testPreviewReads(t *testing.T, s meta.Store) {
	ctx := context.Background()
	a, b := repo(t, s, "ns/a"), repo(t, s, "other/b")
	cfg1, cfg2, shared, own := blobIn(t, s, a.ID, "cfg-1"), blobIn(t, s, a.ID, "cfg-2"), blobIn(t, s, a.ID, "shared layer"), blobIn(t, s, a.ID, "own layer")
	sig := blobIn(t, s, a.ID, "signature")
	image := "application/vnd.oci.image.manifest.v1+json"
	m1 := meta.Manifest{RepoID: a.ID, Digest: dg("m1"), MediaType: image, Size: 101, Body: []byte("m1"), PushedAt: t0}
	m2 := meta.Manifest{RepoID: a.ID, Digest: dg("m2"), MediaType: image, Size: 102, Body: []byte("m2"), PushedAt: t0}
	putManifest(t, s, m1, meta.ManifestEdges{Blobs: []digest.Digest{cfg1, shared}})
	putManifest(t, s, m2, meta.ManifestEdges{Blobs: []digest.Digest{cfg2, own}})
	index := meta.Manifest{RepoID: a.ID, Digest: dg("index"), MediaType: "application/vnd.oci.image.index.v1+json", Size: 200, Body: []byte("index"), PushedAt: t0}
	putManifest(t, s, index, meta.ManifestEdges{Children: []digest.Digest{m1.Digest, m2.Digest}})
	// A second, withdrawn index also lists m1.
	old := meta.Manifest{RepoID: a.ID, Digest: dg("old index"), MediaType: index.MediaType, Size: 150, Body: []byte("old"), PushedAt: t0}
	putManifest(t, s, old, meta.ManifestEdges{Children: []digest.Digest{m1.Digest}})
	update(t, s, func(tx meta.Tx) error { return tx.WithdrawManifest(ctx, a.ID, old.Digest, t0) })
	ref := meta.Manifest{RepoID: a.ID, Digest: dg("ref"), MediaType: image, Subject: m1.Digest, Size: 50, Body: []byte("ref"), PushedAt: t0}
	putManifest(t, s, ref, meta.ManifestEdges{Blobs: []digest.Digest{sig}})
	orphan := meta.Manifest{RepoID: a.ID, Digest: dg("orphan ref"), MediaType: image, Subject: dg("never pushed"), Size: 40, Body: []byte("o"), PushedAt: t0}
	putManifest(t, s, orphan, meta.ManifestEdges{})
	// other/b shares a layer with m1 (the same blob row, its own link).
	blobIn(t, s, b.ID, "shared layer")
	blobIn(t, s, b.ID, "cfg-b")
	putManifest(t, s, meta.Manifest{RepoID: b.ID, Digest: dg("mb"), MediaType: image, Size: 99, Body: []byte("mb"), PushedAt: t0},
		meta.ManifestEdges{Blobs: []digest.Digest{dg("cfg-b"), shared}})

	sorted := func(ds ...digest.Digest) []digest.Digest {
		out := slices.Clone(ds)
		slices.Sort(out)
		return out
	}
	blobs := func(ds ...digest.Digest) []meta.Blob {
		sizes := map[digest.Digest]int64{cfg1: 5, cfg2: 5, shared: 12, own: 9, sig: 9}
		var out []meta.Blob
		for _, d := range sorted(ds...) {
			out = append(out, meta.Blob{Digest: d, Size: sizes[d]})
		}
		return out
	}
	view(t, s, func(tx meta.Tx) error {
		got, err := tx.ManifestNodes(ctx, a.ID, []digest.Digest{m1.Digest, index.Digest, old.Digest, ref.Digest, orphan.Digest, dg("mb"), dg("absent")})
		if err != nil {
			return err
		}
		want := []meta.ManifestNode{
			{Digest: m1.Digest, Size: 101, Parents: sorted(index.Digest, old.Digest), Referrers: []digest.Digest{ref.Digest}, Blobs: blobs(cfg1, shared)},
			{Digest: index.Digest, Size: 200, Children: sorted(m1.Digest, m2.Digest)},
			{Digest: old.Digest, Size: 150, Withdrawn: true, Children: []digest.Digest{m1.Digest}},
			{Digest: ref.Digest, Size: 50, Subject: m1.Digest, SubjectStored: true, Blobs: blobs(sig)},
			{Digest: orphan.Digest, Size: 40, Subject: dg("never pushed")},
		}
		slices.SortFunc(want, func(x, y meta.ManifestNode) int { return strings.Compare(string(x.Digest), string(y.Digest)) })
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ManifestNodes (-want +got; other/b's manifest and an absent digest left out):\n%s", diff)
		}
		if none, err := tx.ManifestNodes(ctx, a.ID, nil); err != nil || len(none) != 0 {
			t.Errorf("ManifestNodes of nothing: got %v, %v, want none", none, err)
		}

		uses, err := tx.BlobUses(ctx, []digest.Digest{shared, own, sig, dg("cfg-b"), dg("no such blob")})
		if err != nil {
			return err
		}
		if diff := cmp.Diff(map[digest.Digest]int{shared: 2, own: 1, sig: 1, dg("cfg-b"): 1}, uses); diff != "" {
			t.Errorf("BlobUses (-want +got):\n%s", diff)
		}
		return nil
	})
}
