package metatest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth/berth/internal/meta"
)

// withManifest creates the repository and stores one manifest in it, so
// that the catalog (Repositories) lists it.
func withManifest(t *testing.T, s meta.Store, name string) meta.Repository {
	t.Helper()
	r := repo(t, s, name)
	putManifest(t, s, meta.Manifest{RepoID: r.ID, Digest: dg(name), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Size: int64(len(name)), Body: []byte(name), PushedAt: t0}, meta.ManifestEdges{})
	return r
}

// The catalog lists only repositories holding a manifest, and pages
// through exactly those.
func testCatalogFilter(t *testing.T, s meta.Store) {
	ctx := context.Background()
	for _, n := range []string{"a/one", "b/two", "c/three"} {
		withManifest(t, s, n)
	}
	repo(t, s, "a/empty")
	blobIn(t, s, repo(t, s, "a/blobs-only").ID, "only a blob")
	up := repo(t, s, "b/upload-only")
	update(t, s, func(tx meta.Tx) error {
		return tx.CreateUpload(ctx, meta.Upload{ID: "u-catalog", RepoID: up.ID, StartedAt: t0, UpdatedAt: t0})
	})
	var pages [][]string
	view(t, s, func(tx meta.Tx) error {
		last := ""
		for range 5 {
			page, err := tx.Repositories(ctx, "", last, 1)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			pages = append(pages, page)
			last = page[len(page)-1]
		}
		return nil
	})
	if diff := cmp.Diff([][]string{{"a/one"}, {"b/two"}, {"c/three"}}, pages); diff != "" {
		t.Errorf("pages of 1 (-want +got):\n%s", diff)
	}
	view(t, s, func(tx meta.Tx) error {
		got, err := tx.Repositories(ctx, "", "", 10)
		if diff := cmp.Diff([]string{"a/one", "b/two", "c/three"}, got); diff != "" || err != nil {
			t.Errorf("one page (%v) (-want +got):\n%s", err, diff)
		}
		return nil
	})
}

// A namespace is created explicitly or by a write to one of its
// repositories; setting its window never creates it.
func testNamespaces(t *testing.T, s meta.Store) {
	ctx := context.Background()
	ret := 72 * time.Hour
	err := s.Update(ctx, func(tx meta.Tx) error {
		_, err := tx.SetNamespaceRetention(ctx, "nobody", &ret)
		return err
	})
	if !errors.Is(err, meta.ErrNotFound) {
		t.Errorf("SetNamespaceRetention of an unknown namespace: got %v, want ErrNotFound", err)
	}
	view(t, s, func(tx meta.Tx) error {
		if _, err := tx.Namespace(ctx, "nobody", meta.LockNone); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("namespace after a refused SetNamespaceRetention: got %v, want ErrNotFound", err)
		}
		return nil
	})
	for i, want := range []bool{true, false} {
		other := time.Hour * time.Duration(i+1)
		r := &ret
		if i > 0 {
			r = &other // ignored: the namespace exists
		}
		update(t, s, func(tx meta.Tx) error {
			ns, created, err := tx.CreateNamespace(ctx, "acme", r)
			if err != nil {
				return err
			}
			if created != want || ns.Name != "acme" || ns.State != meta.RepoActive || ns.TagRetention == nil || *ns.TagRetention != ret {
				t.Errorf("CreateNamespace #%d: got %+v created=%v, want acme, active, 72h, created=%v", i+1, ns, created, want)
			}
			return nil
		})
	}
	update(t, s, func(tx meta.Tx) error {
		ns, err := tx.SetNamespaceRetention(ctx, "acme", nil)
		if err != nil || ns.TagRetention != nil {
			t.Errorf("SetNamespaceRetention(acme, nil): got %+v, %v; want the default", ns, err)
		}
		return nil
	})
}

// CountUploads counts the sessions active after a time, per repository or
// in all, up to a limit.
func testUploadCounts(t *testing.T, s meta.Store) {
	ctx := context.Background()
	a, b := repo(t, s, "ns/a"), repo(t, s, "ns/b")
	update(t, s, func(tx meta.Tx) error {
		for i, u := range []meta.Upload{
			{ID: "a0", RepoID: a.ID, StartedAt: t0, UpdatedAt: t0},
			{ID: "a1", RepoID: a.ID, StartedAt: t0, UpdatedAt: t0.Add(time.Minute)},
			{ID: "a2", RepoID: a.ID, StartedAt: t0, UpdatedAt: t0.Add(2 * time.Minute)},
			{ID: "b0", RepoID: b.ID, StartedAt: t0, UpdatedAt: t0.Add(2 * time.Minute)},
		} {
			if err := tx.CreateUpload(ctx, u); err != nil {
				return fmt.Errorf("upload %d: %w", i, err)
			}
		}
		return nil
	})
	count := func(repoID int64, since time.Time, limit int) int {
		t.Helper()
		var n int
		view(t, s, func(tx meta.Tx) (err error) {
			n, err = tx.CountUploads(ctx, repoID, since, limit)
			return err
		})
		return n
	}
	for _, tc := range []struct {
		name   string
		repoID int64
		since  time.Time
		limit  int
		want   int
	}{
		{"all of a", a.ID, t0.Add(-time.Second), 10, 3},
		{"a after t0 (t0 itself is not after)", a.ID, t0, 10, 2},
		{"a, stopped at the limit", a.ID, t0.Add(-time.Second), 2, 2},
		{"b", b.ID, t0, 10, 1},
		{"every repository", 0, t0.Add(-time.Second), 10, 4},
		{"every repository after 1m", 0, t0.Add(time.Minute), 10, 2},
	} {
		if got := count(tc.repoID, tc.since, tc.limit); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
	update(t, s, func(tx meta.Tx) error { return tx.SetUploadSize(ctx, "a0", 1, t0.Add(time.Hour)) })
	if got := count(a.ID, t0.Add(30*time.Minute), 10); got != 1 {
		t.Errorf("a after an append to a0: got %d active after t0+30m, want 1", got)
	}
}

// Under LockRepoUploads, concurrent transactions that count a repository's
// sessions and insert one below a cap never overshoot it: the count and the
// insert are atomic per repository. (Without the lock, PostgreSQL's READ
// COMMITTED lets several see cap-1 and all insert.)
func testUploadLockSerializes(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := repo(t, s, "ns/capped")
	const capacity, writers = 3, 12
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Update(ctx, func(tx meta.Tx) error {
				if err := tx.LockRepoUploads(ctx, r.ID); err != nil {
					return err
				}
				n, err := tx.CountUploads(ctx, r.ID, t0.Add(-time.Hour), capacity)
				if err != nil || n >= capacity {
					return err
				}
				time.Sleep(5 * time.Millisecond) // widen the window a race would need
				return tx.CreateUpload(ctx, meta.Upload{ID: fmt.Sprint("cap-", i), RepoID: r.ID, StartedAt: t0, UpdatedAt: t0})
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("capped insert: %v", err)
		}
	}
	view(t, s, func(tx meta.Tx) error {
		ups, err := tx.RepoUploads(ctx, r.ID, 100)
		if len(ups) != capacity {
			t.Errorf("sessions after %d concurrent capped inserts: got %d (%v), want %d", writers, len(ups), err, capacity)
		}
		return nil
	})
}
