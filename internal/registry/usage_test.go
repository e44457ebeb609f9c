package registry_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// usageWindows are short windows, so a test reaches collection by moving
// the clock.
var usageWindows = review.Policy{Grace: time.Hour, UploadExpiry: time.Hour, TagRetention: time.Hour, CollectUntagged: true, AttachmentsFollowSubject: true}

func withUsageWindows(o *registryenv.Options) { o.Registry.Policy = usageWindows }

// assertUsageExact fails the test with every counter that differs from a
// recomputation from the rows.
func assertUsageExact(t *testing.T, e *registryenv.Env, step string) {
	t.Helper()
	var diffs []meta.UsageDiff
	err := e.Store.View(e.Ctx, func(tx meta.Tx) (err error) {
		diffs, err = tx.VerifyUsage(e.Ctx, false)
		return err
	})
	if err != nil {
		t.Fatalf("%s: verifying usage: %v", step, err)
	}
	for _, d := range diffs {
		t.Errorf("%s: %s %s: counter %+v, rows say %+v", step, d.Counter, d.Key, d.Got, d.Want)
	}
}

// usageOf reads the counters of a repository, a namespace ("" for none) and
// the registry.
func usageOf(t *testing.T, e *registryenv.Env, repo string) (r, ns, g meta.Usage) {
	t.Helper()
	err := e.Store.View(e.Ctx, func(tx meta.Tx) error {
		nsName, _, _ := strings.Cut(repo, "/")
		if rp, err := tx.Repository(e.Ctx, repo, meta.LockNone); err == nil {
			if r, err = tx.RepositoryUsage(e.Ctx, rp.ID); err != nil {
				return err
			}
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		if n, err := tx.Namespace(e.Ctx, nsName, meta.LockNone); err == nil {
			if ns, err = tx.NamespaceUsage(e.Ctx, n.ID); err != nil {
				return err
			}
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		var err error
		g, err = tx.RegistryUsage(e.Ctx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, ns, g
}

// blobSizes are the sizes of the blobs a manifest's body references
// (config, layers), by digest.
func blobSizes(t *testing.T, m registryenv.Manifest) map[digest.Digest]int64 {
	t.Helper()
	var body struct {
		Config *registryenv.Descriptor  `json:"config"`
		Layers []registryenv.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(m.Body, &body); err != nil {
		t.Fatal(err)
	}
	out := map[digest.Digest]int64{}
	if body.Config != nil {
		out[body.Config.Digest] = body.Config.Size
	}
	for _, l := range body.Layers {
		out[l.Digest] = l.Size
	}
	return out
}

// held is what a scope holding ms (each manifest, each distinct blob once)
// holds.
func held(t *testing.T, ms ...registryenv.Manifest) meta.Usage {
	t.Helper()
	var u meta.Usage
	blobs := map[digest.Digest]int64{}
	for _, m := range ms {
		u.Bytes += m.Size
		u.Manifests++
		for d, s := range blobSizes(t, m) {
			blobs[d] = s
		}
	}
	for _, s := range blobs {
		u.Bytes += s
		u.Blobs++
	}
	return u
}

func wantUsage(t *testing.T, step, what string, got, want meta.Usage) {
	t.Helper()
	if got != want {
		t.Errorf("%s: %s usage: got %+v, want %+v", step, what, got, want)
	}
}

func collect(t *testing.T, e *registryenv.Env) {
	t.Helper()
	c := gc.New(e.Store, e.Blobs, gc.Options{Now: e.Clock.Now, Policy: usageWindows})
	if _, err := c.RunOnce(e.Ctx, gc.RunOptions{}); err != nil {
		t.Fatalf("collecting: %v", err)
	}
}

// TestUsageCounters follows the counters through every writer of
// docs/design/usage.md: after each step they equal a recomputation from
// the rows, and at chosen steps the exact bytes of what each scope holds.
func TestUsageCounters(t *testing.T) {
	registryenv.ForEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		shared := []byte("shared layer, in every namespace")
		a := e.PushImage("team/app", "a", shared, []byte("layer a"))
		assertUsageExact(t, e, "first push")
		r, ns, g := usageOf(t, e, "team/app")
		wantUsage(t, "first push", "repository", r, held(t, a))
		wantUsage(t, "first push", "namespace", ns, held(t, a))
		wantUsage(t, "first push", "registry", g, held(t, a))

		// A layer shared within the repository counts once.
		b := e.PushImage("team/app", "b", shared, []byte("layer b"))
		assertUsageExact(t, e, "shared within the repository")
		r, _, _ = usageOf(t, e, "team/app")
		wantUsage(t, "shared within the repository", "repository", r, held(t, a, b))

		// Across repositories of one namespace: once in the namespace.
		w := e.PushImage("team/web", "w", shared)
		assertUsageExact(t, e, "shared across repositories")
		r, ns, _ = usageOf(t, e, "team/web")
		wantUsage(t, "shared across repositories", "repository", r, held(t, w))
		wantUsage(t, "shared across repositories", "namespace", ns, held(t, a, b, w))

		// Across namespaces: once in the registry.
		o := e.PushImage("other/app", "o", shared)
		assertUsageExact(t, e, "shared across namespaces")
		_, ns, g = usageOf(t, e, "other/app")
		wantUsage(t, "shared across namespaces", "namespace", ns, held(t, o))
		wantUsage(t, "shared across namespaces", "registry", g, held(t, a, b, w, o))

		// A mount links, and counts nothing until a manifest references it.
		sd := digest.FromBytes(shared)
		if mounted, _, err := e.Registry.MountBlob(e.Ctx, "team/tools", "team/app", sd.String()); err != nil || !mounted {
			t.Fatalf("mounting: %v, %v", mounted, err)
		}
		assertUsageExact(t, e, "mount")
		if r, _, _ = usageOf(t, e, "team/tools"); r != (meta.Usage{}) {
			t.Errorf("mount: repository usage %+v, want none", r)
		}

		// An index and a referrer: their manifests count at every level.
		idx := e.PushIndex("team/app", "multi", a, b)
		ref := e.PushReferrer("team/app", a, "application/vnd.example.sbom", []byte("sbom"))
		assertUsageExact(t, e, "index and referrer")
		_, ns, _ = usageOf(t, e, "team/app")
		want := held(t, a, b, w, ref).Add(meta.Usage{Bytes: idx.Size, Manifests: 1})
		wantUsage(t, "index and referrer", "namespace", ns, want)

		// A re-PUT adds nothing.
		e.Tag("team/app", "again", a)
		_, ns2, _ := usageOf(t, e, "team/app")
		wantUsage(t, "re-PUT", "namespace", ns2, ns)
		assertUsageExact(t, e, "re-PUT")

		// Delete by tag: counted until collected after the window.
		if err := e.Registry.DeleteTag(e.Ctx, "team/web", "w"); err != nil {
			t.Fatal(err)
		}
		collect(t, e)
		assertUsageExact(t, e, "tag deleted, inside the window")
		if r, _, _ = usageOf(t, e, "team/web"); r != held(t, w) {
			t.Errorf("tag deleted, inside the window: repository usage %+v, want %+v", r, held(t, w))
		}
		// Restored from the time machine: nothing changes.
		if _, err := e.Registry.RestoreTag(e.Ctx, "team/web", "w", registry.RestoreTarget{Digest: w.Digest.String()}); err != nil {
			t.Fatalf("restoring: %v", err)
		}
		assertUsageExact(t, e, "restore")
		if err := e.Registry.DeleteTag(e.Ctx, "team/web", "w"); err != nil {
			t.Fatal(err)
		}

		// Delete by digest: withdrawn, still counted, until collected.
		if err := e.Registry.DeleteManifest(e.Ctx, "team/app", ref.Digest.String()); err != nil {
			t.Fatal(err)
		}
		assertUsageExact(t, e, "withdrawn")
		_, ns2, _ = usageOf(t, e, "team/app")
		wantUsage(t, "withdrawn", "namespace", ns2, want)

		// Expiry: a tag whose expiry passes ends, and is collected after
		// the window.
		x := e.PushImage("team/app", "expiring", []byte("layer x"))
		err := e.Store.Update(e.Ctx, func(tx meta.Tx) error {
			rp, err := tx.Repository(e.Ctx, "team/app", meta.LockNone)
			if err != nil {
				return err
			}
			tg, err := tx.LiveTag(e.Ctx, rp.ID, "expiring", e.Clock.Now())
			if err != nil {
				return err
			}
			at := e.Clock.Now().Add(time.Minute)
			return tx.SetTagExpiry(e.Ctx, tg.ID, &at)
		})
		if err != nil {
			t.Fatal(err)
		}
		assertUsageExact(t, e, "expiry set")

		// After the windows: the collector deletes w, the referrer and x.
		e.Clock.Add(3 * time.Hour)
		collect(t, e)
		e.Clock.Add(3 * time.Hour)
		collect(t, e)
		assertUsageExact(t, e, "collected")
		r, ns, _ = usageOf(t, e, "team/web")
		wantUsage(t, "collected", "team/web repository", r, meta.Usage{})
		wantUsage(t, "collected", "namespace", ns, held(t, a, b).Add(meta.Usage{Bytes: idx.Size, Manifests: 1}))
		_ = x

		// A purge of a namespace: its counters go, the registry's drop.
		if _, err := gc.New(e.Store, e.Blobs, gc.Options{Now: e.Clock.Now, Policy: usageWindows}).Purge(e.Ctx, "other", nil); err != nil {
			t.Fatalf("purging: %v", err)
		}
		assertUsageExact(t, e, "purge")
		_, _, g = usageOf(t, e, "team/app")
		wantUsage(t, "purge", "registry", g, held(t, a, b).Add(meta.Usage{Bytes: idx.Size, Manifests: 1}))
		e.AssertFixedPoint(usageWindows)
	}, withUsageWindows)
}

// pushBlobs uploads an image's config and layer and returns the manifest
// body over them and the bytes it adds to a namespace holding none of them.
func pushBlobs(e *registryenv.Env, repo string, i int) ([]byte, int64) {
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","n":%06d}`, i))
	layer := []byte(fmt.Sprintf("layer %06d of %s", i, repo))
	cd, ld := e.PushBlob(repo, cfg), e.PushBlob(repo, layer)
	body := registryenv.ImageManifest(cd, int64(len(cfg)), map[digest.Digest]int64{ld: int64(len(layer))})
	return body, int64(len(body) + len(cfg) + len(layer))
}

func putQuota(t *testing.T, e *registryenv.Env, q meta.Quota) {
	t.Helper()
	q.CreatedAt = e.Clock.Now()
	if err := e.Store.Update(e.Ctx, func(tx meta.Tx) error { return tx.PutQuota(e.Ctx, q) }); err != nil {
		t.Fatal(err)
	}
}

// TestQuota: exactly at the limit is allowed; one byte over is refused with
// DENIED and the namespace's quota in the message, leaving no manifest and
// no counter changed; the registry default applies to a namespace without a
// quota; crossing the warning threshold emits quota.warning once.
func TestQuota(t *testing.T) {
	var mu sync.Mutex
	var warnings []registry.Event
	events := func(o *registryenv.Options) {
		o.Registry.Events = func(ev registry.Event) {
			if ev.Kind == event.QuotaWarning {
				mu.Lock()
				warnings = append(warnings, ev)
				mu.Unlock()
			}
		}
	}
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		warnings = nil
		e.PushImage("team/app", "base", []byte("base layer"))
		_, used, _ := usageOf(t, e, "team/app")

		body, need := pushBlobs(e, "team/app", 1)
		warn := 99 // base image below it, base + the next image above
		putQuota(t, e, meta.Quota{Namespace: "team", Limit: used.Bytes + need, WarnPercent: &warn})
		if st, b := e.PutManifest("team/app", "exact", registryenv.MediaImage, body); st != http.StatusCreated {
			t.Fatalf("exactly at the limit: got %d %s, want 201", st, b)
		}
		if _, ns, _ := usageOf(t, e, "team/app"); ns.Bytes != used.Bytes+need {
			t.Errorf("at the limit: namespace holds %d bytes, want %d", ns.Bytes, used.Bytes+need)
		}
		if len(warnings) != 1 || warnings[0].Repo != "team/app" {
			t.Errorf("warnings: got %+v, want one quota.warning for team/app", warnings)
		}

		// One byte over: refused, nothing left behind.
		_, before, _ := usageOf(t, e, "team/app")
		body, need = pushBlobs(e, "team/app", 2)
		putQuota(t, e, meta.Quota{Namespace: "team", Limit: before.Bytes + need - 1})
		st, b := e.PutManifest("team/app", "over", registryenv.MediaImage, body)
		if st != http.StatusForbidden || !strings.Contains(string(b), `"DENIED"`) || !strings.Contains(string(b), "namespace team is over its quota") {
			t.Fatalf("one byte over: got %d %s, want 403 DENIED naming the quota", st, b)
		}
		if _, err := e.Registry.GetManifest(e.Ctx, "team/app", "over"); !errors.Is(err, registry.ErrManifestUnknown) {
			t.Errorf("refused manifest: GET by tag: %v, want unknown", err)
		}
		if _, err := e.Registry.GetManifest(e.Ctx, "team/app", digest.FromBytes(body).String()); !errors.Is(err, registry.ErrManifestUnknown) {
			t.Errorf("refused manifest: GET by digest: %v, want unknown", err)
		}
		if _, after, _ := usageOf(t, e, "team/app"); after != before {
			t.Errorf("refused: namespace usage %+v, want unchanged %+v", after, before)
		}
		assertUsageExact(t, e, "refused")
		_, err := e.Registry.PutManifest(e.Ctx, "team/app", "over", registryenv.MediaImage, body)
		var qe *registry.QuotaError
		if !errors.As(err, &qe) || !errors.Is(err, registry.ErrDenied) || qe.Used != before.Bytes || qe.Pushed != need {
			t.Errorf("refusal: got %v (%+v), want a QuotaError of %d used + %d pushed", err, qe, before.Bytes, need)
		}
		// A re-PUT of a stored manifest adds nothing and is never refused.
		e.Tag("team/app", "again", registryenv.Manifest{Descriptor: registryenv.Descriptor{MediaType: registryenv.MediaImage}, Body: mustGet(t, e, "team/app", "exact")})

		// The registry default, for a namespace without a quota.
		putQuota(t, e, meta.Quota{Namespace: "", Limit: 1})
		body, _ = pushBlobs(e, "fresh/app", 3)
		if st, b := e.PutManifest("fresh/app", "v1", registryenv.MediaImage, body); st != http.StatusForbidden || !strings.Contains(string(b), "namespace fresh is over its quota") {
			t.Errorf("registry default: got %d %s, want 403", st, b)
		}
		// team's own quota wins over the default.
		putQuota(t, e, meta.Quota{Namespace: "team", Limit: 1 << 40})
		if st, b := e.PutManifest("team/app", "own", registryenv.MediaImage, mustBody(t, e, "team/app", 4)); st != http.StatusCreated {
			t.Errorf("team under its own quota beside a default of 1 byte: got %d %s, want 201", st, b)
		}
		if err := e.Store.Update(e.Ctx, func(tx meta.Tx) error { return tx.DeleteQuota(e.Ctx, "team") }); err != nil {
			t.Fatal(err)
		}
		if st, _ := e.PutManifest("team/app", "over", registryenv.MediaImage, mustBody(t, e, "team/app", 2)); st != http.StatusForbidden {
			t.Errorf("team under the default once its quota is deleted: got %d, want 403", st)
		}
		assertUsageExact(t, e, "end")
	}, events)
}

func mustGet(t *testing.T, e *registryenv.Env, repo, ref string) []byte {
	t.Helper()
	m, err := e.Registry.GetManifest(e.Ctx, repo, ref)
	if err != nil {
		t.Fatal(err)
	}
	return m.Body
}

// mustBody rebuilds the manifest body pushBlobs made for image i.
func mustBody(t *testing.T, e *registryenv.Env, repo string, i int) []byte {
	t.Helper()
	body, _ := pushBlobs(e, repo, i)
	return body
}

// TestQuotaRace: many pushes race for the last bytes of a namespace, on one
// Registry and, on PostgreSQL, on two Registry instances over one database
// (replicas): exactly one wins, every other is refused with DENIED.
func TestQuotaRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		regs := []*registry.Registry{e.Registry}
		if e.Backend == registryenv.Postgres {
			other, err := sqlstore.Open(e.Ctx, e.DSN, sqlstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { other.Close() })
			r2 := registry.New(other, e.Blobs, registry.Options{Policy: review.DefaultPolicy(), Now: e.Clock.Now})
			t.Cleanup(func() { r2.Close(e.Ctx) })
			regs = append(regs, r2)
		}
		e.PushImage("team/app", "base", []byte("base layer"))
		_, used, _ := usageOf(t, e, "team/app")
		const n = 16
		bodies := make([][]byte, n)
		var need int64
		for i := range bodies {
			var nd int64
			bodies[i], nd = pushBlobs(e, fmt.Sprintf("team/r%d", i%4), i)
			if i > 0 && nd != need {
				t.Fatalf("image %d adds %d bytes, image 0 %d: want equal", i, nd, need)
			}
			need = nd
		}
		putQuota(t, e, meta.Quota{Namespace: "team", Limit: used.Bytes + 2*need - 1})
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range bodies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = regs[i%len(regs)].PutManifest(e.Ctx, fmt.Sprintf("team/r%d", i%4), "v1", registryenv.MediaImage, bodies[i])
			}()
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			var qe *registry.QuotaError
			switch {
			case err == nil:
				won++
			case !errors.As(err, &qe):
				t.Errorf("push %d: %v, want success or a QuotaError", i, err)
			}
		}
		if won != 1 {
			t.Errorf("%d pushes won the last bytes, want exactly 1", won)
		}
		if _, ns, _ := usageOf(t, e, "team/app"); ns.Bytes != used.Bytes+need {
			t.Errorf("namespace holds %d bytes, want %d", ns.Bytes, used.Bytes+need)
		}
		assertUsageExact(t, e, "race")
	})
}
