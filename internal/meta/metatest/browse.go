package metatest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
)

const (
	mediaImage = "application/vnd.oci.image.manifest.v1+json"
	mediaIndex = "application/vnd.oci.image.index.v1+json"
)

// putTags gives the repository a live tag per name, each on d, started a
// second apart from t0.
func putTags(t *testing.T, s meta.Store, repoID int64, d digest.Digest, names ...string) {
	t.Helper()
	update(t, s, func(tx meta.Tx) error {
		for i, n := range names {
			if _, err := tx.PutTag(context.Background(), meta.Tag{RepoID: repoID, Name: n, Manifest: d, Start: t0.Add(time.Duration(i) * time.Second)}); err != nil {
				return err
			}
		}
		return nil
	})
}

// testNamespacePage: a page of namespaces in name order after its cursor,
// restricted to the public ones, to named ones, or to either, each with its
// usage counters, its own quota, its window and its active repositories
// holding a manifest.
func testNamespacePage(t *testing.T, s meta.Store) {
	ctx := context.Background()
	for _, n := range []string{"pub/app", "pub/lib", "priv/app", "other/app", "zed/app"} {
		withManifest(t, s, n)
	}
	repo(t, s, "pub/empty") // holds no manifest: not counted
	gone := withManifest(t, s, "pub/gone")
	ret := 48 * time.Hour
	warn := 80
	update(t, s, func(tx meta.Tx) error {
		for _, n := range []string{"pub", "zed"} {
			if _, err := tx.SetNamespacePublic(ctx, n, true); err != nil {
				return err
			}
		}
		if _, err := tx.SetNamespaceRetention(ctx, "priv", &ret); err != nil {
			return err
		}
		if err := tx.SetRepositoryState(ctx, gone.ID, meta.RepoDeleting); err != nil {
			return err
		}
		return tx.PutQuota(ctx, meta.Quota{Namespace: "priv", Limit: 1 << 20, WarnPercent: &warn, CreatedAt: t0, CreatedBy: "user:root"})
	})
	names := func(ns []meta.NamespaceSummary) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.Name)
		}
		return out
	}
	view(t, s, func(tx meta.Tx) error {
		for _, c := range []struct {
			f    meta.NamespaceFilter
			want []string
		}{
			{meta.NamespaceFilter{Limit: 10}, []string{"other", "priv", "pub", "zed"}},
			{meta.NamespaceFilter{Limit: 2}, []string{"other", "priv"}},
			{meta.NamespaceFilter{After: "priv", Limit: 2}, []string{"pub", "zed"}},
			{meta.NamespaceFilter{After: "zed", Limit: 2}, nil},
			{meta.NamespaceFilter{Limit: 10, PublicOnly: true}, []string{"pub", "zed"}},
			{meta.NamespaceFilter{Limit: 10, Names: []string{"priv", "nobody"}}, []string{"priv"}},
			{meta.NamespaceFilter{Limit: 10, Names: []string{}}, nil},
			{meta.NamespaceFilter{Limit: 10, Names: []string{"priv"}, PublicOnly: true}, []string{"priv", "pub", "zed"}},
			{meta.NamespaceFilter{After: "priv", Limit: 1, Names: []string{"priv", "other"}, PublicOnly: true}, []string{"pub"}},
			{meta.NamespaceFilter{Limit: 10, Names: []string{}, PublicOnly: true}, []string{"pub", "zed"}},
		} {
			got, err := tx.NamespacePage(ctx, c.f)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(c.want, names(got)); diff != "" {
				t.Errorf("NamespacePage(%+v) (-want +got):\n%s", c.f, diff)
			}
		}
		got, err := tx.NamespacePage(ctx, meta.NamespaceFilter{Limit: 10})
		if err != nil {
			return err
		}
		for _, n := range got {
			row, err := tx.Namespace(ctx, n.Name, meta.LockNone)
			if err != nil {
				return err
			}
			u, err := tx.NamespaceUsage(ctx, row.ID)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(row, n.Namespace); diff != "" {
				t.Errorf("namespace %s (-want +got):\n%s", n.Name, diff)
			}
			if n.Usage != u || u.Manifests == 0 {
				t.Errorf("namespace %s: usage %+v, want the counters' %+v", n.Name, n.Usage, u)
			}
			want := map[string]int{"pub": 2}[n.Name]
			if want == 0 {
				want = 1
			}
			if n.Repositories != want {
				t.Errorf("namespace %s: %d repositories, want %d", n.Name, n.Repositories, want)
			}
			var wantQuota *meta.Quota
			if n.Name == "priv" {
				wantQuota = &meta.Quota{Namespace: "priv", Limit: 1 << 20, WarnPercent: &warn, CreatedAt: t0, CreatedBy: "user:root"}
			}
			if diff := cmp.Diff(wantQuota, n.Quota); diff != "" {
				t.Errorf("namespace %s: quota (-want +got):\n%s", n.Name, diff)
			}
		}
		return nil
	})
}

