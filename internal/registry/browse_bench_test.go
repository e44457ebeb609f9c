package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
)

// BenchmarkTagPage times a page of 100 tags of the web interface
// (Registry.TagPage) in a repository of n live tags, for n = 100 and
// 10,000 (BERTH_TAGBENCH_TAGS sets a comma-separated list): the first page,
// a page from the middle (after the tag 50 before it), and a page of a
// prefix matching 100 tags. The rows
// are written straight through meta.Store (no bytes): each tag names its own
// image (a config, a layer, a layer shared by ten images) and has an ended
// lifetime beside the live one; every tenth tag names an index of two
// images with platforms, every fifth image has a referrer, and five of the
// first hundred a cosign signature tag (whose names sort first: the first
// page holds them at any n); an immutable rule covers some tags. The cost of a
// page must not depend on n (docs/design/web.md, "Cost"). Besides the wall
// time it reports the process's CPU time per page (cpu-ns/op: on
// PostgreSQL, the client's share only).
func BenchmarkTagPage(b *testing.B) {
	sizes := []int{100, 10_000}
	if v := os.Getenv("BERTH_TAGBENCH_TAGS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatal(err)
			}
			sizes = append(sizes, n)
		}
	}
	for _, be := range sqltest.Backends() {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("%s/tags=%d", be.Name, n), func(b *testing.B) {
				store := sqltest.Open(b, be.DSN(b))
				t0 := time.Now().UTC().Truncate(time.Millisecond)
				genTags(b, store, n, t0)
				if store.Dialect() == "postgres" {
					if _, err := store.DB().Exec(`ANALYZE`); err != nil {
						b.Fatal(err)
					}
				}
				reg := registry.New(store, nil, registry.Options{Policy: review.DefaultPolicy(), Now: func() time.Time { return t0.Add(time.Hour) }})
				mid := tagName(max(n/2-50, 0))
				for _, c := range []struct {
					name string
					q    registry.TagQuery
					want int
				}{
					{"first", registry.TagQuery{}, min(n+min(n+19, 100)/20, registry.DefaultTagPage)},
					{"middle", registry.TagQuery{After: mid}, min(n-max(n/2-50, 0)-1, registry.DefaultTagPage)},
					{"prefix", registry.TagQuery{Prefix: tagName(n / 2)[:len(mid)-2]}, min(n, 100)},
				} {
					b.Run(c.name, func(b *testing.B) {
						var page registry.TagPage
						cpu := processCPU(b)
						for b.Loop() {
							var err error
							if page, err = reg.TagPage(context.Background(), "bench/app", c.q); err != nil {
								b.Fatal(err)
							}
						}
						b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
						if len(page.Tags) != c.want || page.Tags[0].Size == 0 {
							b.Fatalf("%s: %d tags (first %+v), want %d", c.name, len(page.Tags), page.Tags[0], c.want)
						}
					})
				}
			})
		}
	}
}

// processCPU is the CPU time the process used so far (the benchmark's own,
// not the PostgreSQL server's): on a machine shared with other work it
// varies less than the wall time.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// tagName is the name of the i-th tag: names sort in i's order, and a name
// without its last two digits is the prefix of 100 names.
func tagName(i int) string { return fmt.Sprintf("v%06d", i) }

// genTags writes the rows BenchmarkTagPage reads, 250 tags per transaction.
func genTags(b *testing.B, store *sqlstore.Store, n int, t0 time.Time) {
	b.Helper()
	ctx := context.Background()
	var repo meta.Repository
	err := store.Update(ctx, func(tx meta.Tx) (err error) {
		if repo, err = tx.EnsureRepository(ctx, "bench/app", t0); err != nil {
			return err
		}
		_, _, err = tx.PutPolicy(ctx, meta.TagPolicy{Namespace: "bench", Name: "releases", Kind: meta.PolicyImmutable,
			TagPattern: "0$", PatternMatches: true, CreatedAt: t0})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	blobOf := func(s string) meta.Blob {
		d := digest.FromString(s)
		return meta.Blob{Digest: d, Size: int64(len(s)) * 1000, StorageKey: d.Encoded(), CreatedAt: t0}
	}
	image := func(tx meta.Tx, name string, i int) (meta.Manifest, error) {
		bs := []meta.Blob{blobOf("config " + name), blobOf("layer " + name), blobOf("shared " + strconv.Itoa(i/10))}
		var edges meta.ManifestEdges
		for _, bl := range bs {
			if _, _, err := tx.InsertBlob(ctx, bl); err != nil {
				return meta.Manifest{}, err
			}
			if err := tx.LinkBlob(ctx, repo.ID, bl.Digest, t0); err != nil {
				return meta.Manifest{}, err
			}
			edges.Blobs = append(edges.Blobs, bl.Digest)
		}
		body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "image": name, "blobs": edges.Blobs})
		m := meta.Manifest{RepoID: repo.ID, Digest: digest.FromBytes(body), MediaType: "application/vnd.oci.image.manifest.v1+json",
			Size: int64(len(body)), Body: body, PushedAt: t0}
		_, err := tx.PutManifest(ctx, m, edges)
		return m, err
	}
	const batch = 250
	for start := 0; start < n; start += batch {
		err := store.Update(ctx, func(tx meta.Tx) error {
			for i := start; i < min(start+batch, n); i++ {
				name := tagName(i)
				m, err := image(tx, name, i)
				if err != nil {
					return err
				}
				if i%10 == 0 {
					other, err := image(tx, name+"-arm64", i)
					if err != nil {
						return err
					}
					entry := func(m meta.Manifest, arch string) map[string]any {
						return map[string]any{"mediaType": m.MediaType, "digest": m.Digest, "size": m.Size,
							"platform": map[string]string{"os": "linux", "architecture": arch}}
					}
					body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
						"manifests": []any{entry(m, "amd64"), entry(other, "arm64")}})
					idx := meta.Manifest{RepoID: repo.ID, Digest: digest.FromBytes(body), MediaType: "application/vnd.oci.image.index.v1+json",
						Size: int64(len(body)), Body: body, PushedAt: t0}
					if _, err := tx.PutManifest(ctx, idx, meta.ManifestEdges{Children: []digest.Digest{m.Digest, other.Digest}}); err != nil {
						return err
					}
					m = idx
				}
				if i%5 == 0 {
					ref, _ := json.Marshal(map[string]any{"schemaVersion": 2, "referrer of": m.Digest})
					rm := meta.Manifest{RepoID: repo.ID, Digest: digest.FromBytes(ref), MediaType: "application/vnd.oci.image.manifest.v1+json",
						ArtifactType: "application/vnd.example.sbom", Subject: m.Digest, Size: int64(len(ref)), Body: ref, PushedAt: t0}
					if _, err := tx.PutManifest(ctx, rm, meta.ManifestEdges{}); err != nil {
						return err
					}
				}
				if i%20 == 0 && i < 100 {
					if _, err := tx.PutTag(ctx, meta.Tag{RepoID: repo.ID, Name: "sha256-" + m.Digest.Encoded() + ".sig", Manifest: m.Digest, Start: t0}); err != nil {
						return err
					}
				}
				// An ended lifetime, then the live one.
				for _, start := range []time.Time{t0.Add(-time.Hour), t0} {
					if _, err := tx.PutTag(ctx, meta.Tag{RepoID: repo.ID, Name: name, Manifest: m.Digest, Start: start}); err != nil {
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
