package gc_test

// Performance benchmarks of the collector (bench/GC.md): throughput on a
// large amount of garbage, flatness against the amount of live data, and a
// data-dir generator for measuring `berth gc` (peak RSS, no-op run).
//
// The garbage is written straight through meta.Store, not through the
// registry, so that 100k images take seconds rather than hours. The rows
// are what a steady-state registry holds: a push records blob rows, links
// and manifests; a tag pointed at each; for garbage the tag was later
// ended (DELETE / move), which recorded the tag's review. Upload markers
// and the push's manifest review are not generated: in a real registry they
// were decided (and dropped) one grace after the push, long before the tag
// ended. Live images have no pending review at all, which is the point of
// the review-driven design: the collector never looks at them.
//
// Benchmarks are skipped by plain `go test`; the data-dir generator is a
// test gated by BERTH_GCBENCH_DIR.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob"
	blobfs "github.com/berth/berth/internal/blob/fs"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/review"
)

// genSpec describes a generated registry.
type genSpec struct {
	Repos   int // repositories "bench/rNNN"; images are spread round robin
	Garbage int // images whose only tag was ended (all of it due at once)
	Live    int // images with a live tag and no pending review
	// Seed makes the content deterministic per store (digests must differ
	// between images of one store, not between stores).
	Seed uint64
}

// genResult counts what the garbage part of a generated registry holds:
// what a full collection must delete.
type genResult struct {
	Manifests, Tags, Links, Blobs int
	Bytes                         int64
}

func (g genResult) objects() int { return g.Manifests + g.Tags + g.Links + g.Blobs }

// genBatch images are written per transaction.
const genBatch = 250

// putFunc writes the bytes of a committed object under key, straight into
// a byte store's layout.
type putFunc func(key string, b []byte)

