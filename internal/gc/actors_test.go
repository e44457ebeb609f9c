package gc_test

// Who did it (docs/design/auth.md): every tag lifetime records who started
// it and who ended it and why, and events carry the actor.

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
)

// who is what a lifetime says about its actors.
type who struct {
	Digest    string
	StartedBy meta.Actor
	EndedBy   meta.Actor
	EndCause  meta.EndCause
}

func whoOf(ls []registry.Lifetime) []who {
	var out []who
	for _, l := range ls {
		out = append(out, who{l.Manifest.String(), l.StartedBy, l.EndedBy, l.EndCause})
	}
	return out
}

// actorRegistry is a registry on h's stores and clock whose events are
// recorded.
type actorRegistry struct {
	*registry.Registry
	mu     sync.Mutex
	events []registry.Event
}

func newActorRegistry(h *harness) *actorRegistry {
	r := &actorRegistry{}
	r.Registry = registry.New(h.store, h.raw, registry.Options{Now: h.clock.Now, Policy: h.opts.Policy,
		Events: func(e registry.Event) {
			r.mu.Lock()
			r.events = append(r.events, e)
			r.mu.Unlock()
		}})
	return r
}

// actorsOf lists the actors of the events of kind (and tag, if not "").
func (r *actorRegistry) actorsOf(kind event.Name, tag string) []meta.Actor {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []meta.Actor
	for _, e := range r.events {
		if e.Kind == kind && (tag == "" || e.Tag == tag) {
			out = append(out, e.Actor)
		}
	}
	return out
}

func (h *harness) putManifestAs(r *actorRegistry, a meta.Actor, repo, tag string, img v1.Image) {
	h.t.Helper()
	body, err := img.RawManifest()
	if err != nil {
		h.t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := r.PutManifest(registry.WithActor(h.ctx, a), repo, tag, string(mt), body); err != nil {
		h.t.Fatalf("%s tagging %s:%s: %v", a, repo, tag, err)
	}
}

// A push by alice, a move by bob, a DELETE of the tag by carol, a restore
// by dave, a restore by erin that moves it again, and a DELETE by digest
// by frank: each lifetime says who started it and who ended it and why,
// and each event who made it.
func TestTagLifetimesRecordActors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		alice, bob, carol := meta.UserActor("alice"), meta.RobotActor("ns+ci"), meta.UserActor("carol")
		dave, erin, frank := meta.UserActor("dave"), meta.UserActor("erin"), meta.UserActor("frank")
		img1, img2 := ociImage(t, 1), ociImage(t, 1)
		d1, d2 := h.pushImage("ns/app", "", img1), h.pushImage("ns/app", "", img2)
		r := newActorRegistry(h)

		h.putManifestAs(r, alice, "ns/app", "v1", img1)
		h.advance(time.Minute)
		h.putManifestAs(r, bob, "ns/app", "v1", img2)
		h.advance(time.Minute)
		if err := r.DeleteTag(registry.WithActor(h.ctx, carol), "ns/app", "v1"); err != nil {
			t.Fatal(err)
		}
		h.advance(time.Minute)
		if _, err := r.RestoreTag(registry.WithActor(h.ctx, dave), "ns/app", "v1", registry.RestoreTarget{Digest: d2.String()}); err != nil {
			t.Fatal(err)
		}
		h.advance(time.Minute)
		if _, err := r.RestoreTag(registry.WithActor(h.ctx, erin), "ns/app", "v1", registry.RestoreTarget{Digest: d1.String()}); err != nil {
			t.Fatal(err)
		}
		h.advance(time.Minute)
		h.putManifestAs(r, alice, "ns/app", "stable", img1)
		h.advance(time.Minute)
		if err := r.DeleteManifest(registry.WithActor(h.ctx, frank), "ns/app", d1.String()); err != nil {
			t.Fatal(err)
		}

		hist, err := r.TagHistory(h.ctx, "ns/app", "v1")
		if err != nil {
			t.Fatal(err)
		}
		want := []who{
			{d1.String(), erin, frank, meta.CauseWithdrawn},
			{d2.String(), dave, erin, meta.CauseMoved},
			{d2.String(), bob, carol, meta.CauseDeleted},
			{d1.String(), alice, bob, meta.CauseMoved},
		}
		if diff := cmp.Diff(want, whoOf(hist.Lifetimes)); diff != "" {
			t.Errorf("history of v1 (-want +got):\n%s", diff)
		}
		hist, err = r.TagHistory(h.ctx, "ns/app", "stable")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]who{{d1.String(), alice, frank, meta.CauseWithdrawn}}, whoOf(hist.Lifetimes)); diff != "" {
			t.Errorf("history of stable (-want +got):\n%s", diff)
		}

		for _, c := range []struct {
			kind event.Name
			tag  string
			want []meta.Actor
		}{
			{event.TagPushed, "v1", []meta.Actor{alice, bob}},
			{event.TagDeleted, "v1", []meta.Actor{carol, frank}},
			{event.TagRestored, "v1", []meta.Actor{dave, erin}},
			{event.ManifestDeleted, "", []meta.Actor{frank}},
		} {
			if diff := cmp.Diff(c.want, r.actorsOf(c.kind, c.tag)); diff != "" {
				t.Errorf("actors of %s %s events (-want +got):\n%s", c.kind, c.tag, diff)
			}
		}
	})
}

