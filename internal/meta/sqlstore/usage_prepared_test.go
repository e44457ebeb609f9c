package sqlstore_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// TestUsageStatementsPrepared: on SQLite the statements a manifest PUT's
// counters and quota run are prepared once and reused, like every other
// statement of the store (stmtcache.go): once one PUT has run, the next
// ones prepare nothing.
func TestUsageStatementsPrepared(t *testing.T) {
	s := sqltest.Open(t, filepath.Join(t.TempDir(), "berth.db"))
	ctx := t.Context()
	now := time.Now()
	blobs := []digest.Digest{digest.FromString("config"), digest.FromString("layer")}
	var repo meta.Repository
	err := s.Update(ctx, func(tx meta.Tx) (err error) {
		if repo, err = tx.EnsureRepository(ctx, "team/app", now); err != nil {
			return err
		}
		for _, d := range blobs {
			if _, _, err := tx.InsertBlob(ctx, meta.Blob{Digest: d, Size: 10, StorageKey: d.Encoded(), CreatedAt: now}); err != nil {
				return err
			}
			if err := tx.LinkBlob(ctx, repo.ID, d, now); err != nil {
				return err
			}
		}
		return tx.PutQuota(ctx, meta.Quota{Limit: 1 << 40, CreatedAt: now})
	})
	if err != nil {
		t.Fatal(err)
	}
	put := func(i int) {
		t.Helper()
		body := []byte(fmt.Sprintf(`{"n":%d}`, i))
		m := meta.Manifest{RepoID: repo.ID, Digest: digest.FromBytes(body), MediaType: "application/vnd.oci.image.manifest.v1+json",
			Size: int64(len(body)), Body: body, PushedAt: now}
		err := s.Update(ctx, func(tx meta.Tx) error {
			if _, err := tx.PutManifest(ctx, m, meta.ManifestEdges{Blobs: blobs}); err != nil {
				return err
			}
			changes, err := tx.ApplyUsage(ctx)
			if err != nil {
				return err
			}
			// The first PUT creates the counter rows and reads the quota; the
			// next ones check it in their UPDATE (gainWithin).
			if len(changes) != 1 || i == 0 && (changes[0].Quota == nil || changes[0].Quota.Limit != 1<<40) || i > 0 && !changes[0].Within {
				t.Errorf("PUT %d: got changes %+v, want one namespace under the default quota", i, changes)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	put(0)
	put(1) // the first PUT into the repository crossed zeros; this one applies in place
	p0, _ := s.StatementStats()
	for i := 2; i < 6; i++ {
		put(i)
	}
	if p, _ := s.StatementStats(); p != p0 {
		t.Errorf("4 more manifest PUTs prepared %d statements, want none", p-p0)
	}
}

// TestUsageGainWithinQuota: on SQLite a namespace's gain applied in place
// is checked against the quota in its UPDATE. Within the limit and below
// the warning threshold it reports Within; reaching the threshold, or going
// past the limit, it applies the gain all the same and reports the usage
// after it and the quota in force, from which the PUT refuses or warns;
// exactly at the limit is within. The namespace's own quota wins over the
// default.
func TestUsageGainWithinQuota(t *testing.T) {
	s := sqltest.Open(t, filepath.Join(t.TempDir(), "berth.db"))
	ctx := t.Context()
	now := time.Now()
	var repo meta.Repository
	warn := 50
	err := s.Update(ctx, func(tx meta.Tx) (err error) {
		if repo, err = tx.EnsureRepository(ctx, "team/app", now); err != nil {
			return err
		}
		if err := tx.PutQuota(ctx, meta.Quota{Limit: 10, CreatedAt: now}); err != nil { // the default: never in force here
			return err
		}
		return tx.PutQuota(ctx, meta.Quota{Namespace: "team", Limit: 1000, WarnPercent: &warn, CreatedAt: now})
	})
	if err != nil {
		t.Fatal(err)
	}
	put := func(i, size int) meta.UsageChange {
		t.Helper()
		body := bytes.Repeat([]byte{byte('a' + i)}, size) // a manifest of its own each step
		m := meta.Manifest{RepoID: repo.ID, Digest: digest.FromBytes(body), MediaType: "application/vnd.oci.image.manifest.v1+json",
			Size: int64(size), Body: body, PushedAt: now}
		var c meta.UsageChange
		err := s.Update(ctx, func(tx meta.Tx) error {
			if _, err := tx.PutManifest(ctx, m, meta.ManifestEdges{}); err != nil {
				return err
			}
			changes, err := tx.ApplyUsage(ctx)
			if len(changes) != 1 {
				return fmt.Errorf("+%d: changes %+v (%v), want one", size, changes, err)
			}
			c = changes[0]
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for i, step := range []struct {
		size   int
		within bool
		after  int64
	}{
		{100, false, 100}, // the first: the row is created, the quota read
		{300, true, 0},    // 400: below the threshold (500)
		{99, true, 0},     // 499
		{1, false, 500},   // 500: reaches the threshold
		{400, true, 0},    // 900: past it already, within the limit
		{100, true, 0},    // 1000: exactly at the limit
		{1, false, 1001},  // past the limit
	} {
		c := put(i, step.size)
		if c.Within != step.within || !step.within && (c.After.Bytes != step.after || c.Quota == nil || c.Quota.Namespace != "team" || c.Quota.Limit != 1000) {
			t.Errorf("step %d (+%d): got %+v (quota %+v), want within %v, after %d under team's quota", i, step.size, c, c.Quota, step.within, step.after)
		}
	}
}
