package sqlstore_test

import (
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
			if len(changes) != 1 || changes[0].Quota == nil || changes[0].Quota.Limit != 1<<40 {
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