// An expiry is the collector's: the history says so as soon as the expiry
// passed, before the collector records the end, and after; so do the
// collector's events. A purge's events carry the purge's actor.
func TestExpiryAndPurgeActors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		alice := meta.UserActor("alice")
		r := newActorRegistry(h)
		img := labeledImage(t, map[string]string{registry.LabelExpiresAfter: "2h"})
		d := h.pushImage("ns/app", "", img)
		h.putManifestAs(r, alice, "ns/app", "nightly", img)
		wantExpired := []who{{d.String(), alice, meta.ActorCollector, meta.CauseExpired}}

		h.advance(2*time.Hour + time.Minute)
		hist, err := r.TagHistory(h.ctx, "ns/app", "nightly")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantExpired, whoOf(hist.Lifetimes)); diff != "" {
			t.Errorf("history after the expiry, before the collector ran (-want +got):\n%s", diff)
		}
		if hist.Lifetimes[0].End != nil {
			t.Errorf("end recorded before the collector ran: %v", hist.Lifetimes[0].End)
		}

		if s := h.collect(); s.Expired != 1 {
			t.Fatalf("expired %d tags, want 1", s.Expired)
		}
		hist, err = r.TagHistory(h.ctx, "ns/app", "nightly")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantExpired, whoOf(hist.Lifetimes)); diff != "" {
			t.Errorf("history after the collector ended it (-want +got):\n%s", diff)
		}
		if l := hist.Lifetimes[0]; l.End == nil || l.Tag.EndActor != meta.ActorCollector || l.Tag.EndCause != meta.CauseExpired {
			t.Errorf("stored end: got %v by %q (%q), want the expiry by the collector", l.End, l.Tag.EndActor, l.Tag.EndCause)
		}
		ev := h.eventsOf(event.TagExpired)
		if len(ev) != 1 || ev[0].Actor != meta.ActorCollector {
			t.Errorf("tag.expired events: got %+v, want one by the collector", ev)
		}

		// The window closes: the collector's deletions are its own.
		h.advance(retention)
		h.settle()
		for _, e := range h.eventsOf(event.TagCollected) {
			if e.Actor != meta.ActorCollector {
				t.Errorf("collector event %s %s: actor %q, want collector", e.Kind, e.Tag, e.Actor)
			}
		}
		if len(h.eventsOf(event.TagCollected)) == 0 {
			t.Error("no tag.collected event after the window")
		}

		root := meta.UserActor("root")
		h.pushImage("ns/gone", "v1", ociImage(t, 1))
		if _, err := h.gc.Purge(registry.WithActor(h.ctx, root), "ns", nil); err != nil {
			t.Fatalf("purge: %v", err)
		}
		var purged int
		for _, e := range h.eventsOf(event.RepositoryPurged) {
			purged++
			if e.Actor != root {
				t.Errorf("purge event %s %s: actor %q, want %q", e.Kind, e.Repository, e.Actor, root)
			}
		}
		if purged == 0 {
			t.Error("no repository.purged event")
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, e := range h.events {
			if e.Repository == "ns/gone" && e.Actor != root {
				t.Errorf("purge event %s %s %s: actor %q, want %q", e.Kind, e.Repository, e.Tag, e.Actor, root)
			}
		}
	})
}
