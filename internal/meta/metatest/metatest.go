// Package metatest is the behavioural suite of meta.Store, run against every
// backend (sqlstore on SQLite and on PostgreSQL).
package metatest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// Run runs every behaviour test on stores made by newStore (fresh each call).
func Run(t *testing.T, newStore func(t *testing.T) meta.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s meta.Store)
	}{
		{"Repositories", testRepositories},
		{"TagLifetimes", testTagLifetimes},
		{"TagExpiry", testTagExpiry},
		{"TagActors", testTagActors},
		{"EndLiveTags", testEndLiveTags},
		{"ForgetTags", testForgetTags},
		{"ManifestEdges", testManifestEdges},
		{"Withdrawn", testWithdrawn},
		{"Referrers", testReferrers},
		{"Labels", testLabels},
		{"BlobsAndLinks", testBlobsAndLinks},
		{"Tombstones", testTombstones},
		{"Uploads", testUploads},
		{"Reviews", testReviews},
		{"ScheduleReviewsCause", testScheduleReviewsCause},
		{"ConcurrentTagMoves", testConcurrentTagMoves},
		{"ConcurrentRePuts", testConcurrentRePuts},
		{"LockBlocksCollector", testLockBlocksCollector},
		{"RollbackLeavesNothing", testRollback},
		{"ViewIsOneSnapshot", testViewSnapshot},
		{"CatalogFilter", testCatalogFilter},
		{"Namespaces", testNamespaces},
		{"UploadCounts", testUploadCounts},
		{"UploadLockSerializes", testUploadLockSerializes},
		{"Accounts", testAccounts},
		{"Grants", testGrants},
		{"NamespacePublic", testNamespacePublic},
		{"SigningKeys", testSigningKeys},
		{"Sessions", testSessions},
		{"Policies", testPolicies},
		{"PolicyTags", testPolicyTags},
		{"ExpediteReview", testExpediteReview},
		{"PreviewReads", testPreviewReads},
		{"NamespacePage", testNamespacePage},
		{"RepositoryPage", testRepositoryPage},
		{"LiveTagPage", testLiveTagPage},
		{"ManifestSummaries", testManifestSummaries},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func dg(s string) digest.Digest { return digest.FromString(s) }

func update(t *testing.T, s meta.Store, fn func(tx meta.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func view(t *testing.T, s meta.Store, fn func(tx meta.Tx) error) {
	t.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		t.Fatalf("view: %v", err)
	}
}

func repo(t *testing.T, s meta.Store, name string) meta.Repository {
	t.Helper()
	var r meta.Repository
	update(t, s, func(tx meta.Tx) (err error) {
		r, err = tx.EnsureRepository(context.Background(), name, t0)
		return err
	})
	return r
}

// blobIn stores a blob row and links it to the repository.
func blobIn(t *testing.T, s meta.Store, repoID int64, content string) digest.Digest {
	t.Helper()
	d := dg(content)
	update(t, s, func(tx meta.Tx) error {
		ctx := context.Background()
		if _, _, err := tx.InsertBlob(ctx, meta.Blob{Digest: d, Size: int64(len(content)), StorageKey: fmt.Sprintf("k/%x/%d", sha256.Sum256([]byte(content)), repoID), CreatedAt: t0}); err != nil {
			return err
		}
		return tx.LinkBlob(ctx, repoID, d, t0)
	})
	return d
}

func putManifest(t *testing.T, s meta.Store, m meta.Manifest, e meta.ManifestEdges) bool {
	t.Helper()
	var created bool
	update(t, s, func(tx meta.Tx) (err error) {
		created, err = tx.PutManifest(context.Background(), m, e)
		return err
	})
	return created
}

func testRepositories(t *testing.T, s meta.Store) {
	ctx := context.Background()
	for _, n := range []string{"b/x", "a/one", "a/two", "c/deep/er"} {
		withManifest(t, s, n)
	}
	view(t, s, func(tx meta.Tx) error {
		got, err := tx.Repositories(ctx, "", "", 2)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{"a/one", "a/two"}, got); diff != "" {
			t.Errorf("first page (-want +got):\n%s", diff)
		}
		got, _ = tx.Repositories(ctx, "", "a/two", 10)
		if diff := cmp.Diff([]string{"b/x", "c/deep/er"}, got); diff != "" {
			t.Errorf("second page (-want +got):\n%s", diff)
		}
		got, _ = tx.Repositories(ctx, "a/", "", 10)
		if diff := cmp.Diff([]string{"a/one", "a/two"}, got); diff != "" {
			t.Errorf("prefix (-want +got):\n%s", diff)
		}
		_, err = tx.Repository(ctx, "nope/nope", meta.LockNone)
		if !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("missing repository: got %v, want ErrNotFound", err)
		}
		return nil
	})
	r := repo(t, s, "a/one")
	update(t, s, func(tx meta.Tx) error { return tx.SetRepositoryState(ctx, r.ID, meta.RepoDeleting) })
	err := s.Update(ctx, func(tx meta.Tx) error {
		_, err := tx.EnsureRepository(ctx, "a/one", t0)
		return err
	})
	if !errors.Is(err, meta.ErrRepoDeleting) {
		t.Errorf("write to deleting repository: got %v, want ErrRepoDeleting", err)
	}
	update(t, s, func(tx meta.Tx) error {
		_, err := tx.DeleteManifest(ctx, r.ID, dg("a/one"))
		return err
	})
	view(t, s, func(tx meta.Tx) error {
		got, _ := tx.Repositories(ctx, "", "", 10)
		if diff := cmp.Diff([]string{"a/two", "b/x", "c/deep/er"}, got); diff != "" {
			t.Errorf("catalog hides deleting repositories (-want +got):\n%s", diff)
		}
		empty, err := tx.RepositoryIsEmpty(ctx, r.ID)
		if err != nil || !empty {
			t.Errorf("RepositoryIsEmpty: got %v, %v; want true", empty, err)
		}
		return nil
	})
	update(t, s, func(tx meta.Tx) error { return tx.DeleteRepository(ctx, r.ID) })
	ret := 48 * time.Hour
	update(t, s, func(tx meta.Tx) error {
		ns, err := tx.SetNamespaceRetention(ctx, "a", &ret)
		if err != nil {
			return err
		}
		if ns.TagRetention == nil || *ns.TagRetention != ret {
			t.Errorf("retention: got %v, want %v", ns.TagRetention, ret)
		}
		return nil
	})
}

