package gc_test

// Benchmarks of retention policies (bench/RESULTS.md, "Retention
// policies"): what a policy costs a push and the evaluation it triggers in
// a large repository, and how fast the collector applies a policy change
// that prunes a large share of a registry, next to the same tags deleted
// by hand and collected.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	blobfs "github.com/berth/berth/internal/blob/fs"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
)

// bigRepo is a repository of n tags on one image, pushed through reg (the
// image) and written through the store (the tags, started a second apart
// before now), with a keep_newest n policy when keep: each further push
// makes its oldest tag prunable. It returns the image's manifest.
func bigRepo(b *testing.B, store *sqlstore.Store, reg *registry.Registry, repo string, n int, keep bool, now time.Time) []byte {
	b.Helper()
	ctx := context.Background()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := bytes.Repeat([]byte("policy bench layer "), 64)
	for _, blb := range [][]byte{cfg, layer} {
		if _, err := reg.PushBlob(ctx, repo, digest.FromBytes(blb).String(), int64(len(blb)), bytes.NewReader(blb)); err != nil {
			b.Fatalf("pushing blob: %v", err)
		}
	}
	body, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfg), "size": len(cfg)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(layer), "size": len(layer)}},
	})
	if err != nil {
		b.Fatal(err)
	}
	pushed, err := reg.PutManifest(ctx, repo, "base", "application/vnd.oci.image.manifest.v1+json", body)
	if err != nil {
		b.Fatalf("pushing manifest: %v", err)
	}
	r := repoOf(b, store, repo)
	for start := 1; start < n; start += 1000 {
		if err := store.Update(ctx, func(tx meta.Tx) error {
			for i := start; i < min(start+1000, n); i++ {
				at := now.Add(-time.Duration(n-i) * time.Second)
				if _, err := tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: fmt.Sprintf("t%05d", i), Manifest: pushed.Digest, Start: at}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatalf("writing tags: %v", err)
		}
	}
	if keep {
		if err := store.Update(ctx, func(tx meta.Tx) error {
			_, _, err := tx.PutPolicy(ctx, meta.TagPolicy{Namespace: "bench", Repository: repo, Name: "keep", Kind: meta.PolicyKeepNewest,
				Count: n, PatternMatches: true, CreatedAt: now, CreatedBy: meta.ActorOperator})
			return err
		}); err != nil {
			b.Fatalf("saving policy: %v", err)
		}
	}
	return body
}

func repoOf(b *testing.B, store meta.Store, name string) meta.Repository {
	b.Helper()
	var r meta.Repository
	if err := store.View(context.Background(), func(tx meta.Tx) (err error) {
		r, err = tx.Repository(context.Background(), name, meta.LockNone)
		return err
	}); err != nil {
		b.Fatalf("repository %s: %v", name, err)
	}
	return r
}

// BenchmarkPolicyPush pushes a new tag (a PUT of a stored manifest under a
// new name, through the registry) to a repository of BERTH_POLICYBENCH_TAGS
// tags (default 10,000) and runs the collector once, on two stores side by
// side: one whose repository has a keep_newest rule (the push reads the
// rules and brings the policy review forward; the run evaluates the
// repository and prunes its oldest tag) and one without any policy (the
// push reads the rules and finds none; the run finds nothing due). It
// reports both steps' mean time for each and the ratios. Run with
// -benchtime=100x or so.
func BenchmarkPolicyPush(b *testing.B) {
	n := envInt(b, "BERTH_POLICYBENCH_TAGS", 10000)
	for _, be := range sqltest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			type side struct {
				reg      *registry.Registry
				c        *gc.Collector
				body     []byte
				push, gc time.Duration
			}
			now := time.Now().UTC()
			var sides [2]*side // 0: no policy, 1: keep_newest
			for k := range sides {
				store := sqltest.Open(b, be.DSN(b))
				fs, err := blobfs.New(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				pol := review.DefaultPolicy()
				reg := registry.New(store, fs, registry.Options{Policy: pol})
				o := gc.DefaultOptions()
				o.Policy = pol
				s := &side{reg: reg, c: gc.New(store, fs, o)}
				s.body = bigRepo(b, store, reg, "bench/big", n, k == 1, now)
				sides[k] = s
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range sides {
					k := (i + j) % 2 // alternate which goes first
					s := sides[k]
					start := time.Now()
					if _, err := s.reg.PutManifest(ctx, "bench/big", fmt.Sprintf("p%05d", i), "application/vnd.oci.image.manifest.v1+json", s.body); err != nil {
						b.Fatalf("push: %v", err)
					}
					mid := time.Now()
					sum, err := s.c.RunOnce(ctx, gc.RunOptions{})
					if err != nil {
						b.Fatalf("RunOnce: %v", err)
					}
					s.push += mid.Sub(start)
					s.gc += time.Since(mid)
					if sum.Pruned != k {
						b.Fatalf("side %d run %d pruned %d tags, want %d", k, i, sum.Pruned, k)
					}
				}
			}
			b.StopTimer()
			ms := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(b.N) }
			none, keep := sides[0], sides[1]
			b.ReportMetric(ms(none.push), "push-ms/none")
			b.ReportMetric(ms(keep.push), "push-ms/policy")
			b.ReportMetric(ms(none.gc), "gc-ms/none")
			b.ReportMetric(ms(keep.gc), "gc-ms/policy")
			b.ReportMetric(keep.push.Seconds()/none.push.Seconds(), "push-ratio")
			b.ReportMetric((keep.push+keep.gc).Seconds()/(none.push+none.gc).Seconds(), "push+gc-ratio")
		})
	}
}

