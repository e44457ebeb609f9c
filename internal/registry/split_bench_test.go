package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
)

// BenchmarkUsageSplit times a split of one repository of n manifests
// (written straight through meta.Store: rows only, no bytes): each image
// has its own config and layer and a layer shared by ten images; a quarter
// are live under a tag, a quarter in the time machine, a quarter untagged
// within the grace, a quarter reclaimable; every tenth live image is an
// index child and has a referrer. BERTH_SPLITBENCH_MANIFESTS sets n
// (default 10000).
func BenchmarkUsageSplit(b *testing.B) {
	n := 10_000
	if v := os.Getenv("BERTH_SPLITBENCH_MANIFESTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	for _, be := range sqltest.Backends() {
		b.Run(fmt.Sprintf("%s/%d", be.Name, n), func(b *testing.B) {
			store := sqltest.Open(b, be.DSN(b))
			t0 := time.Now().UTC()
			p := review.DefaultPolicy()
			genSplit(b, store, n, t0, p)
			reg := registry.New(store, nil, registry.Options{Policy: p, Now: func() time.Time { return t0.Add(2 * time.Hour) }})
			b.ResetTimer()
			var u registry.Usage
			for b.Loop() {
				var err error
				if u, err = reg.Usage(context.Background(), "", "bench/app", true); err != nil {
					b.Fatal(err)
				}
			}
			if got := u.Split.Total().Manifests; got < int64(n) {
				b.Fatalf("split counted %d manifests, want at least %d", got, n)
			}
		})
	}
}

// genSplit writes the rows BenchmarkUsageSplit splits. Pushes are at t0
// except the untagged quarter's (t0 + 90 minutes, inside the grace at
// t0 + 2h); the time machine's tags end at t0 + 1h.
func genSplit(b *testing.B, store *sqlstore.Store, n int, t0 time.Time, p review.Policy) {
	b.Helper()
	ctx := context.Background()
	var repo meta.Repository
	if err := store.Update(ctx, func(tx meta.Tx) (err error) {
		repo, err = tx.EnsureRepository(ctx, "bench/app", t0)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	blobOf := func(s string) meta.Blob {
		d := digest.FromString(s)
		return meta.Blob{Digest: d, Size: int64(len(s)) * 1000, StorageKey: d.Encoded(), CreatedAt: t0}
	}
	const batch = 500
	for start := 0; start < n; start += batch {
		err := store.Update(ctx, func(tx meta.Tx) error {
			for i := start; i < min(start+batch, n); i++ {
				bs := []meta.Blob{blobOf("config " + strconv.Itoa(i)), blobOf("layer " + strconv.Itoa(i)), blobOf("shared " + strconv.Itoa(i/10))}
				var edges meta.ManifestEdges
				for _, bl := range bs {
					if _, _, err := tx.InsertBlob(ctx, bl); err != nil {
						return err
					}
					if err := tx.LinkBlob(ctx, repo.ID, bl.Digest, t0); err != nil {
						return err
					}
					edges.Blobs = append(edges.Blobs, bl.Digest)
				}
				body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "n": i, "blobs": edges.Blobs})
				m := meta.Manifest{RepoID: repo.ID, Digest: digest.FromBytes(body), MediaType: "application/vnd.oci.image.manifest.v1+json",
					Size: int64(len(body)), Body: body, PushedAt: t0}
				if i%4 == 2 {
					m.PushedAt = t0.Add(p.Grace + 30*time.Minute)
				}
				if _, err := tx.PutManifest(ctx, m, edges); err != nil {
					return err
				}
				switch i % 4 {
				case 0, 1:
					tag := meta.Tag{RepoID: repo.ID, Name: "t" + strconv.Itoa(i), Manifest: m.Digest, Start: t0}
					if _, err := tx.PutTag(ctx, tag); err != nil {
						return err
					}
					if i%4 == 1 {
						live, err := tx.LiveTag(ctx, repo.ID, tag.Name, t0)
						if err != nil {
							return err
						}
						if err := tx.EndTag(ctx, live.ID, t0.Add(time.Hour), meta.ActorOperator, meta.CauseDeleted); err != nil {
							return err
						}
					}
				}
				if i%40 == 0 {
					// An index over it, and a referrer of it.
					idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "index of": m.Digest})
					im := meta.Manifest{RepoID: repo.ID, Digest: digest.FromBytes(idx), MediaType: "application/vnd.oci.image.index.v1+json",
						Size: int64(len(idx)), Body: idx, PushedAt: t0}
					if _, err := tx.PutManifest(ctx, im, meta.ManifestEdges{Children: []digest.Digest{m.Digest}}); err != nil {
						return err
					}
					if _, err := tx.PutTag(ctx, meta.Tag{RepoID: repo.ID, Name: "i" + strconv.Itoa(i), Manifest: im.Digest, Start: t0}); err != nil {
						return err
					}
					ref, _ := json.Marshal(map[string]any{"schemaVersion": 2, "referrer of": m.Digest})
					rm := meta.Manifest{RepoID: repo.ID, Digest: digest.FromBytes(ref), MediaType: "application/vnd.oci.image.manifest.v1+json",
						Subject: m.Digest, Size: int64(len(ref)), Body: ref, PushedAt: t0}
					if _, err := tx.PutManifest(ctx, rm, meta.ManifestEdges{}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatalf("writing rows: %v", err)
		}
	}
}