func testTagLifetimes(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := repo(t, s, "ns/app")
	m1, m2 := dg("m1"), dg("m2")
	var ended *meta.Tag
	update(t, s, func(tx meta.Tx) (err error) {
		if ended, err = tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: "latest", Manifest: m1, Start: t0}); err != nil {
			return err
		}
		if ended != nil {
			t.Errorf("first PutTag ended %+v, want nil", ended)
		}
		ended, err = tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: "latest", Manifest: m2, Start: t0.Add(time.Minute)})
		return err
	})
	if ended == nil || ended.Manifest != m1 || ended.End == nil || !ended.End.Equal(t0.Add(time.Minute)) {
		t.Fatalf("moving a tag ended %+v, want the m1 row ended at t0+1m", ended)
	}
	view(t, s, func(tx meta.Tx) error {
		live, err := tx.LiveTag(ctx, r.ID, "latest", t0.Add(time.Hour))
		if err != nil || live.Manifest != m2 {
			t.Errorf("LiveTag: got %v %v, want m2", live.Manifest, err)
		}
		hist, _ := tx.TagHistory(ctx, r.ID, "latest", 10)
		if len(hist) != 2 || hist[0].Manifest != m2 || hist[1].Manifest != m1 {
			t.Errorf("history: got %+v, want [m2, m1]", hist)
		}
		tags, _ := tx.TagsForManifest(ctx, r.ID, m1, 10)
		if len(tags) != 1 || tags[0].LiveAt(t0.Add(time.Hour)) {
			t.Errorf("TagsForManifest(m1): got %+v, want one ended row", tags)
		}
		return nil
	})
	// Many ended rows and one live row: the live row comes first even with
	// a limit of 1.
	update(t, s, func(tx meta.Tx) error {
		for i := 0; i < 5; i++ {
			at := t0.Add(time.Duration(10+i) * time.Minute)
			if _, err := tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: fmt.Sprint("old", i), Manifest: m2, Start: at}); err != nil {
				return err
			}
			live, err := tx.LiveTag(ctx, r.ID, fmt.Sprint("old", i), at)
			if err != nil {
				return err
			}
			if err := tx.EndTag(ctx, live.ID, at.Add(time.Second), meta.ActorOperator, meta.CauseDeleted); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx meta.Tx) error {
		first, _ := tx.TagsForManifest(ctx, r.ID, m2, 1)
		if len(first) != 1 || first[0].Name != "latest" || first[0].End != nil {
			t.Errorf("TagsForManifest(m2, 1): got %+v, want the live latest row", first)
		}
		all, _ := tx.TagsForManifest(ctx, r.ID, m2, 10)
		if len(all) != 6 || all[1].Name != "old4" {
			t.Errorf("TagsForManifest(m2): got %d rows, second %q; want 6, most recently ended (old4) after the live one", len(all), all[1].Name)
		}
		return nil
	})
	update(t, s, func(tx meta.Tx) error {
		live, err := tx.LiveTag(ctx, r.ID, "latest", t0.Add(time.Hour))
		if err != nil {
			return err
		}
		return tx.EndTag(ctx, live.ID, t0.Add(2*time.Minute), meta.ActorOperator, meta.CauseDeleted)
	})
	view(t, s, func(tx meta.Tx) error {
		if _, err := tx.LiveTag(ctx, r.ID, "latest", t0.Add(time.Hour)); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("LiveTag after delete: got %v, want ErrNotFound", err)
		}
		names, _ := tx.Tags(ctx, r.ID, t0.Add(time.Hour), "", 10)
		if len(names) != 0 {
			t.Errorf("Tags after delete: got %v, want none", names)
		}
		return nil
	})
	update(t, s, func(tx meta.Tx) error {
		for i, n := range []string{"c", "a", "b"} {
			if _, err := tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: n, Manifest: m1, Start: t0.Add(time.Duration(i) * time.Second)}); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx meta.Tx) error {
		names, _ := tx.Tags(ctx, r.ID, t0.Add(time.Hour), "a", 10)
		if diff := cmp.Diff([]string{"b", "c"}, names); diff != "" {
			t.Errorf("Tags after a (-want +got):\n%s", diff)
		}
		return nil
	})
}

func testTagExpiry(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := repo(t, s, "ns/exp")
	exp := t0.Add(time.Hour)
	update(t, s, func(tx meta.Tx) error {
		_, err := tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: "v1", Manifest: dg("m"), Start: t0, ExpiresAt: &exp})
		return err
	})
	view(t, s, func(tx meta.Tx) error {
		if _, err := tx.LiveTag(ctx, r.ID, "v1", exp.Add(-time.Second)); err != nil {
			t.Errorf("before expiry: got %v, want live", err)
		}
		if _, err := tx.LiveTag(ctx, r.ID, "v1", exp); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("at expiry: got %v, want ErrNotFound", err)
		}
		if got, _ := tx.ExpiredTags(ctx, 0, exp.Add(-time.Second), 10); len(got) != 0 {
			t.Errorf("ExpiredTags before expiry: got %d rows, want 0", len(got))
		}
		if got, _ := tx.ExpiredTags(ctx, 0, exp, 10); len(got) != 1 {
			t.Errorf("ExpiredTags at expiry: got %d rows, want 1", len(got))
		}
		if got, _ := tx.ExpiredTags(ctx, r.ID, exp, 10); len(got) != 1 {
			t.Errorf("ExpiredTags of its repository: got %d rows, want 1", len(got))
		}
		if got, _ := tx.ExpiredTags(ctx, r.ID+1000, exp, 10); len(got) != 0 {
			t.Errorf("ExpiredTags of another repository: got %d rows, want 0", len(got))
		}
		return nil
	})
	// Moving an expired-but-unprocessed tag ends the old row at its expiry.
	var ended *meta.Tag
	update(t, s, func(tx meta.Tx) (err error) {
		ended, err = tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: "v1", Manifest: dg("m2"), Start: exp.Add(time.Hour)})
		return err
	})
	if ended == nil || ended.End == nil || !ended.End.Equal(exp) {
		t.Errorf("ended row: got %+v, want end at expiry %v", ended, exp)
	}
	if ended != nil && (ended.EndActor != meta.ActorCollector || ended.EndCause != meta.CauseExpired) {
		t.Errorf("ended row: got ended by %q (%q), want %q (%q)", ended.EndActor, ended.EndCause, meta.ActorCollector, meta.CauseExpired)
	}
}

