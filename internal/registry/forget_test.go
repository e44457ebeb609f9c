package registry_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// Forgetting a tag's ended lifetimes deletes them for good and leaves the
// live one: they cannot be restored, the next collection deletes the
// manifests they alone kept, and their blobs a grace later; a manifest
// something else keeps (a live tag) stays.
func TestForgetTag(t *testing.T) {
	var mu sync.Mutex
	var events []registry.Event
	logs := &testenv.LogBuffer{}
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		p := review.DefaultPolicy()
		const repo = "team/app"
		mu.Lock()
		events = nil
		mu.Unlock()
		logs.Reset()
		a := e.PushImage(repo, "ci", []byte("first build"))
		b := e.PushImage(repo, "ci", []byte("second build"))
		e.Tag(repo, "stable", b) // b stays live under another tag
		c := e.PushImage(repo, "ci", []byte("third build"))
		e.Clock.Add(2 * p.Grace)
		mid := e.Clock.Now()
		d := e.PushImage(repo, "ci", []byte("fourth build")) // c's lifetime ends at mid

		// --before: only a and b's lifetimes ended before mid.
		alice := meta.Actor("user:alice")
		f, err := e.Registry.ForgetTag(registry.WithActor(e.Ctx, alice), repo, "ci", &mid)
		if err != nil {
			t.Fatal(err)
		}
		want := []digest.Digest{a.Digest, b.Digest}
		slices.Sort(want)
		if f.Lifetimes != 2 || !slices.Equal(f.Manifests, want) {
			t.Fatalf("forget before %s: %d lifetimes of %v, want 2 of %v", mid, f.Lifetimes, f.Manifests, want)
		}
		// One event per manifest, and one log line, each naming the actor.
		mu.Lock()
		var got []digest.Digest
		for _, ev := range events {
			if ev.Kind == event.TagForgotten && ev.Tag == "ci" && ev.Repo == repo && ev.Actor == alice {
				got = append(got, digest.Digest(ev.Digest))
			}
		}
		mu.Unlock()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("tag.forgotten events by %s: got %v, want one per manifest %v", alice, got, want)
		}
		if l := logs.String(); !strings.Contains(l, "tag lifetimes forgotten") || !strings.Contains(l, "actor="+string(alice)) || !strings.Contains(l, "lifetimes=2") {
			t.Errorf("log after forget: %q, want a line naming the actor and the count", l)
		}
		if _, err := e.Registry.RestoreTag(e.Ctx, repo, "ci", registry.RestoreTarget{Digest: a.Digest.String()}); !errors.Is(err, registry.ErrTagUnknown) {
			t.Errorf("restore of a forgotten lifetime: got %v, want ErrTagUnknown", err)
		}
		if _, err := e.Registry.RestoreTag(e.Ctx, repo, "ci", registry.RestoreTarget{Digest: c.Digest.String()}); err != nil {
			t.Errorf("restore of a lifetime ended after --before: %v", err)
		}
		// ci is live on c again; d's lifetime is ended now. Forget all.
		f, err = e.Registry.ForgetTag(e.Ctx, repo, "ci", nil)
		if err != nil {
			t.Fatal(err)
		}
		if f.Lifetimes != 2 || !slices.Equal(f.Manifests, sortedDigests(c.Digest, d.Digest)) {
			t.Fatalf("forget: %d lifetimes of %v, want 2 (c's first lifetime and d's)", f.Lifetimes, f.Manifests)
		}
		hist, err := e.Registry.TagHistory(e.Ctx, repo, "ci")
		if err != nil {
			t.Fatal(err)
		}
		if len(hist.Lifetimes) != 1 || !hist.Lifetimes[0].Live || hist.Lifetimes[0].Manifest != c.Digest {
			t.Fatalf("history after forget: %+v, want only the live lifetime on %s", hist.Lifetimes, c.Digest)
		}
		// Nothing left to forget: not an error while the tag has a lifetime.
		if f, err := e.Registry.ForgetTag(e.Ctx, repo, "ci", nil); err != nil || f.Lifetimes != 0 {
			t.Errorf("second forget: %+v, %v; want nothing forgotten", f, err)
		}
		if _, err := e.Registry.ForgetTag(e.Ctx, repo, "never", nil); !errors.Is(err, registry.ErrTagUnknown) {
			t.Errorf("forget of a tag with no lifetime: got %v, want ErrTagUnknown", err)
		}

		// Past d's grace, the collection deletes a and d (b is live as
		// stable, c as ci), well inside the window that would have kept
		// them.
		e.Clock.Add(p.Grace + time.Second)
		sum := collectAll(t, e, p)
		if got := sum.Deleted[review.KindManifest]; got != 2 {
			t.Errorf("collection after forget deleted %d manifests, want 2 (%s, %s)", got, a.Digest, d.Digest)
		}
		for _, m := range []registryenv.Manifest{a, d} {
			if st := manifestStatus(e, repo, m.Digest); st != http.StatusNotFound {
				t.Errorf("manifest %s after the collection: %d, want 404", m.Digest, st)
			}
		}
		for _, m := range []registryenv.Manifest{b, c} {
			if st := manifestStatus(e, repo, m.Digest); st != http.StatusOK {
				t.Errorf("manifest %s kept by a live tag after the collection: %d, want 200", m.Digest, st)
			}
		}
		// Their blobs go a grace later, but for the config a shares with
		// b and c (pushed at the same time under the same tag).
		kept := map[digest.Digest]bool{}
		for _, m := range []registryenv.Manifest{b, c} {
			for l := range blobSizes(t, m) {
				kept[l] = true
			}
		}
		var layers []digest.Digest
		for _, m := range []registryenv.Manifest{a, d} {
			for l := range blobSizes(t, m) {
				if !kept[l] {
					layers = append(layers, l)
				}
			}
		}
		if len(layers) < 2 {
			t.Fatalf("blobs of a and d held by nothing else: %v, want at least their layers", layers)
		}
		e.Clock.Add(p.Grace + time.Second)
		collectAll(t, e, p)
		for _, l := range layers {
			err := e.Store.View(e.Ctx, func(tx meta.Tx) error { _, err := tx.Blob(e.Ctx, l, meta.LockNone); return err })
			if !errors.Is(err, meta.ErrNotFound) {
				t.Errorf("blob %s a grace after its manifest was collected: %v, want deleted", l, err)
			}
		}
		e.AssertFixedPoint(p)
	}, func(o *registryenv.Options) {
		o.Registry.Events = func(ev registry.Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev)
		}
		o.Registry.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
}

func sortedDigests(ds ...digest.Digest) []digest.Digest {
	slices.Sort(ds)
	return ds
}

func manifestStatus(e *registryenv.Env, repo string, d digest.Digest) int {
	e.T.Helper()
	resp, _ := e.Do("HEAD", fmt.Sprintf("/v2/%s/manifests/%s", repo, d), map[string]string{"Accept": registryenv.MediaImage}, nil)
	return resp.StatusCode
}