// fsPut writes objects under blobRoot, the root of a blob/fs store (objects
// live at <root>/blobs/<key>), creating the layout.
func fsPut(tb testing.TB, blobRoot string) putFunc {
	tb.Helper()
	if _, err := blobfs.New(blobRoot); err != nil { // creates the layout
		tb.Fatalf("opening blob store: %v", err)
	}
	return func(key string, b []byte) {
		p := filepath.Join(blobRoot, "blobs", filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatalf("writing bytes: %v", err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			tb.Fatalf("writing bytes: %v", err)
		}
	}
}

// generate writes spec into store and the bytes through put. Every image
// has a config and one or two layers (2–3 blobs), each 256–1023 random
// bytes, all of them distinct; the manifest is an OCI image manifest.
// Everything is stamped t0: with Grace 0 and TagRetention 0, every ended tag
// is due at any time after t0.
func generate(tb testing.TB, store meta.Store, put putFunc, spec genSpec, t0 time.Time) genResult {
	tb.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(spec.Seed, 0x9e3779b97f4a7c15))
	repos := make([]meta.Repository, spec.Repos)
	if err := store.Update(ctx, func(tx meta.Tx) error {
		for i := range repos {
			r, err := tx.EnsureRepository(ctx, fmt.Sprintf("bench/r%03d", i), t0)
			if err != nil {
				return err
			}
			repos[i] = r
		}
		return nil
	}); err != nil {
		tb.Fatalf("creating repositories: %v", err)
	}

	type blobRow struct {
		d    digest.Digest
		size int64
		key  string
	}
	type image struct {
		repo    meta.Repository
		blobs   []blobRow
		body    []byte
		d       digest.Digest
		tag     string
		garbage bool
	}
	var res genResult
	total := spec.Garbage + spec.Live
	mk := func(i int) image {
		im := image{repo: repos[i%len(repos)], garbage: i < spec.Garbage}
		im.tag = "t" + strconv.Itoa(i)
		n := 2 + rng.IntN(2)
		type desc struct {
			MediaType string        `json:"mediaType"`
			Digest    digest.Digest `json:"digest"`
			Size      int64         `json:"size"`
		}
		var descs []desc
		for j := 0; j < n; j++ {
			b := make([]byte, 256+rng.IntN(768))
			for k := range b {
				b[k] = byte(rng.Uint32())
			}
			sum := sha256.Sum256(b)
			d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(sum[:]))
			key := blob.NewKey(d)
			put(key, b)
			im.blobs = append(im.blobs, blobRow{d: d, size: int64(len(b)), key: key})
			mt := "application/vnd.oci.image.layer.v1.tar+gzip"
			if j == 0 {
				mt = "application/vnd.oci.image.config.v1+json"
			}
			descs = append(descs, desc{MediaType: mt, Digest: d, Size: int64(len(b))})
			if im.garbage {
				res.Blobs++
				res.Links++
				res.Bytes += int64(len(b))
			}
		}
		body, err := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        descs[0],
			"layers":        descs[1:],
		})
		if err != nil {
			tb.Fatal(err)
		}
		im.body = body
		im.d = digest.FromBytes(body)
		if im.garbage {
			res.Manifests++
			res.Tags++
		}
		return im
	}

	for start := 0; start < total; start += genBatch {
		var ims []image
		for i := start; i < min(start+genBatch, total); i++ {
			ims = append(ims, mk(i))
		}
		err := store.Update(ctx, func(tx meta.Tx) error {
			for _, im := range ims {
				var edges meta.ManifestEdges
				for _, b := range im.blobs {
					if _, _, err := tx.InsertBlob(ctx, meta.Blob{Digest: b.d, Size: b.size, StorageKey: b.key, CreatedAt: t0}); err != nil {
						return err
					}
					if err := tx.LinkBlob(ctx, im.repo.ID, b.d, t0); err != nil {
						return err
					}
					edges.Blobs = append(edges.Blobs, b.d)
				}
				slices.Sort(edges.Blobs)
				m := meta.Manifest{RepoID: im.repo.ID, Digest: im.d, MediaType: "application/vnd.oci.image.manifest.v1+json",
					Size: int64(len(im.body)), Body: im.body, PushedAt: t0}
				if _, err := tx.PutManifest(ctx, m, edges); err != nil {
					return err
				}
				if _, err := tx.PutTag(ctx, meta.Tag{RepoID: im.repo.ID, Name: im.tag, Manifest: im.d, Start: t0}); err != nil {
					return err
				}
				if !im.garbage {
					continue
				}
				// DELETE of the tag: end the row, review it after retention (0).
				tg, err := tx.LiveTag(ctx, im.repo.ID, im.tag, t0)
				if err != nil {
					return err
				}
				if err := tx.EndTag(ctx, tg.ID, t0, meta.ActorOperator, meta.CauseDeleted); err != nil {
					return err
				}
				if err := tx.AddReview(ctx, meta.Review{Kind: review.KindTag, Object: review.TagObject(im.repo.ID, tg.ID),
					ReviewAfter: t0, Cause: review.CauseTagEnded, Reason: "deleted (bench)"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("generating images %d..: %v", start, err)
		}
	}
	return res
}

// benchOptions make everything generated at t0 due at once; the clock is
// injected and fixed an hour after t0.
func benchOptions(t0 time.Time) gc.Options {
	o := gc.DefaultOptions()
	o.Policy.Grace = 0
	o.Policy.TagRetention = 0
	now := t0.Add(time.Hour)
	o.Now = func() time.Time { return now }
	return o
}

// benchStore is a fresh, migrated store of backend b plus a blob/fs root.
func benchStore(b *testing.B, be sqltest.Backend) (*sqlstore.Store, *blobfs.Store, string) {
	b.Helper()
	store := sqltest.Open(b, be.DSN(b))
	root := filepath.Join(b.TempDir(), "storage")
	fs, err := blobfs.New(root)
	if err != nil {
		b.Fatalf("opening blob store: %v", err)
	}
	return store, fs, root
}

// collect runs one RunOnce over store and checks it deleted exactly want.
func collect(b *testing.B, store meta.Store, fs blob.Store, t0 time.Time, want genResult) time.Duration {
	b.Helper()
	c := gc.New(store, fs, benchOptions(t0))
	start := time.Now()
	s, err := c.RunOnce(context.Background(), gc.RunOptions{})
	el := time.Since(start)
	if err != nil {
		b.Fatalf("RunOnce: %v", err)
	}
	got := genResult{Manifests: s.Deleted[review.KindManifest], Tags: s.Deleted[review.KindTag], Links: s.Deleted[review.KindLink],
		Blobs: s.Deleted[review.KindBlob], Bytes: s.BytesFreed}
	if got != want || s.Errors != 0 {
		b.Fatalf("RunOnce deleted %+v (errors %d, all %v), want %+v", got, s.Errors, s.Deleted, want)
	}
	return el
}

// envInt reads a positive integer from the environment.
func envInt(b testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// BenchmarkGCThroughput collects N garbage images (BERTH_GCBENCH_N, default
// 20000) with their tags, links, blob rows and bytes in one RunOnce, and
// reports manifests/s, objects/s (every deletion) and bytes/s. Run with
// -benchtime=1x: each iteration generates its own store (untimed).
func BenchmarkGCThroughput(b *testing.B) {
	n := envInt(b, "BERTH_GCBENCH_N", 20000)
	for _, be := range sqltest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			var el time.Duration
			var done genResult
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				store, fs, root := benchStore(b, be)
				t0 := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Millisecond)
				gs := time.Now()
				want := generate(b, store, fsPut(b, root), genSpec{Repos: 100, Garbage: n, Seed: uint64(i + 1)}, t0)
				b.Logf("%s: generated %d garbage images (%d objects, %d bytes) in %v", be.Name, n, want.objects(), want.Bytes, time.Since(gs).Round(time.Millisecond))
				b.StartTimer()
				el += collect(b, store, fs, t0, want)
				b.StopTimer()
				done.Manifests += want.Manifests
				done.Tags += want.Tags
				done.Links += want.Links
				done.Blobs += want.Blobs
				done.Bytes += want.Bytes
			}
			sec := el.Seconds()
			b.ReportMetric(float64(done.Manifests)/sec, "manifests/s")
			b.ReportMetric(float64(done.objects())/sec, "objects/s")
			b.ReportMetric(float64(done.Bytes)/sec, "bytes/s")
			b.ReportMetric(sec/float64(b.N), "s/collection")
		})
	}
}