// testTagActors: a lifetime records who started it, and who ended it and
// why, through PutTag (a move) and EndTag.
func testTagActors(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := repo(t, s, "ns/actors")
	alice, bob, carol := meta.UserActor("alice"), meta.RobotActor("ns+ci"), meta.UserActor("carol")
	var ended *meta.Tag
	update(t, s, func(tx meta.Tx) (err error) {
		if _, err = tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: "v1", Manifest: dg("m1"), Start: t0, StartActor: alice}); err != nil {
			return err
		}
		ended, err = tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: "v1", Manifest: dg("m2"), Start: t0.Add(time.Minute), StartActor: bob})
		return err
	})
	if ended == nil || ended.StartActor != alice || ended.EndActor != bob || ended.EndCause != meta.CauseMoved {
		t.Errorf("moved row: got %+v, want started by %q, ended by %q (moved)", ended, alice, bob)
	}
	update(t, s, func(tx meta.Tx) error {
		live, err := tx.LiveTag(ctx, r.ID, "v1", t0.Add(time.Hour))
		if err != nil {
			return err
		}
		if live.StartActor != bob || live.EndActor != "" || live.EndCause != "" {
			t.Errorf("live row: got start %q end %q (%q), want start %q and no end", live.StartActor, live.EndActor, live.EndCause, bob)
		}
		return tx.EndTag(ctx, live.ID, t0.Add(2*time.Minute), carol, meta.CauseWithdrawn)
	})
	type who struct {
		Manifest   digest.Digest
		StartActor meta.Actor
		EndActor   meta.Actor
		EndCause   meta.EndCause
	}
	view(t, s, func(tx meta.Tx) error {
		hist, err := tx.TagHistory(ctx, r.ID, "v1", 10)
		if err != nil {
			return err
		}
		var got []who
		for _, h := range hist {
			got = append(got, who{h.Manifest, h.StartActor, h.EndActor, h.EndCause})
		}
		want := []who{
			{dg("m2"), bob, carol, meta.CauseWithdrawn},
			{dg("m1"), alice, bob, meta.CauseMoved},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("history (-want +got):\n%s", diff)
		}
		return nil
	})
	// A failed EndTag (the row already ended) changes nothing.
	update(t, s, func(tx meta.Tx) error {
		hist, err := tx.TagHistory(ctx, r.ID, "v1", 1)
		if err != nil {
			return err
		}
		if err := tx.EndTag(ctx, hist[0].ID, t0.Add(time.Hour), alice, meta.CauseDeleted); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("EndTag of an ended row: got %v, want ErrNotFound", err)
		}
		again, err := tx.TagByID(ctx, hist[0].ID, meta.LockNone)
		if err != nil {
			return err
		}
		if again.EndActor != carol || again.EndCause != meta.CauseWithdrawn {
			t.Errorf("after a refused EndTag: got ended by %q (%q), want %q (withdrawn)", again.EndActor, again.EndCause, carol)
		}
		return nil
	})
}

// testEndLiveTags: EndLiveTags ends exactly the named rows live at its
// time, in the named repositories, and returns them ended; LiveTagsNamed reads
// the same rows without ending them.
func testEndLiveTags(t *testing.T, s meta.Store) {
	ctx := context.Background()
	a, b := repo(t, s, "ns/a"), repo(t, s, "ns/b")
	at := t0.Add(time.Hour)
	later, past := at.Add(time.Hour), at.Add(-time.Minute)
	update(t, s, func(tx meta.Tx) error {
		for _, nt := range []meta.Tag{
			{RepoID: a.ID, Name: "live", Manifest: dg("m1"), Start: t0},
			{RepoID: a.ID, Name: "expiring", Manifest: dg("m1"), Start: t0, ExpiresAt: &later},
			{RepoID: a.ID, Name: "expired", Manifest: dg("m1"), Start: t0, ExpiresAt: &past},
			{RepoID: a.ID, Name: "ended", Manifest: dg("m1"), Start: t0},
			{RepoID: a.ID, Name: "unnamed", Manifest: dg("m1"), Start: t0},
			{RepoID: b.ID, Name: "live", Manifest: dg("m1"), Start: t0},
		} {
			if _, err := tx.PutTag(ctx, nt); err != nil {
				return err
			}
		}
		ended, err := tx.LiveTag(ctx, a.ID, "ended", t0)
		if err != nil {
			return err
		}
		return tx.EndTag(ctx, ended.ID, t0.Add(time.Minute), meta.ActorOperator, meta.CauseDeleted)
	})
	var named []meta.RepoTag
	for _, n := range []string{"live", "expiring", "expired", "ended", "absent"} {
		named = append(named, meta.RepoTag{RepoID: a.ID, Name: n})
	}
	names := func(ts []meta.Tag) []string {
		var out []string
		for _, tg := range ts {
			out = append(out, tg.Name)
		}
		slices.Sort(out)
		return out
	}
	view(t, s, func(tx meta.Tx) error {
		live, err := tx.LiveTagsNamed(ctx, named, at)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{"expiring", "live"}, names(live)); diff != "" {
			t.Errorf("LiveTagsNamed (-want +got):\n%s", diff)
		}
		return nil
	})
	var ended []meta.Tag
	update(t, s, func(tx meta.Tx) (err error) {
		ended, err = tx.EndLiveTags(ctx, named, at, meta.ActorCollector, meta.CauseSubjectCollected)
		return err
	})
	if diff := cmp.Diff([]string{"expiring", "live"}, names(ended)); diff != "" {
		t.Errorf("EndLiveTags ended (-want +got):\n%s", diff)
	}
	for _, tg := range ended {
		if tg.RepoID != a.ID || tg.End == nil || !tg.End.Equal(at) || tg.EndActor != meta.ActorCollector || tg.EndCause != meta.CauseSubjectCollected {
			t.Errorf("ended row %s: got repo %d, end %v by %q (%q); want repo %d, end %v by collector (subject_collected)",
				tg.Name, tg.RepoID, tg.End, tg.EndActor, tg.EndCause, a.ID, at)
		}
	}
	view(t, s, func(tx meta.Tx) error {
		for _, c := range []struct {
			repo meta.Repository
			name string
			live bool
		}{{a, "live", false}, {a, "expiring", false}, {a, "unnamed", true}, {b, "live", true}} {
			if _, err := tx.LiveTag(ctx, c.repo.ID, c.name, t0); (err == nil) != c.live {
				t.Errorf("LiveTag(%s:%s) after EndLiveTags: got %v, want live %v", c.repo.Name, c.name, err, c.live)
			}
		}
		// The expired row is the expiry scan's to end, at its expiry.
		expired, err := tx.ExpiredTags(ctx, a.ID, at, 10)
		if err != nil || len(expired) != 1 || expired[0].Name != "expired" {
			t.Errorf("ExpiredTags after EndLiveTags: got %+v, %v; want the expired row, still to end", expired, err)
		}
		hist, err := tx.TagHistory(ctx, a.ID, "ended", 10)
		if err != nil || len(hist) != 1 || hist[0].EndCause != meta.CauseDeleted {
			t.Errorf("history of the ended row: got %+v, %v; want its own end (deleted)", hist, err)
		}
		return nil
	})
	update(t, s, func(tx meta.Tx) error {
		again, err := tx.EndLiveTags(ctx, named, at.Add(time.Minute), meta.ActorCollector, meta.CauseSubjectCollected)
		if err == nil && len(again) != 0 {
			t.Errorf("EndLiveTags again: got %+v, want none", again)
		}
		none, err2 := tx.EndLiveTags(ctx, nil, at, meta.ActorCollector, meta.CauseSubjectCollected)
		if err2 == nil && none != nil {
			t.Errorf("EndLiveTags of no tags: got %+v, want nil", none)
		}
		return errors.Join(err, err2)
	})
}

