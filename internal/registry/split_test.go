package registry_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// classed is a manifest of a repository and the class a split must give it.
type classed struct {
	repo  string
	m     registryenv.Manifest
	class meta.HeldClass
}

// wantSplit is the split of hs computed by hand: each manifest row counted
// by its size in its class, each blob once, in the first class of the
// manifests that reference it.
func wantSplit(t *testing.T, hs []classed) meta.Split {
	t.Helper()
	var s meta.Split
	blobClass := map[digest.Digest]meta.HeldClass{}
	blobSize := map[digest.Digest]int64{}
	for _, h := range hs {
		s[h.class].Manifests++
		s[h.class].ManifestBytes += h.m.Size
		for d, size := range blobSizes(t, h.m) {
			if c, ok := blobClass[d]; !ok || h.class < c {
				blobClass[d] = h.class
			}
			blobSize[d] = size
		}
	}
	for d, c := range blobClass {
		s[c].Blobs++
		s[c].BlobBytes += blobSize[d]
	}
	return s
}

// usageIn reads the usage of scope named as a purge names it: "" the
// registry, "team" a namespace, "team/app" a repository.
func usageIn(e *registryenv.Env, scope string, split bool) (registry.Usage, error) {
	if strings.Contains(scope, "/") {
		return e.Registry.Usage(e.Ctx, "", scope, split)
	}
	return e.Registry.Usage(e.Ctx, scope, "", split)
}

func split(t *testing.T, e *registryenv.Env, scope string) meta.Split {
	t.Helper()
	u, err := usageIn(e, scope, true)
	if err != nil {
		t.Fatalf("split of %s: %v", scope, err)
	}
	return u.Split.Split
}

func checkSplit(t *testing.T, e *registryenv.Env, scope string, hs []classed) {
	t.Helper()
	var in []classed
	for _, h := range hs {
		if ns, _, _ := strings.Cut(h.repo, "/"); h.repo == scope || ns == scope {
			in = append(in, h)
		}
	}
	got := split(t, e, scope)
	if diff := cmp.Diff(wantSplit(t, in), got); diff != "" {
		t.Errorf("split of %s (-want +got), classes live, time machine, untagged, reclaimable:\n%s", scope, diff)
	}
	// The classes add up to what the counters say the scope holds.
	var u meta.Usage
	if strings.Contains(scope, "/") {
		u, _, _ = usageOf(t, e, scope)
	} else {
		_, u, _ = usageOf(t, e, scope+"/none")
	}
	if tot := got.Total(); tot.Bytes() != u.Bytes || tot.Manifests != u.Manifests || tot.Blobs != u.Blobs {
		t.Errorf("split of %s totals %+v (%d bytes), the counters say %+v", scope, tot, tot.Bytes(), u)
	}
}

// deleteRef sends DELETE /v2/<repo>/manifests/<ref> and wants 202.
func deleteRef(t *testing.T, e *registryenv.Env, repo, ref string) {
	t.Helper()
	resp, body := e.Do("DELETE", "/v2/"+repo+"/manifests/"+ref, nil, nil)
	e.Expect(resp, body, http.StatusAccepted)
}

func collectAll(t *testing.T, e *registryenv.Env, p review.Policy) gc.Summary {
	t.Helper()
	s, err := gc.New(e.Store, e.Blobs, gc.Options{Now: e.Clock.Now, Policy: p}).RunOnce(e.Ctx, gc.RunOptions{})
	if err != nil {
		t.Fatalf("collecting: %v", err)
	}
	return s
}

