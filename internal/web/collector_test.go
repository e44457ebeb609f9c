package web_test

import (
	"html"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/bytesize"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv/registryenv"
	"github.com/berth/berth/internal/web"
)

// withCollector gives the web interface a collector over the env's stores
// with the registry's windows, and hands it to the test.
func withCollector(c **gc.Collector, workers int) func(*envOptions) {
	return func(o *envOptions) {
		o.workers = workers
		o.collector = func(e *registryenv.Env) web.Collector {
			*c = gc.New(e.Store, e.Blobs, gc.Options{Now: e.Clock.Now, Policy: review.DefaultPolicy()})
			return *c
		}
	}
}

// deletionRows counts the rows of the recent deletions' table.
func deletionRows(p page) int {
	_, table, ok := strings.Cut(p.Body, `<table class="deletions">`)
	if !ok {
		return 0
	}
	table, _, _ = strings.Cut(table, "</table>")
	return strings.Count(table, "<tr>") - 1 // the header's
}

// The collector page, for registry administrators: the queue, bytes
// reclaimable only when asked, and after a real collection the objects it
// deleted, each with its reason.
func TestCollectorPage(t *testing.T) {
	var c *gc.Collector
	forEachBackend(t, func(t *testing.T, e *webEnv) {
		e.addUser("root", "root-password", true)
		e.addUser("alice", "alice-password", false)
		layer := []byte("the layer only team/app:v1 has")
		e.PushImage("team/app", "v1", layer)
		e.PushImage("team/app", "v2", []byte("the layer of team/app:v2"))
		e.grant("alice", auth.RoleAdmin, "team")
		root, alice, anon := e.browser(), e.browser(), e.browser()
		root.signIn("root", "root-password")
		alice.signIn("alice", "alice-password")

		p := root.get("/-/collector")
		wantStatus(t, p, http.StatusOK)
		st, err := c.Status(e.Ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"<h1>Collector</h1>",
			`<a href="/-/collector?reclaimable=1">Compute bytes reclaimable now</a>`,
			"<dt>Pending reviews</dt><dd>" + strconv.FormatInt(st.Pending, 10) + "</dd>",
			"runs no background collector",
			"each replica shows its own",
			"Nothing deleted since this server started.",
		} {
			if !strings.Contains(p.Body, want) {
				t.Errorf("the collector page lacks %q:\n%s", want, p.Body)
			}
		}
		if strings.Contains(p.Body, "a dry run of a collection now") {
			t.Errorf("the bytes reclaimable were computed unasked")
		}

		// v1 deleted, and past its time-machine window and the grace: a
		// first run deletes its tag row and manifest; the links and blobs
		// come due one grace later.
		if err := e.Registry.DeleteTag(e.Ctx, "team/app", "v1"); err != nil {
			t.Fatal(err)
		}
		e.Clock.Add(review.DefaultTagRetention + review.DefaultGrace + time.Hour)
		first, err := c.RunOnce(e.Ctx, gc.RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e.Clock.Add(review.DefaultGrace + time.Minute)
		root.signIn("root", "root-password") // the sessions ended meanwhile
		alice.signIn("alice", "alice-password")

		// Unasked, the bytes reclaimable are not computed; asked, a dry
		// run computes them, which deletes nothing and is not recorded.
		p = root.get("/-/collector")
		if strings.Contains(p.Body, "a dry run of a collection now") || !strings.Contains(p.Body, "Compute bytes reclaimable now") {
			t.Errorf("the bytes reclaimable were computed unasked:\n%s", p.Body)
		}
		before := deletionRows(p)
		p = root.get("/-/collector?reclaimable=1")
		wantStatus(t, p, http.StatusOK)
		st, err = c.Status(e.Ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if st.ReclaimableNow < int64(len(layer)) {
			t.Fatalf("bytes reclaimable after deleting v1: %d, want at least its layer's %d", st.ReclaimableNow, len(layer))
		}
		if !strings.Contains(p.Body, "<strong>"+bytesize.Format(st.ReclaimableNow)+"</strong> <span class=\"muted\">(a dry run") ||
			strings.Contains(p.Body, "Compute bytes reclaimable now") || deletionRows(p) != before {
			t.Errorf("?reclaimable=1: want %s reclaimable, computed, and no deletion recorded:\n%s", bytesize.Format(st.ReclaimableNow), p.Body)
		}
		if p := root.get("/-/collector?reclaimable=maybe"); p.StatusCode != http.StatusBadRequest {
			t.Errorf("?reclaimable=maybe: got %d, want 400", p.StatusCode)
		}

		// The second run deletes the links and blobs: the page lists
		// what both deleted, and why.
		s, err := c.RunOnce(e.Ctx, gc.RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if first.Deleted[review.KindTag] != 1 || s.Deleted[review.KindBlob] == 0 || s.BytesFreed != st.ReclaimableNow {
			t.Fatalf("the runs deleted %v then %v (%d bytes), want v1's tag row, then its blobs (%d bytes)",
				first.Deleted, s.Deleted, s.BytesFreed, st.ReclaimableNow)
		}
		deleted := 0
		for _, n := range first.Deleted {
			deleted += n
		}
		for _, n := range s.Deleted {
			deleted += n
		}
		p = root.get("/-/collector")
		wantStatus(t, p, http.StatusOK)
		if got := deletionRows(p); got != deleted {
			t.Errorf("the page lists %d deletions, want the run's %d", got, deleted)
		}
		deletions := section(t, p, "Recent deletions")
		a := c.Activity()
		for _, d := range a.Deletions {
			if !strings.Contains(deletions, html.EscapeString(d.Reason)) || !strings.Contains(deletions, "<td>"+string(d.Kind)+"</td>") {
				t.Errorf("the deletions lack the %s deletion's kind and reason %q", d.Kind, d.Reason)
			}
		}
		for _, want := range []string{">team/app:v1</code>", digest.FromBytes(layer).String(), bytesize.Format(int64(len(layer)))} {
			if !strings.Contains(deletions, want) {
				t.Errorf("the deletions lack %q:\n%s", want, deletions)
			}
		}
		if runs := section(t, p, "Recent runs"); !strings.Contains(runs, bytesize.Format(s.BytesFreed)) || !strings.Contains(runs, "1 tag") {
			t.Errorf("the recent runs lack the run (%s freed, 1 tag):\n%s", bytesize.Format(s.BytesFreed), runs)
		}
		if !strings.Contains(p.Body, "<dt>Objects deleted</dt><dd>"+strconv.Itoa(deleted)+"</dd>") {
			t.Errorf("the totals do not count the %d objects deleted", deleted)
		}

		// Registry administrators only: a namespace's administrator and
		// an anonymous visitor are refused, and not shown the link.
		for name, b := range map[string]*browser{"alice": alice, "anonymous": anon} {
			p := b.get("/-/collector")
			if p.StatusCode != http.StatusForbidden || strings.Contains(p.Body, "Recent deletions") {
				t.Errorf("%s GET /-/collector: got %d, want 403 showing nothing", name, p.StatusCode)
			}
			if home := b.get("/"); strings.Contains(home.Body, `href="/-/collector"`) {
				t.Errorf("%s is shown the collector's link", name)
			}
		}
		if p := alice.get("/-/collector?reclaimable=1"); p.StatusCode != http.StatusForbidden {
			t.Errorf("alice GET /-/collector?reclaimable=1: got %d, want 403", p.StatusCode)
		}
	}, withCollector(&c, 0))
}

// With background workers the page does not say there are none; a server
// built without a collector says it has none.
func TestCollectorPageWorkers(t *testing.T) {
	var c *gc.Collector
	e := newWebEnv(t, backend(t), withCollector(&c, 2), func(o *envOptions) { o.noAuth = true })
	p := e.browser().get("/-/collector")
	wantStatus(t, p, http.StatusOK)
	if strings.Contains(p.Body, "no background collector") || !strings.Contains(p.Body, "Compute bytes reclaimable now") {
		t.Errorf("with 2 workers:\n%s", p.Body)
	}
	e = newWebEnv(t, backend(t), func(o *envOptions) { o.noAuth = true })
	p = e.browser().get("/-/collector")
	wantStatus(t, p, http.StatusOK)
	if !strings.Contains(p.Body, "runs no garbage collector") {
		t.Errorf("without a collector:\n%s", p.Body)
	}
}