func testManifestEdges(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := repo(t, s, "ns/multi")
	cfg, layer := blobIn(t, s, r.ID, "config"), blobIn(t, s, r.ID, "layer")
	child := meta.Manifest{RepoID: r.ID, Digest: dg("child"), MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 5, Body: []byte("child"), PushedAt: t0}
	if !putManifest(t, s, child, meta.ManifestEdges{Blobs: []digest.Digest{cfg, layer, layer}}) {
		t.Fatal("first PutManifest: got created=false, want true")
	}
	if putManifest(t, s, meta.Manifest{RepoID: r.ID, Digest: child.Digest, MediaType: child.MediaType, Size: 5, Body: []byte("child"), PushedAt: t0.Add(time.Hour)}, meta.ManifestEdges{}) {
		t.Error("re-PUT: got created=true, want false")
	}
	index := meta.Manifest{RepoID: r.ID, Digest: dg("index"), MediaType: "application/vnd.oci.image.index.v1+json", Size: 5, Body: []byte("index"), PushedAt: t0}
	putManifest(t, s, index, meta.ManifestEdges{Children: []digest.Digest{child.Digest}})
	view(t, s, func(tx meta.Tx) error {
		m, err := tx.Manifest(ctx, r.ID, child.Digest, meta.LockNone)
		if err != nil {
			return err
		}
		if !m.PushedAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("re-PUT pushed_at: got %v, want %v", m.PushedAt, t0.Add(time.Hour))
		}
		if string(m.Body) != "child" {
			t.Errorf("body: got %q, want child", m.Body)
		}
		parents, _ := tx.ManifestParents(ctx, r.ID, child.Digest, true, 10)
		if diff := cmp.Diff([]digest.Digest{index.Digest}, parents); diff != "" {
			t.Errorf("parents (-want +got):\n%s", diff)
		}
		roots, _ := tx.RepoManifests(ctx, r.ID, 10)
		if diff := cmp.Diff([]digest.Digest{index.Digest}, roots); diff != "" {
			t.Errorf("RepoManifests lists parents only (-want +got):\n%s", diff)
		}
		used, _ := tx.LinkInUse(ctx, r.ID, layer, t0)
		if !used {
			t.Error("LinkInUse(layer): got false, want true")
		}
		return nil
	})
	// A child cannot be deleted while its parent exists.
	err := s.Update(ctx, func(tx meta.Tx) error {
		_, err := tx.DeleteManifest(ctx, r.ID, child.Digest)
		return err
	})
	if err == nil {
		t.Error("deleting a child under a live parent: got nil error, want a foreign-key error")
	}
	var refs meta.ManifestRefs
	update(t, s, func(tx meta.Tx) (err error) {
		refs, err = tx.DeleteManifest(ctx, r.ID, index.Digest)
		return err
	})
	if diff := cmp.Diff([]digest.Digest{child.Digest}, refs.Children); diff != "" {
		t.Errorf("index refs (-want +got):\n%s", diff)
	}
	update(t, s, func(tx meta.Tx) (err error) {
		refs, err = tx.DeleteManifest(ctx, r.ID, child.Digest)
		return err
	})
	if len(refs.Blobs) != 2 {
		t.Errorf("child refs: got %d blobs, want 2", len(refs.Blobs))
	}
	view(t, s, func(tx meta.Tx) error {
		if _, err := tx.Manifest(ctx, r.ID, child.Digest, meta.LockNone); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("deleted manifest: got %v, want ErrNotFound", err)
		}
		if used, _ := tx.LinkInUse(ctx, r.ID, layer, t0); used {
			t.Error("LinkInUse after delete: got true, want false")
		}
		return nil
	})
}