// testRepositoryPage: a namespace's active repositories holding a
// manifest, in name order after the cursor — the one named like the
// namespace included, those of namespaces whose names extend it left out —
// with their usage, live tags (not hidden, not expired, not ended) counted
// up to a cap, and the latest tag start.
func testRepositoryPage(t *testing.T, s meta.Store) {
	ctx := context.Background()
	var repos []meta.Repository
	for _, n := range []string{"app", "app/a", "app/b/c", "app/d", "app-x/a", "app.y/a", "app0/a", "ap/a"} {
		repos = append(repos, withManifest(t, s, n))
	}
	repo(t, s, "app/empty")
	a := repos[1]
	putTags(t, s, a.ID, dg("app/a"), "v1", "v2", "v3")
	exp := t0.Add(time.Hour)
	update(t, s, func(tx meta.Tx) error {
		// v1 moves (its first lifetime ends); a hidden tag, a tag that
		// expires at exp, and one whose expiry passed at t0.
		if _, err := tx.PutTag(ctx, meta.Tag{RepoID: a.ID, Name: "v1", Manifest: dg("app/a"), Start: t0.Add(time.Minute)}); err != nil {
			return err
		}
		if _, err := tx.PutTag(ctx, meta.Tag{RepoID: a.ID, Name: "pin", Manifest: dg("app/a"), Start: t0.Add(2 * time.Minute), Hidden: true}); err != nil {
			return err
		}
		if _, err := tx.PutTag(ctx, meta.Tag{RepoID: a.ID, Name: "soon", Manifest: dg("app/a"), Start: t0, ExpiresAt: &exp}); err != nil {
			return err
		}
		past := t0
		_, err := tx.PutTag(ctx, meta.Tag{RepoID: a.ID, Name: "gone", Manifest: dg("app/a"), Start: t0, ExpiresAt: &past})
		return err
	})
	now := t0.Add(30 * time.Minute)
	view(t, s, func(tx meta.Tx) error {
		ns, err := tx.Namespace(ctx, "app", meta.LockNone)
		if err != nil {
			return err
		}
		page := func(after string, limit, tagCap int) []meta.RepositorySummary {
			got, err := tx.RepositoryPage(ctx, ns, now, after, limit, tagCap)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		var names []string
		for _, r := range page("", 10, 100) {
			names = append(names, r.Name)
		}
		if diff := cmp.Diff([]string{"app", "app/a", "app/b/c", "app/d"}, names); diff != "" {
			t.Errorf("repositories of app (-want +got):\n%s", diff)
		}
		for _, c := range []struct {
			after string
			limit int
			want  []string
		}{
			{"", 2, []string{"app", "app/a"}},
			{"app/a", 2, []string{"app/b/c", "app/d"}},
			{"app/d", 2, nil},
			{"aaa", 1, []string{"app"}},
		} {
			names = nil
			for _, r := range page(c.after, c.limit, 100) {
				names = append(names, r.Name)
			}
			if diff := cmp.Diff(c.want, names); diff != "" {
				t.Errorf("page after %q, %d (-want +got):\n%s", c.after, c.limit, diff)
			}
		}
		got := page("app", 1, 100)
		u, err := tx.RepositoryUsage(ctx, a.ID)
		if err != nil {
			return err
		}
		last := t0.Add(2 * time.Minute)
		want := meta.RepositorySummary{Repository: a, Usage: u, Tags: 4, LastTagged: &last} // v1, v2, v3, soon
		if diff := cmp.Diff([]meta.RepositorySummary{want}, got); diff != "" {
			t.Errorf("app/a (-want +got):\n%s", diff)
		}
		if got := page("app", 1, 2); len(got) != 1 || got[0].Tags != 3 {
			t.Errorf("app/a with a cap of 2: %+v, want 3 tags (more than the cap)", got)
		}
		if got := page("", 1, 100); len(got) != 1 || got[0].Tags != 0 || got[0].LastTagged != nil || got[0].Usage.Manifests != 1 {
			t.Errorf("app: %+v, want no tag, one manifest", got)
		}
		return nil
	})
}

// testLiveTagPage: live tags that are not hidden, in name order after the
// cursor, narrowed to a prefix; LiveTagNames picks the live ones of a set of
// names.
func testLiveTagPage(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := withManifest(t, s, "ns/tags")
	d := dg("ns/tags")
	putTags(t, s, r.ID, d, "a", "b", "b-1", "b.2", "b1", "b10", "b2", "ba", "c", "v1.0", "v1.0.1", "v1.1", "v10")
	past := t0.Add(-time.Minute)
	update(t, s, func(tx meta.Tx) error {
		if _, err := tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: "b3", Manifest: d, Start: t0, Hidden: true}); err != nil {
			return err
		}
		if _, err := tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: "b4", Manifest: d, Start: t0, ExpiresAt: &past}); err != nil {
			return err
		}
		live, err := tx.LiveTag(ctx, r.ID, "c", t0)
		if err != nil {
			return err
		}
		return tx.EndTag(ctx, live.ID, t0, "user:a", meta.CauseDeleted)
	})
	view(t, s, func(tx meta.Tx) error {
		for _, c := range []struct {
			after, prefix string
			limit         int
			want          []string
		}{
			{"", "", 100, []string{"a", "b", "b-1", "b.2", "b1", "b10", "b2", "ba", "v1.0", "v1.0.1", "v1.1", "v10"}},
			{"", "", 3, []string{"a", "b", "b-1"}},
			{"b-1", "", 3, []string{"b.2", "b1", "b10"}},
			{"v10", "", 3, nil},
			{"", "b", 100, []string{"b", "b-1", "b.2", "b1", "b10", "b2", "ba"}},
			{"", "b1", 100, []string{"b1", "b10"}},
			{"b1", "b1", 100, []string{"b10"}},
			{"b.2", "b", 2, []string{"b1", "b10"}},
			{"a", "b", 2, []string{"b", "b-1"}},
			{"c", "b", 2, nil},
			{"", "v1.", 100, []string{"v1.0", "v1.0.1", "v1.1"}},
			{"", "v1.0", 100, []string{"v1.0", "v1.0.1"}},
			{"", "b3", 100, nil},
			{"", "c", 100, nil},
			{"", "z", 100, nil},
		} {
			got, err := tx.LiveTagPage(ctx, r.ID, t0, c.after, c.prefix, c.limit)
			if err != nil {
				return err
			}
			var names []string
			for _, tg := range got {
				names = append(names, tg.Name)
				if tg.RepoID != r.ID || tg.Manifest != d || tg.End != nil || tg.Hidden {
					t.Errorf("tag %+v: want a live row of the repository naming %s", tg, d)
				}
			}
			if diff := cmp.Diff(c.want, names); diff != "" {
				t.Errorf("LiveTagPage(after %q, prefix %q, %d) (-want +got):\n%s", c.after, c.prefix, c.limit, diff)
			}
		}
		got, err := tx.LiveTagNames(ctx, r.ID, []string{"v1.1", "b3", "b4", "c", "nope", "a", "a"}, t0)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{"a", "v1.1"}, got); diff != "" {
			t.Errorf("LiveTagNames (-want +got):\n%s", diff)
		}
		if got, err := tx.LiveTagNames(ctx, r.ID, nil, t0); err != nil || got != nil {
			t.Errorf("LiveTagNames of none: %v, %v", got, err)
		}
		return nil
	})
}