// BenchmarkGCFlatness collects a fixed amount of garbage (BERTH_GCBENCH_GARBAGE,
// default 2000 images) in a registry that also holds 1× and 10× as many live
// images in the same repositories. Each iteration builds both stores
// (untimed) and collects them back to back, alternating which goes first,
// so that the load of a shared machine hits both alike; it reports both
// times and their ratio, which must stay ~1: the collector never reads live
// data.
func BenchmarkGCFlatness(b *testing.B) {
	g := envInt(b, "BERTH_GCBENCH_GARBAGE", 2000)
	for _, be := range sqltest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			var el [2]time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				type prepared struct {
					store *sqlstore.Store
					fs    *blobfs.Store
					t0    time.Time
					want  genResult
				}
				var ps [2]prepared
				for k, mult := range []int{1, 10} {
					store, fs, root := benchStore(b, be)
					t0 := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Millisecond)
					want := generate(b, store, fsPut(b, root), genSpec{Repos: 100, Garbage: g, Live: mult * g, Seed: uint64(i*2 + k + 1)}, t0)
					ps[k] = prepared{store, fs, t0, want}
				}
				order := []int{0, 1}
				if i%2 == 1 {
					order = []int{1, 0}
				}
				b.StartTimer()
				for _, k := range order {
					d := collect(b, ps[k].store, ps[k].fs, ps[k].t0, ps[k].want)
					el[k] += d
					b.Logf("%s iteration %d: %d garbage images with %d× live collected in %v", be.Name, i, g, []int{1, 10}[k], d.Round(time.Millisecond))
				}
				b.StopTimer()
			}
			b.ReportMetric(el[0].Seconds()*1000/float64(b.N), "ms/live1x")
			b.ReportMetric(el[1].Seconds()*1000/float64(b.N), "ms/live10x")
			b.ReportMetric(el[1].Seconds()/el[0].Seconds(), "ratio10x/1x")
		})
	}
}

// TestGCBenchDataDir prepares a `berth gc` data directory (SQLite
// <dir>/berth.db, bytes under <dir>/storage) for the RSS and no-op
// measurements of bench/GC.md. It runs only when BERTH_GCBENCH_DIR is set
// (the directory must not exist yet); BERTH_GCBENCH_GARBAGE and
// BERTH_GCBENCH_LIVE size it. Everything is stamped two hours ago, so
// `berth gc --gc-grace 0s --tag-retention 0s` finds all the garbage due.
func TestGCBenchDataDir(t *testing.T) {
	dir := os.Getenv("BERTH_GCBENCH_DIR")
	if dir == "" {
		t.Skip("BERTH_GCBENCH_DIR not set")
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("%s exists; give a fresh directory", dir)
	}
	garbage := envInt(t, "BERTH_GCBENCH_GARBAGE", 2000)
	live := envInt(t, "BERTH_GCBENCH_LIVE", 1)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, filepath.Join(dir, "berth.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Millisecond)
	start := time.Now()
	res := generate(t, store, fsPut(t, filepath.Join(dir, "storage")), genSpec{Repos: 100, Garbage: garbage, Live: live, Seed: 1}, t0)
	t.Logf("%s: %d garbage images (%d manifests, %d tags, %d links, %d blobs, %d bytes) + %d live in %v",
		dir, garbage, res.Manifests, res.Tags, res.Links, res.Blobs, res.Bytes, live, time.Since(start).Round(time.Millisecond))
	// Machine-readable expectation, for the script that checks berth gc's summary.
	fmt.Printf("GCBENCH_EXPECT manifests=%d tags=%d links=%d blobs=%d bytes=%d\n", res.Manifests, res.Tags, res.Links, res.Blobs, res.Bytes)
}