// testWithdrawn: a DELETE by digest withdraws a manifest (and a blob DELETE
// a link) without deleting rows; the marks are what the registry and the
// collector read, and a restore, a re-PUT or a re-link clears them.
func testWithdrawn(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := repo(t, s, "ns/tm")
	layer := blobIn(t, s, r.ID, "layer")
	child := meta.Manifest{RepoID: r.ID, Digest: dg("tm-child"), MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 5, Body: []byte("child"), PushedAt: t0}
	putManifest(t, s, child, meta.ManifestEdges{Blobs: []digest.Digest{layer}})
	index := meta.Manifest{RepoID: r.ID, Digest: dg("tm-index"), MediaType: "application/vnd.oci.image.index.v1+json", Size: 5, Body: []byte("index"), PushedAt: t0}
	putManifest(t, s, index, meta.ManifestEdges{Children: []digest.Digest{child.Digest}})
	at := t0.Add(time.Hour)
	update(t, s, func(tx meta.Tx) error {
		if err := tx.WithdrawManifest(ctx, r.ID, index.Digest, at); err != nil {
			return err
		}
		if err := tx.WithdrawManifest(ctx, r.ID, index.Digest, at); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("withdrawing twice: got %v, want ErrNotFound", err)
		}
		return tx.WithdrawManifest(ctx, r.ID, child.Digest, at)
	})
	view(t, s, func(tx meta.Tx) error {
		m, err := tx.Manifest(ctx, r.ID, index.Digest, meta.LockNone)
		if err != nil || !m.Withdrawn() || !m.DeletedAt.Equal(at) {
			t.Errorf("withdrawn index: got %+v, %v; want deleted_at %v", m.DeletedAt, err, at)
		}
		if ps, _ := tx.ManifestParents(ctx, r.ID, child.Digest, false, 10); len(ps) != 0 {
			t.Errorf("stored parents of the child: got %v, want none", ps)
		}
		if ps, _ := tx.ManifestParents(ctx, r.ID, child.Digest, true, 10); len(ps) != 1 {
			t.Errorf("all parents of the child: got %v, want the withdrawn index", ps)
		}
		if cs, _ := tx.ManifestChildren(ctx, r.ID, index.Digest); len(cs) != 1 || cs[0] != child.Digest {
			t.Errorf("children of the index: got %v", cs)
		}
		if ref, _ := tx.BlobReferenced(ctx, r.ID, layer, false); ref {
			t.Error("BlobReferenced by a stored manifest: got true, want false (only a withdrawn one)")
		}
		if ref, _ := tx.BlobReferenced(ctx, r.ID, layer, true); !ref {
			t.Error("BlobReferenced counting withdrawn manifests: got false, want true")
		}
		return nil
	})
	update(t, s, func(tx meta.Tx) error { return tx.WithdrawLink(ctx, r.ID, layer, at) })
	view(t, s, func(tx meta.Tx) error {
		if _, err := tx.RepoBlob(ctx, r.ID, layer, meta.LockNone); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("RepoBlob of a withdrawn link: got %v, want ErrNotFound", err)
		}
		if w, err := tx.Link(ctx, r.ID, layer, meta.LockNone); err != nil || !w {
			t.Errorf("Link of a withdrawn link: got %v, %v; want withdrawn", w, err)
		}
		return nil
	})
	// Restoring the child brings back its links; re-PUT of the index brings
	// it back.
	update(t, s, func(tx meta.Tx) error { return tx.RestoreManifest(ctx, r.ID, child.Digest) })
	putManifest(t, s, index, meta.ManifestEdges{Children: []digest.Digest{child.Digest}})
	view(t, s, func(tx meta.Tx) error {
		for _, d := range []digest.Digest{child.Digest, index.Digest} {
			if m, err := tx.Manifest(ctx, r.ID, d, meta.LockNone); err != nil || m.Withdrawn() {
				t.Errorf("manifest %s after restore / re-PUT: withdrawn %v, %v", d, m.Withdrawn(), err)
			}
		}
		if _, err := tx.RepoBlob(ctx, r.ID, layer, meta.LockNone); err != nil {
			t.Errorf("link after its manifest's restore: %v", err)
		}
		return nil
	})
	// LinkBlob (an upload or a mount) brings a withdrawn link back too.
	update(t, s, func(tx meta.Tx) error {
		if err := tx.WithdrawLink(ctx, r.ID, layer, at); err != nil {
			return err
		}
		return tx.LinkBlob(ctx, r.ID, layer, at)
	})
	view(t, s, func(tx meta.Tx) error {
		if w, err := tx.Link(ctx, r.ID, layer, meta.LockNone); err != nil || w {
			t.Errorf("link after LinkBlob: withdrawn %v, %v", w, err)
		}
		return nil
	})
}

func testReferrers(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := repo(t, s, "ns/ref")
	subject := dg("subject")
	for i, at := range []string{"application/sig", "application/sbom", "application/sig"} {
		putManifest(t, s, meta.Manifest{RepoID: r.ID, Digest: dg(fmt.Sprint("ref", i)), MediaType: "application/vnd.oci.image.manifest.v1+json",
			ArtifactType: at, Subject: subject, Size: 1, Body: []byte("{}"), PushedAt: t0}, meta.ManifestEdges{})
	}
	update(t, s, func(tx meta.Tx) error {
		all, err := tx.Referrers(ctx, r.ID, subject, "", meta.LockShare)
		if err != nil {
			return err
		}
		sigs, _ := tx.Referrers(ctx, r.ID, subject, "application/sig", meta.LockNone)
		none, _ := tx.Referrers(ctx, r.ID, dg("other"), "", meta.LockNone)
		if len(all) != 3 || len(sigs) != 2 || len(none) != 0 {
			t.Errorf("referrers: got all=%d sigs=%d none=%d, want 3 2 0", len(all), len(sigs), len(none))
		}
		return nil
	})
}