// testManifestSummaries: manifests with what a pull of each downloads (an
// index: its children and every distinct blob of them, each once) and the
// body of indexes only; referrers counted by subject and artifact type,
// withdrawn ones left out.
func testManifestSummaries(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r, other := repo(t, s, "ns/sum"), repo(t, s, "ns/other")
	blob := func(content string) digest.Digest { return blobIn(t, s, r.ID, content) }
	cfg1, cfg2, base, l1, l2, cache := blob("config one"), blob("config two"), blob("base layer"), blob("layer one"), blob("layer two"), blob("cache")
	m1 := meta.Manifest{RepoID: r.ID, Digest: dg("m1"), MediaType: mediaImage, Size: 300, Body: []byte("m1"), PushedAt: t0}
	m2 := meta.Manifest{RepoID: r.ID, Digest: dg("m2"), MediaType: mediaImage, Size: 310, Body: []byte("m2"), PushedAt: t0}
	putManifest(t, s, m1, meta.ManifestEdges{Blobs: []digest.Digest{cfg1, base, l1}})
	putManifest(t, s, m2, meta.ManifestEdges{Blobs: []digest.Digest{cfg2, base, l2}})
	index := meta.Manifest{RepoID: r.ID, Digest: dg("index"), MediaType: mediaIndex, Size: 500, Body: []byte(`{"manifests":[]}`), PushedAt: t0}
	putManifest(t, s, index, meta.ManifestEdges{Children: []digest.Digest{m1.Digest, m2.Digest}, Blobs: []digest.Digest{cache, base}})
	ref := func(name, artifactType string, subject digest.Digest) meta.Manifest {
		m := meta.Manifest{RepoID: r.ID, Digest: dg(name), MediaType: mediaImage, ArtifactType: artifactType, Subject: subject, Size: 10, Body: []byte(name), PushedAt: t0}
		putManifest(t, s, m, meta.ManifestEdges{})
		return m
	}
	ref("sig1", "application/vnd.dev.cosign.artifact.sig.v1+json", m1.Digest)
	ref("sig2", "application/vnd.dev.cosign.artifact.sig.v1+json", m1.Digest)
	ref("sbom", "application/spdx+json", m1.Digest)
	ref("plain", "", m1.Digest)
	withdrawn := ref("withdrawn", "application/spdx+json", m1.Digest)
	ref("on index", "application/vnd.in-toto+json", index.Digest)
	update(t, s, func(tx meta.Tx) error { return tx.WithdrawManifest(ctx, r.ID, withdrawn.Digest, t0) })
	// The same digest in another repository is not this one's.
	putManifest(t, s, meta.Manifest{RepoID: other.ID, Digest: m1.Digest, MediaType: mediaImage, Size: 300, Body: []byte("m1"), PushedAt: t0}, meta.ManifestEdges{})

	size := map[digest.Digest]int64{}
	for _, c := range []string{"config one", "config two", "base layer", "layer one", "layer two", "cache"} {
		size[dg(c)] = int64(len(c))
	}
	view(t, s, func(tx meta.Tx) error {
		got, err := tx.ManifestSummaries(ctx, r.ID, []digest.Digest{index.Digest, m1.Digest, dg("absent"), m1.Digest})
		if err != nil {
			return err
		}
		want := []meta.ManifestSummary{
			{Digest: m1.Digest, MediaType: mediaImage, Size: 300, BlobBytes: size[cfg1] + size[base] + size[l1]},
			{Digest: index.Digest, MediaType: mediaIndex, Size: 500, IndexBody: index.Body, Children: 2, ChildBytes: 610,
				BlobBytes: size[cfg1] + size[cfg2] + size[base] + size[l1] + size[l2] + size[cache]},
		}
		if want[0].Digest > want[1].Digest {
			want[0], want[1] = want[1], want[0]
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ManifestSummaries (-want +got):\n%s", diff)
		}
		for _, m := range got {
			if want := m.Size + m.ChildBytes + m.BlobBytes; m.PullSize() != want {
				t.Errorf("pull size of %s: %d, want %d", m.Digest, m.PullSize(), want)
			}
		}
		if got, err := tx.ManifestSummaries(ctx, r.ID, nil); err != nil || got != nil {
			t.Errorf("ManifestSummaries of nothing: %v, %v", got, err)
		}

		counts, err := tx.ReferrerCounts(ctx, r.ID, []digest.Digest{m1.Digest, index.Digest, m2.Digest})
		if err != nil {
			return err
		}
		wantCounts := []meta.ReferrerCount{
			{Subject: m1.Digest, ArtifactType: "", MediaType: mediaImage, Count: 1},
			{Subject: m1.Digest, ArtifactType: "application/spdx+json", MediaType: mediaImage, Count: 1},
			{Subject: m1.Digest, ArtifactType: "application/vnd.dev.cosign.artifact.sig.v1+json", MediaType: mediaImage, Count: 2},
			{Subject: index.Digest, ArtifactType: "application/vnd.in-toto+json", MediaType: mediaImage, Count: 1},
		}
		if index.Digest < m1.Digest {
			wantCounts = append(wantCounts[3:], wantCounts[:3]...)
		}
		if diff := cmp.Diff(wantCounts, counts); diff != "" {
			t.Errorf("ReferrerCounts (-want +got):\n%s", diff)
		}
		if got, err := tx.ReferrerCounts(ctx, other.ID, []digest.Digest{m1.Digest}); err != nil || len(got) != 0 {
			t.Errorf("referrers of m1 in another repository: %v, %v; want none", got, err)
		}
		return nil
	})
}