// BenchmarkPolicyPrune collects 30 % of a registry of BERTH_POLICYBENCH_IMAGES
// images (default 10,000, over 100 repositories, one tag each) two ways,
// side by side on two stores generated alike (same seed): "policy", where a
// registry-wide keep_newest 70 % rule was just saved (a policy review due
// for every repository) and the collector evaluates, ends and collects;
// and "hand", where the same tags were deleted by hand (ended, their tag
// reviews recorded) and the collector collects. Both must delete exactly
// the same rows and bytes. It reports both times and their ratio. Run with
// -benchtime=1x.
func BenchmarkPolicyPrune(b *testing.B) {
	n := envInt(b, "BERTH_POLICYBENCH_IMAGES", 10000)
	const repos = 100
	pruned := n * 3 / 10
	for _, be := range sqltest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			var el [2]time.Duration // 0: hand, 1: policy
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				type prepared struct {
					store *sqlstore.Store
					fs    *blobfs.Store
					t0    time.Time
				}
				var ps [2]prepared
				var want genResult
				for k := range ps {
					store, fs, root := benchStore(b, be)
					t0 := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Millisecond)
					gs := time.Now()
					if k == 0 {
						want = generate(b, store, fsPut(b, root), genSpec{Repos: repos, Garbage: pruned, Live: n - pruned, Seed: uint64(i + 1)}, t0)
					} else {
						generate(b, store, fsPut(b, root), genSpec{Repos: repos, Live: n, Seed: uint64(i + 1)}, t0)
						savePolicyEverywhere(b, store, meta.TagPolicy{Name: "keep", Kind: meta.PolicyKeepNewest, Count: (n - pruned) / repos,
							PatternMatches: true, CreatedAt: t0, CreatedBy: meta.ActorOperator}, t0)
					}
					b.Logf("%s: generated store %d in %v", be.Name, k, time.Since(gs).Round(time.Millisecond))
					ps[k] = prepared{store, fs, t0}
				}
				order := []int{0, 1}
				if i%2 == 1 {
					order = []int{1, 0}
				}
				b.StartTimer()
				for _, k := range order {
					d := collect(b, ps[k].store, ps[k].fs, ps[k].t0, want)
					el[k] += d
					b.Logf("%s iteration %d: %s collected %d of %d images in %v", be.Name, i, []string{"hand", "policy"}[k], pruned, n, d.Round(time.Millisecond))
				}
				b.StopTimer()
			}
			b.ReportMetric(el[0].Seconds()/float64(b.N), "s/hand")
			b.ReportMetric(el[1].Seconds()/float64(b.N), "s/policy")
			b.ReportMetric(el[1].Seconds()/el[0].Seconds(), "ratio-policy/hand")
		})
	}
}

// savePolicyEverywhere saves p and records a policy review due at at for
// every repository of its scope, as a rule's change does.
func savePolicyEverywhere(b *testing.B, store meta.Store, p meta.TagPolicy, at time.Time) {
	b.Helper()
	ctx := context.Background()
	if err := store.Update(ctx, func(tx meta.Tx) error {
		if _, _, err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		ids, err := tx.RepositoryIDs(ctx, p.Namespace, p.Repository, 0, 1<<20)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := tx.ExpediteReview(ctx, meta.Review{Kind: review.KindPolicy, Object: review.PolicyObject(id), ReviewAfter: at,
				Cause: review.CausePolicyChanged, Reason: "bench"}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatalf("saving policy: %v", err)
	}
}