func testLabels(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := repo(t, s, "ns/lab")
	labels := map[string]string{"berth.expires-after": "2h", "org": "acme"}
	for _, n := range []string{"a", "b"} {
		putManifest(t, s, meta.Manifest{RepoID: r.ID, Digest: dg(n), MediaType: "x", Size: 1, Body: []byte(n), PushedAt: t0}, meta.ManifestEdges{Labels: labels})
	}
	var refs meta.ManifestRefs
	update(t, s, func(tx meta.Tx) (err error) {
		got, err := tx.ManifestLabels(ctx, r.ID, dg("a"))
		if err != nil {
			return err
		}
		if diff := cmp.Diff(labels, got); diff != "" {
			t.Errorf("labels (-want +got):\n%s", diff)
		}
		refs, err = tx.DeleteManifest(ctx, r.ID, dg("a"))
		return err
	})
	if len(refs.LabelIDs) != 2 {
		t.Fatalf("label refs: got %d, want 2", len(refs.LabelIDs))
	}
	update(t, s, func(tx meta.Tx) error {
		exists, used, err := tx.LabelInUse(ctx, refs.LabelIDs[0])
		if err != nil || !exists || !used {
			t.Errorf("label shared with b: got exists=%v used=%v err=%v, want true true", exists, used, err)
		}
		_, err = tx.DeleteManifest(ctx, r.ID, dg("b"))
		return err
	})
	update(t, s, func(tx meta.Tx) error {
		exists, used, err := tx.LabelInUse(ctx, refs.LabelIDs[0])
		if err != nil || !exists || used {
			t.Errorf("orphan label: got exists=%v used=%v err=%v, want true false", exists, used, err)
		}
		return tx.DeleteLabel(ctx, refs.LabelIDs[0])
	})
}

func testBlobsAndLinks(t *testing.T, s meta.Store) {
	ctx := context.Background()
	a, b := repo(t, s, "ns/a"), repo(t, s, "ns/b")
	d := blobIn(t, s, a.ID, "shared")
	update(t, s, func(tx meta.Tx) error {
		row, created, err := tx.InsertBlob(ctx, meta.Blob{Digest: d, Size: 6, StorageKey: "other-key", CreatedAt: t0})
		if err != nil {
			return err
		}
		if created || row.StorageKey == "other-key" {
			t.Errorf("InsertBlob of an existing digest: got created=%v key=%s, want the existing row", created, row.StorageKey)
		}
		if _, err := tx.RepoBlob(ctx, b.ID, d, meta.LockShare); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("RepoBlob in unlinked repo: got %v, want ErrNotFound", err)
		}
		if err := tx.LinkBlob(ctx, b.ID, d, t0); err != nil {
			return err
		}
		return tx.PutUploadedBlob(ctx, b.ID, d, t0.Add(time.Hour))
	})
	update(t, s, func(tx meta.Tx) error {
		if used, _ := tx.LinkInUse(ctx, b.ID, d, t0.Add(30*time.Minute)); !used {
			t.Error("link protected by an unexpired marker: got unused")
		}
		if used, _ := tx.LinkInUse(ctx, b.ID, d, t0.Add(time.Hour)); used {
			t.Error("link with an expired marker: got used")
		}
		exp, err := tx.UploadedBlobExpiry(ctx, b.ID, d)
		if err != nil || !exp.Equal(t0.Add(time.Hour)) {
			t.Errorf("marker expiry: got %v %v", exp, err)
		}
		if err := tx.PutUploadedBlob(ctx, b.ID, d, t0); err != nil { // never shortens
			return err
		}
		exp, _ = tx.UploadedBlobExpiry(ctx, b.ID, d)
		if !exp.Equal(t0.Add(time.Hour)) {
			t.Errorf("marker shortened to %v", exp)
		}
		if err := tx.DeleteUploadedBlob(ctx, b.ID, d); err != nil {
			return err
		}
		if err := tx.UnlinkBlob(ctx, a.ID, d); err != nil {
			return err
		}
		linked, _ := tx.BlobLinked(ctx, d)
		if !linked {
			t.Error("BlobLinked with b's link: got false")
		}
		return tx.UnlinkBlob(ctx, b.ID, d)
	})
	update(t, s, func(tx meta.Tx) error {
		if linked, _ := tx.BlobLinked(ctx, d); linked {
			t.Error("BlobLinked after unlinking all: got true")
		}
		return tx.DeleteBlob(ctx, d)
	})
	// A link to a missing blob is refused by the schema.
	err := s.Update(ctx, func(tx meta.Tx) error { return tx.LinkBlob(ctx, a.ID, dg("missing"), t0) })
	if err == nil {
		t.Error("linking a missing blob: got nil, want a foreign-key error")
	}
}

func testTombstones(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := repo(t, s, "ns/t")
	d := blobIn(t, s, r.ID, "x")
	var key string
	update(t, s, func(tx meta.Tx) error {
		b, err := tx.Blob(ctx, d, meta.LockUpdate)
		if err != nil {
			return err
		}
		key = b.StorageKey
		if err := tx.UnlinkBlob(ctx, r.ID, d); err != nil {
			return err
		}
		if err := tx.DeleteBlob(ctx, d); err != nil {
			return err
		}
		return tx.PutTombstone(ctx, meta.Tombstone{StorageKey: key, Since: t0})
	})
	view(t, s, func(tx meta.Tx) error {
		if known, _ := tx.StorageKeyKnown(ctx, key); !known {
			t.Error("key with a tombstone: got unknown")
		}
		if known, _ := tx.StorageKeyKnown(ctx, "nothing"); known {
			t.Error("key with neither: got known")
		}
		ts, _ := tx.Tombstones(ctx, 10)
		if len(ts) != 1 || ts[0].StorageKey != key {
			t.Errorf("tombstones: got %+v", ts)
		}
		return nil
	})
	// A set clears the tombstones it names; a key without one is no error.
	update(t, s, func(tx meta.Tx) error { return tx.DeleteTombstones(ctx, []string{"nothing", key}) })
	view(t, s, func(tx meta.Tx) error {
		if ts, _ := tx.Tombstones(ctx, 10); len(ts) != 0 {
			t.Errorf("tombstones after clearing: got %+v", ts)
		}
		return nil
	})
}