// The split of a small registry built by hand: every class, layers and
// configs shared between classes and repositories (each blob counted once
// per scope, in the best class), an index's children, a referrer, a
// manifest withdrawn while tagged (kept by the time machine) and one
// withdrawn untagged (reclaimable at once, its grace notwithstanding). A
// collection then deletes exactly what was reclaimable, and the window's
// end moves the time machine's bytes to reclaimable.
func TestUsageSplit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		p := review.DefaultPolicy()
		const app, other = "team/app", "team/other"
		shared := []byte("a layer three images share")
		var hs []classed
		add := func(repo string, m registryenv.Manifest, c meta.HeldClass) registryenv.Manifest {
			hs = append(hs, classed{repo, m, c})
			return m
		}

		gone := add(app, e.PushImage(app, "", []byte("pushed by digest, never tagged")), meta.HeldReclaimable)
		live := add(app, e.PushImage(app, "v1", shared, []byte("live layer")), meta.HeldLive)
		// The children share their config (pushed at the same time under
		// no tag) with gone: it is held live.
		c1 := add(app, e.PushImage(app, "", []byte("child one")), meta.HeldLive)
		c2 := add(app, e.PushImage(app, "", shared), meta.HeldLive)
		add(app, e.PushIndex(app, "multi", c1, c2), meta.HeldLive)
		add(app, e.PushReferrer(app, live, "application/vnd.example.sig", []byte("signature")), meta.HeldLive)
		old := add(app, e.PushImage(app, "old", shared, []byte("old layer")), meta.HeldTimeMachine)
		add(app, e.PushReferrer(app, old, "application/vnd.example.sig", []byte("old signature")), meta.HeldTimeMachine)
		// A referrer withdrawn by a DELETE: its live subject does not keep it.
		wsig := add(app, e.PushReferrer(app, live, "application/vnd.example.sbom", []byte("withdrawn sbom")), meta.HeldReclaimable)
		deleteRef(t, e, app, wsig.Digest.String())
		add(other, e.PushImage(other, "v1", shared, []byte("other layer")), meta.HeldLive)

		e.Clock.Add(2 * p.Grace) // past the grace of every push so far
		deleteRef(t, e, app, "old")
		add(app, e.PushImage(app, "", []byte("fresh layer")), meta.HeldUntagged)
		wt := add(app, e.PushImage(app, "w", []byte("withdrawn, was tagged")), meta.HeldTimeMachine)
		deleteRef(t, e, app, wt.Digest.String())
		wd := add(app, e.PushImage(app, "", []byte("withdrawn, never tagged")), meta.HeldReclaimable)
		deleteRef(t, e, app, wd.Digest.String())

		for _, scope := range []string{app, other, "team"} {
			checkSplit(t, e, scope, hs)
		}
		s := split(t, e, "team")
		if got := s[meta.HeldLive].Blobs; got == 0 {
			t.Fatal("no live blob")
		}

		// A collection deletes exactly the reclaimable manifests (their
		// blobs are no longer held by any manifest of the scope).
		sum := collectAll(t, e, p)
		if got := sum.Deleted[review.KindManifest]; got != 3 {
			t.Errorf("collection deleted %d manifests, want the 3 reclaimable ones (%s, %s, %s)", got, gone.Digest, wd.Digest, wsig.Digest)
		}
		hs = slices.DeleteFunc(hs, func(h classed) bool { return h.class == meta.HeldReclaimable })
		checkSplit(t, e, "team", hs)

		// Past the window, the time machine's manifests and the fresh one
		// are reclaimable; the live ones stay live.
		e.Clock.Add(p.TagRetention)
		for i := range hs {
			if hs[i].class != meta.HeldLive {
				hs[i].class = meta.HeldReclaimable
			}
		}
		checkSplit(t, e, "team", hs)
		collectAll(t, e, p)
		hs = slices.DeleteFunc(hs, func(h classed) bool { return h.class == meta.HeldReclaimable })
		checkSplit(t, e, "team", hs)
	})
}

// A scope that is absent, or too large for one read, is refused with the
// error the API maps.
func TestUsageSplitRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		e.PushImage("team/app", "v1", []byte("one"))
		e.PushImage("team/app", "v2", []byte("two"))
		for _, c := range []struct {
			scope string
			want  error
		}{
			{"nobody", registry.ErrNamespaceUnknown},
			{"team/nothing", registry.ErrNameUnknown},
			{"Team", registry.ErrNameInvalid},
			{"team", registry.ErrScopeTooLarge},
			{"team/app", registry.ErrScopeTooLarge},
			{"", registry.ErrInvalidArgument},
		} {
			_, err := usageIn(e, c.scope, true)
			if !errors.Is(err, c.want) {
				t.Errorf("split of %s: got %v, want %v", c.scope, err, c.want)
			}
		}
	}, func(o *registryenv.Options) { o.Registry.SplitLimit = 1 })
}

// Under collect_untagged: false a manifest pushed by digest and never
// tagged is kept past its grace: it counts as untagged, not reclaimable;
// one whose tag ended outside the window is reclaimable all the same.
func TestUsageSplitKeepUntagged(t *testing.T) {
	p := review.DefaultPolicy()
	p.CollectUntagged = false
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		pinned := e.PushImage("team/app", "", []byte("pinned by digest"))
		was := e.PushImage("team/app", "gone", []byte("was tagged"))
		deleteRef(t, e, "team/app", "gone")
		e.Clock.Add(p.TagRetention + p.Grace)
		checkSplit(t, e, "team/app", []classed{
			{"team/app", pinned, meta.HeldUntagged},
			{"team/app", was, meta.HeldReclaimable},
		})
	}, func(o *registryenv.Options) { o.Registry.Policy = p })
}

// A tag whose expiry passed holds its manifest in the time machine from the
// expiry on, before the collector's expiry scan records the end, as the
// time machine reads it; past the window from the expiry it is reclaimable.
func TestUsageSplitExpiry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		p := review.DefaultPolicy()
		m := e.PushImage("team/app", "pr-1", []byte("a pull request's build"))
		in := time.Hour
		if _, err := e.Registry.SetTagExpiry(e.Ctx, "team/app", "pr-1", registry.Expiry{In: &in}); err != nil {
			t.Fatal(err)
		}
		checkSplit(t, e, "team/app", []classed{{"team/app", m, meta.HeldLive}})
		e.Clock.Add(2 * time.Hour)
		checkSplit(t, e, "team/app", []classed{{"team/app", m, meta.HeldTimeMachine}})
		e.Clock.Add(p.TagRetention)
		checkSplit(t, e, "team/app", []classed{{"team/app", m, meta.HeldReclaimable}})
	})
}
