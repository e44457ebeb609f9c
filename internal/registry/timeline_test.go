package registry_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// The timeline tells a push from a restore by the manifest's push time,
// names the manifest that replaced a moved lifetime, and says "unknown"
// once the manifest was pushed again after the lifetime started; it pages
// by lifetime and keeps the live one on every page.
func TestTagTimeline(t *testing.T) {
	registryenv.ForEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		a := e.PushImage("ns/app", "v1", []byte("a"))
		e.Clock.Add(time.Minute)
		b := e.PushImage("ns/app", "v1", []byte("b"))
		e.Clock.Add(time.Minute)
		if _, err := e.Registry.RestoreTag(e.Ctx, "ns/app", "v1", registry.RestoreTarget{Digest: a.Digest.String()}); err != nil {
			t.Fatal(err)
		}
		e.Clock.Add(time.Minute)
		tl, err := e.Registry.TagTimeline(e.Ctx, "ns/app", "v1", registry.TimelineQuery{})
		if err != nil {
			t.Fatal(err)
		}
		type row struct {
			d       digest.Digest
			how     registry.StartKind
			live    bool
			movedTo digest.Digest
		}
		got := func(tl registry.TagTimeline) []row {
			var out []row
			for _, e := range tl.Entries {
				out = append(out, row{e.Manifest, e.How, e.Live, e.MovedTo})
			}
			return out
		}
		want := []row{{a.Digest, registry.StartRestored, true, ""}, {b.Digest, registry.StartPushed, false, a.Digest}, {a.Digest, registry.StartPushed, false, b.Digest}}
		if g := got(tl); len(g) != 3 || g[0] != want[0] || g[1] != want[1] || g[2] != want[2] {
			t.Errorf("timeline: got %+v, want %+v", g, want)
		}
		if tl.Live == nil || tl.Live.Manifest != a.Digest || tl.Total != 3 || tl.Next != 0 {
			t.Errorf("live %+v, total %d, next %d", tl.Live, tl.Total, tl.Next)
		}
		if !tl.Entries[1].Restorable || !tl.Entries[1].Stored || tl.Entries[1].Size <= b.Size {
			t.Errorf("b's lifetime: restorable %v, stored %v, size %d (its manifest alone is %d)", tl.Entries[1].Restorable, tl.Entries[1].Stored, tl.Entries[1].Size, b.Size)
		}

		// a pushed again, by digest: its restored lifetime no longer tells.
		if st, body := e.PutManifest("ns/app", a.Digest.String(), a.MediaType, a.Body); st != http.StatusCreated {
			t.Fatalf("PUT by digest: %d %s", st, body)
		}
		tl, err = e.Registry.TagTimeline(e.Ctx, "ns/app", "v1", registry.TimelineQuery{Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(tl.Entries) != 2 || tl.Entries[0].How != registry.StartUnknown || tl.Next != tl.Entries[1].ID {
			t.Fatalf("first page of 2: %+v, next %d", got(tl), tl.Next)
		}
		page2, err := e.Registry.TagTimeline(e.Ctx, "ns/app", "v1", registry.TimelineQuery{Before: tl.Next, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(page2.Entries) != 1 || page2.Entries[0].Manifest != a.Digest || page2.Next != 0 || page2.Live == nil || page2.Live.Manifest != a.Digest {
			t.Errorf("second page: %+v, next %d, live %+v", got(page2), page2.Next, page2.Live)
		}

		for _, c := range []struct {
			repo, tag string
			q         registry.TimelineQuery
			want      error
		}{
			{"ns/app", "nope", registry.TimelineQuery{}, registry.ErrTagUnknown},
			{"ns/nope", "v1", registry.TimelineQuery{}, registry.ErrNameUnknown},
			{"ns/app", "v1", registry.TimelineQuery{Before: 1 << 40}, registry.ErrInvalidArgument},
			{"ns/app", "-bad", registry.TimelineQuery{}, registry.ErrTagInvalid},
		} {
			if _, err := e.Registry.TagTimeline(e.Ctx, c.repo, c.tag, c.q); !errors.Is(err, c.want) {
				t.Errorf("TagTimeline(%s, %s, %+v): got %v, want %v", c.repo, c.tag, c.q, err, c.want)
			}
		}
	})
}