func testUploads(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := repo(t, s, "ns/up")
	update(t, s, func(tx meta.Tx) error {
		return tx.CreateUpload(ctx, meta.Upload{ID: "u1", RepoID: r.ID, StartedAt: t0, UpdatedAt: t0})
	})
	update(t, s, func(tx meta.Tx) error { return tx.SetUploadSize(ctx, "u1", 42, t0.Add(time.Minute)) })
	view(t, s, func(tx meta.Tx) error {
		u, err := tx.Upload(ctx, "u1", meta.LockNone)
		if err != nil || u.Size != 42 || !u.UpdatedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("upload: got %+v %v", u, err)
		}
		ups, _ := tx.RepoUploads(ctx, r.ID, 10)
		if len(ups) != 1 {
			t.Errorf("RepoUploads: got %d, want 1", len(ups))
		}
		return nil
	})
	update(t, s, func(tx meta.Tx) error { return tx.DeleteUpload(ctx, "u1") })
	view(t, s, func(tx meta.Tx) error {
		if _, err := tx.Upload(ctx, "u1", meta.LockNone); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("deleted upload: got %v, want ErrNotFound", err)
		}
		return nil
	})
}

func testReviews(t *testing.T, s meta.Store) {
	ctx := context.Background()
	add := func(obj string, at time.Time, cause review.Cause) {
		update(t, s, func(tx meta.Tx) error {
			return tx.AddReview(ctx, meta.Review{Kind: review.KindBlob, Object: obj, ReviewAfter: at, Cause: cause, Reason: "test " + string(cause)})
		})
	}
	add("b1", t0.Add(time.Hour), review.CauseUnlinked)
	add("b1", t0, review.CausePushed) // never moves earlier, nor takes the cause
	add("b2", t0.Add(-time.Hour), review.CausePushed)
	add("b2", t0, review.CauseUnlinked) // moves later with its cause and reason
	update(t, s, func(tx meta.Tx) error {
		due, err := tx.ClaimReviews(ctx, t0, meta.ReviewFilter{}, 10)
		if err != nil {
			return err
		}
		want := []meta.Review{{Kind: review.KindBlob, Object: "b2", ReviewAfter: t0, Cause: review.CauseUnlinked, Reason: "test unlinked"}}
		if diff := cmp.Diff(want, due); diff != "" {
			t.Errorf("due at t0 (-want +got):\n%s", diff)
		}
		st, _ := tx.ReviewStats(ctx, t0.Add(2*time.Hour), time.Hour)
		if st.Pending != 2 || st.Due != 2 || st.Overdue != 2 {
			t.Errorf("stats: got %+v, want 2 2 2", st)
		}
		postponed, err := tx.PostponeReview(ctx, review.KindBlob, "b2", t0.Add(3*time.Hour))
		if err != nil || !postponed {
			t.Errorf("postpone: got %v %v", postponed, err)
		}
		none, _ := tx.PostponeReview(ctx, review.KindBlob, "nothing", t0)
		if none {
			t.Error("postpone of a missing review: got true")
		}
		if err := tx.RescheduleReview(ctx, meta.Review{Kind: review.KindBlob, Object: "b1", ReviewAfter: t0.Add(-time.Hour), Cause: review.CauseManifestDeleted, Reason: "earlier"}); err != nil {
			return err
		}
		due, err = tx.ClaimReviews(ctx, t0, meta.ReviewFilter{Kinds: []review.Kind{review.KindBlob}}, 10)
		if err != nil {
			return err
		}
		if len(due) != 1 || due[0].Object != "b1" || due[0].Cause != review.CauseManifestDeleted || due[0].Reason != "earlier" || due[0].Attempts != 1 {
			t.Errorf("rescheduled b1: got %+v, want it due with cause %s, reason earlier, 1 attempt", due, review.CauseManifestDeleted)
		}
		next, _ := tx.NextReview(ctx)
		if next == nil || !next.Equal(t0.Add(-time.Hour)) {
			t.Errorf("next review: got %v, want t0-1h", next)
		}
		return tx.DeleteReview(ctx, review.KindBlob, "b1")
	})
	view(t, s, func(tx meta.Tx) error {
		if _, p, _ := tx.PendingReview(ctx, review.KindBlob, "b1"); p {
			t.Error("deleted review still pending")
		}
		if after, p, _ := tx.PendingReview(ctx, review.KindBlob, "b2"); !p || !after.Equal(t0.Add(3*time.Hour)) {
			t.Errorf("b2 review: got pending=%v at %v, want pending at t0+3h", p, after)
		}
		return nil
	})
}

// The collector's batch upsert (CollectTx.ScheduleReviews) records causes
// as AddReview does: a new row takes its cause and reason; a pending review
// takes them only with a later time; ClaimDue returns them.
func testScheduleReviewsCause(t *testing.T, s meta.Store) {
	ctx := context.Background()
	rv := func(obj string, at time.Time, cause review.Cause) meta.Review {
		return meta.Review{Kind: review.KindBlob, Object: obj, ReviewAfter: at, Cause: cause, Reason: "test " + string(cause)}
	}
	update(t, s, func(tx meta.Tx) error {
		for _, r := range []meta.Review{rv("b1", t0.Add(time.Hour), review.CauseUnlinked), rv("b2", t0.Add(-time.Hour), review.CausePushed)} {
			if err := tx.AddReview(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	update(t, s, func(tx meta.Tx) error {
		return tx.ScheduleReviews(ctx, []meta.Review{
			rv("b1", t0, review.CausePushed),        // earlier: keeps t0+1h, unlinked
			rv("b2", t0, review.CauseUnlinked),      // later: t0, unlinked
			rv("b3", t0, review.CauseParentDeleted), // new
		})
	})
	update(t, s, func(tx meta.Tx) error {
		stored, err := tx.StoredReviews(ctx, review.KindBlob, []string{"b1", "b2", "b3", "none"})
		if err != nil {
			return err
		}
		wantStored := map[string]time.Time{"b1": t0.Add(time.Hour), "b2": t0, "b3": t0}
		if diff := cmp.Diff(wantStored, stored); diff != "" {
			t.Errorf("stored reviews (-want +got):\n%s", diff)
		}
		due, err := tx.ClaimDue(ctx, review.KindBlob, t0.Add(2*time.Hour), "", 10)
		if err != nil {
			return err
		}
		slices.SortFunc(due, func(a, b meta.Review) int { return strings.Compare(a.Object, b.Object) })
		want := []meta.Review{rv("b1", t0.Add(time.Hour), review.CauseUnlinked), rv("b2", t0, review.CauseUnlinked), rv("b3", t0, review.CauseParentDeleted)}
		if diff := cmp.Diff(want, due); diff != "" {
			t.Errorf("claimed after ScheduleReviews (-want +got):\n%s", diff)
		}
		return tx.DeleteReviews(ctx, review.KindBlob, []string{"b1", "b2", "b3"})
	})
}

// Two writers moving the same tag at once: exactly one live row remains.
func testConcurrentTagMoves(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := repo(t, s, "ns/race")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- s.Update(ctx, func(tx meta.Tx) error {
				_, err := tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: "latest", Manifest: dg(fmt.Sprint(i)), Start: t0.Add(time.Duration(i) * time.Second)})
				return err
			})
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent PutTag: %v", err)
		}
	}
	view(t, s, func(tx meta.Tx) error {
		hist, _ := tx.TagHistory(ctx, r.ID, "latest", 100)
		live := 0
		for _, h := range hist {
			if h.End == nil {
				live++
			}
		}
		if len(hist) != 8 || live != 1 {
			t.Errorf("after 8 concurrent moves: got %d rows, %d live; want 8 rows, 1 live", len(hist), live)
		}
		return nil
	})
}

