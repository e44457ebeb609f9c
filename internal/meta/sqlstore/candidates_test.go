package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// On PostgreSQL the collector never waits for a candidate: a manifest
// another transaction holds is named skipped (it exists), an absent one is
// neither read nor skipped, and the free one is read with its facts.
func TestLockFactsSkipsHeldCandidates(t *testing.T) {
	s := sqltest.Open(t, sqltest.PostgresDSN(t))
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	held, free := digest.FromString("held"), digest.FromString("free")
	absent := digest.FromString("absent")
	var repo meta.Repository
	if err := s.Update(ctx, func(tx meta.Tx) (err error) {
		if repo, err = tx.EnsureRepository(ctx, "ns/app", t0); err != nil {
			return err
		}
		for _, d := range []digest.Digest{held, free} {
			m := meta.Manifest{RepoID: repo.ID, Digest: d, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 2, Body: []byte("{}"), PushedAt: t0}
			if _, err := tx.PutManifest(ctx, m, meta.ManifestEdges{}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	locked, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Update(ctx, func(tx meta.Tx) error {
			_, err := tx.Manifest(ctx, repo.ID, held, meta.LockShare) // a writer adding an edge
			close(locked)
			<-release
			return err
		})
	}()
	<-locked
	keys := []meta.RepoDigest{{RepoID: repo.ID, Digest: held}, {RepoID: repo.ID, Digest: free}, {RepoID: repo.ID, Digest: absent}}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := s.Update(cctx, func(tx meta.Tx) error {
		facts, skipped, err := tx.LockManifestFacts(cctx, keys)
		if err != nil {
			return err
		}
		if len(facts) != 1 || facts[0].Digest != free || facts[0].Repository != "ns/app" {
			t.Errorf("facts %+v, want the free manifest only", facts)
		}
		if len(skipped) != 1 || skipped[0].Digest != held {
			t.Errorf("skipped %v, want the held manifest", skipped)
		}
		return nil
	})
	close(release)
	if err != nil {
		t.Fatalf("the collector waited for a held candidate: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