// Concurrent re-PUTs of one stored manifest neither deadlock nor conflict:
// each transaction runs once (a deadlock would make Update retry it).
func testConcurrentRePuts(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := repo(t, s, "ns/reput")
	m := meta.Manifest{RepoID: r.ID, Digest: dg("reput"), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Size: 5, Body: []byte("reput"), PushedAt: t0}
	putManifest(t, s, m, meta.ManifestEdges{})
	const n = 8
	var calls atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			errs <- s.Update(ctx, func(tx meta.Tx) error {
				calls.Add(1)
				again := m
				again.PushedAt = t0.Add(time.Duration(i+1) * time.Second)
				_, err := tx.PutManifest(ctx, again, meta.ManifestEdges{})
				return err
			})
		}(i)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent re-PUT: %v", err)
		}
	}
	if got := calls.Load(); got != n {
		t.Errorf("%d concurrent re-PUTs ran %d transactions: some were retried (a deadlock or a conflict)", n, got)
	}
	view(t, s, func(tx meta.Tx) error {
		got, err := tx.Manifest(ctx, r.ID, m.Digest, meta.LockNone)
		if err != nil {
			return err
		}
		if want := t0.Add(n * time.Second); !got.PushedAt.Equal(want) {
			t.Errorf("pushed_at after the re-PUTs: got %v, want the latest %v", got.PushedAt, want)
		}
		return nil
	})
}

// A writer holding a share lock on a link makes the collector's exclusive lock
// wait until it commits, and the collector then sees the writer's edge.
func testLockBlocksCollector(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := repo(t, s, "ns/lock")
	d := blobIn(t, s, r.ID, "layer")
	locked := make(chan struct{})
	release := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		writerDone <- s.Update(ctx, func(tx meta.Tx) error {
			if _, err := tx.RepoBlob(ctx, r.ID, d, meta.LockShare); err != nil {
				return err
			}
			select {
			case <-locked:
			default:
				close(locked)
			}
			<-release
			_, err := tx.PutManifest(ctx, meta.Manifest{RepoID: r.ID, Digest: dg("m"), MediaType: "x", Size: 1, Body: []byte("m"), PushedAt: t0},
				meta.ManifestEdges{Blobs: []digest.Digest{d}})
			return err
		})
	}()
	<-locked
	collectorDone := make(chan bool, 1)
	go func() {
		var used bool
		err := s.Update(ctx, func(tx meta.Tx) error {
			if _, err := tx.RepoBlob(ctx, r.ID, d, meta.LockUpdate); err != nil {
				return err
			}
			var err error
			used, err = tx.LinkInUse(ctx, r.ID, d, t0.Add(48*time.Hour))
			return err
		})
		if err != nil {
			t.Errorf("collector: %v", err)
		}
		collectorDone <- used
	}()
	select {
	case <-collectorDone:
		t.Fatal("collector decided while the writer held its lock")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	if used := <-collectorDone; !used {
		t.Error("collector after the writer committed: got link unused, want used")
	}
}

// testViewSnapshot: every statement of a View reads the same snapshot. The
// read path decides from several reads (a blob's link, then its pending
// reviews) whether it must revive what it read; on PostgreSQL's default
// READ COMMITTED a collector committing between them made a HEAD see the
// link and then no review, answer 200 and skip the revival, and the blob
// was gone under the client (found by the torture run).
func testViewSnapshot(t *testing.T, s meta.Store) {
	ctx := context.Background()
	update(t, s, func(tx meta.Tx) error {
		for _, o := range []string{"a", "b"} {
			if err := tx.AddReview(ctx, meta.Review{Kind: review.KindLink, Object: o, ReviewAfter: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	err := s.View(ctx, func(tx meta.Tx) error {
		if _, pending, err := tx.PendingReview(ctx, review.KindLink, "a"); err != nil || !pending {
			t.Fatalf("review a before the delete: pending %v, %v", pending, err)
		}
		// A writer deletes both and commits while the View is open.
		update(t, s, func(tx meta.Tx) error {
			if err := tx.DeleteReview(ctx, review.KindLink, "a"); err != nil {
				return err
			}
			return tx.DeleteReview(ctx, review.KindLink, "b")
		})
		_, pending, err := tx.PendingReview(ctx, review.KindLink, "b")
		if err != nil {
			return err
		}
		if !pending {
			t.Error("review b vanished inside the View that saw review a: a View must read one snapshot")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testRollback(t *testing.T, s meta.Store) {
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx meta.Tx) error {
		if _, err := tx.EnsureRepository(ctx, "ns/rolled", t0); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: got %v, want boom", err)
	}
	view(t, s, func(tx meta.Tx) error {
		if _, err := tx.Repository(ctx, "ns/rolled", meta.LockNone); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("rolled-back repository: got %v, want ErrNotFound", err)
		}
		return nil
	})
}
