package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/bytesize"
	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/testenv/registryenv"
	"github.com/berth/berth/internal/web"
)

// repoLinks lists the repositories a page links from its rows, in order.
func repoLinks(p page) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<a href="/-/repositories/([^"]+)">([^<]+)</a>`).FindAllStringSubmatch(p.Body, -1) {
		if m[1] == m[2] { // the link is named with the full name
			out = append(out, m[1])
		}
	}
	return out
}

// splitBytes is the bytes the page's split table shows for a class.
func splitBytes(t *testing.T, p page, class string) string {
	t.Helper()
	m := regexp.MustCompile(`<th scope="row">` + regexp.QuoteMeta(class) + `</th>\s*<td class="num">([^<]+)</td>`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("%s: no split row %q in\n%s", p.Request.URL, class, p.Body)
	}
	return m[1]
}

// blobBytes sums the config and layer sizes an image manifest lists.
func blobBytes(t *testing.T, m registryenv.Manifest) int64 {
	t.Helper()
	var body struct {
		Config registryenv.Descriptor
		Layers []registryenv.Descriptor
	}
	if err := json.Unmarshal(m.Body, &body); err != nil {
		t.Fatal(err)
	}
	n := body.Config.Size
	for _, l := range body.Layers {
		n += l.Size
	}
	return n
}

// checkPage fails unless the page is a 200 with one h1 saying h1, and no
// inline style or script.
func checkPage(t *testing.T, p page, h1 string) {
	t.Helper()
	if p.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %d, want 200; body\n%s", p.Request.URL, p.StatusCode, p.Body)
	}
	if want := "<h1>" + h1 + "</h1>"; !strings.Contains(p.Body, want) || strings.Count(p.Body, "<h1") != 1 {
		t.Errorf("GET %s: want one h1 %s", p.Request.URL, want)
	}
	for _, bad := range []string{"<style", "style=", " onclick=", "<script>"} {
		if strings.Contains(p.Body, bad) {
			t.Errorf("GET %s: the page contains %q", p.Request.URL, bad)
		}
	}
}

// The namespace page: its usage split by what holds the bytes, its quota
// as a meter and in words, retention and visibility, its repositories
// linked by their full names, and the link to its policies; 404 for a
// namespace the visitor may not read and for one that does not exist; a
// user holding roles on some repositories only sees those, nothing else.
func TestNamespacePage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *webEnv) {
		e.addUser("root", "root-password", true)
		e.addUser("alice", "alice-password", false)
		e.addUser("bob", "bob-password", false)
		e.addUser("carol", "carol-password", false)
		base := []byte("a base layer both tags share")
		v1 := e.PushImage("team/app", "v1", base, []byte("layer of v1"))
		v2 := e.PushImage("team/app", "v2", base, []byte("layer of v2, the one that is removed"))
		e.PushImage("team/db", "latest", []byte("layer of team/db"))
		e.PushImage("pub/tools", "latest", []byte("layer of pub/tools"))
		e.Exec(`UPDATE namespace SET public = TRUE WHERE name = 'pub'`)
		if err := e.Registry.DeleteTag(e.Ctx, "team/app", "v2"); err != nil {
			t.Fatal(err)
		}
		retention := 48 * time.Hour
		if _, err := e.Registry.SetNamespaceRetention(e.Ctx, "team", &retention); err != nil {
			t.Fatal(err)
		}
		if err := e.Auth.Grant(e.Ctx, "alice", auth.RoleRead, "team", meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		if err := e.Auth.Grant(e.Ctx, "bob", auth.RoleWrite, "team/db", meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		u, err := e.Registry.Usage(e.Ctx, "team", "", false)
		if err != nil {
			t.Fatal(err)
		}
		limit, warn := u.Bytes*10/6, 50 // 60% used, past the warning
		if _, err := e.Registry.SetQuota(e.Ctx, "team", limit, &warn); err != nil {
			t.Fatal(err)
		}

		alice := e.browser()
		alice.signIn("alice", "alice-password")
		p := alice.get("/-/namespaces/team")
		checkPage(t, p, "team")
		if got, want := strings.Join(repoLinks(p), " "), "team/app team/db"; got != want {
			t.Errorf("repositories: got %q, want %q", got, want)
		}
		pct := u.Bytes * 100 / limit
		for _, want := range []string{
			"private: only those granted a role may pull",
			"removed tags are restorable for " + duration.Format(retention),
			bytesize.Format(limit), fmt.Sprintf("warning at 50%% (%s)", bytesize.Format(limit/2)),
			fmt.Sprintf(`value="%d"`, pct), fmt.Sprintf("%d%% used (%s of %s)", pct, bytesize.Format(u.Bytes), bytesize.Format(limit)),
			"past the warning threshold",
			`href="/-/policies?scope=team"`,
			fmt.Sprintf("team holds %s: %d manifests and %d blobs", bytesize.Format(u.Bytes), u.Manifests, u.Blobs),
		} {
			if !strings.Contains(p.Body, want) {
				t.Errorf("the namespace page lacks %q:\n%s", want, p.Body)
			}
		}
		// v2's manifest, config and own layer are held only by the time
		// machine; the shared base layer stays live with v1.
		if got, want := splitBytes(t, p, "Only by the time machine"), bytesize.Format(v2.Size+blobBytes(t, v2)-int64(len(base))); got != want {
			t.Errorf("time machine: got %s, want %s", got, want)
		}
		if got, notWant := splitBytes(t, p, "Held by live tags"), bytesize.Format(v1.Size+blobBytes(t, v1)); got == notWant || got == "0 B" {
			t.Errorf("live: got %s, want v1 and team/db together", got)
		}
		if got := splitBytes(t, p, "Reclaimable now"); got != "0 B" {
			t.Errorf("reclaimable: got %s, want 0 B", got)
		}

		// An administrator sees it too; nobody sees a namespace that does
		// not exist.
		root := e.browser()
		root.signIn("root", "root-password")
		checkPage(t, root.get("/-/namespaces/team"), "team")
		if p := root.get("/-/namespaces/nope"); p.StatusCode != http.StatusNotFound {
			t.Errorf("an unknown namespace: got %d, want 404", p.StatusCode)
		}

		// Bob holds a role on team/db only: he sees that repository and
		// nothing of the namespace.
		bob := e.browser()
		bob.signIn("bob", "bob-password")
		p = bob.get("/-/namespaces/team")
		checkPage(t, p, "team")
		if got := strings.Join(repoLinks(p), " "); got != "team/db" {
			t.Errorf("bob: repositories %q, want team/db alone", got)
		}
		for _, secret := range []string{"team/app", "Quota", "holds", "Retention"} {
			if strings.Contains(p.Body, secret) {
				t.Errorf("bob's namespace page shows %q", secret)
			}
		}

		// Private: 404 to anonymous visitors and to a user without a
		// role, as for a namespace that does not exist.
		anon := e.browser()
		carol := e.browser()
		carol.signIn("carol", "carol-password")
		for who, b := range map[string]*browser{"anonymous": anon, "carol": carol} {
			for _, path := range []string{"/-/namespaces/team", "/-/namespaces/nope"} {
				if p := b.get(path); p.StatusCode != http.StatusNotFound || strings.Contains(p.Body, "team/app") {
					t.Errorf("%s GET %s: got %d, want the 404 page", who, path, p.StatusCode)
				}
			}
		}
		p = anon.get("/-/namespaces/pub")
		checkPage(t, p, "pub")
		if got := strings.Join(repoLinks(p), " "); got != "pub/tools" || !strings.Contains(p.Body, "public: anyone may pull") {
			t.Errorf("anonymous on pub: repositories %q; want pub/tools, public", got)
		}
		if strings.Contains(p.Body, "<meter") || !strings.Contains(p.Body, "<dd>\n    none\n  </dd>") {
			t.Errorf("pub has no quota, the page shows one:\n%s", p.Body)
		}
	})
}

// Repositories come 50 to a page by name (?after=); a namespace whose
// repositories do not fit on the page, or that holds more manifests or
// live tags than the page splits at every visit, offers the split as a
// link (?split=1) instead.
func TestNamespacePages(t *testing.T) {
	e := newWebEnv(t, backend(t), func(o *envOptions) { o.noAuth = true })
	var all []string
	for i := range 52 {
		repo := fmt.Sprintf("big/r%02d", i)
		e.PushImage(repo, "1", []byte(repo))
		all = append(all, repo)
	}
	b := e.browser()
	first := b.get("/-/namespaces/big")
	checkPage(t, first, "big")
	if got := repoLinks(first); len(got) != 50 || got[0] != all[0] || got[49] != all[49] {
		t.Fatalf("first page: got %d repositories %v", len(got), got)
	}
	next := regexp.MustCompile(`href="([^"]+)" rel="next">Next page`).FindStringSubmatch(first.Body)
	if next == nil || next[1] != "/-/namespaces/big?after=big%2fr49" {
		t.Fatalf("first page: next link %v, want ?after=%s", next, all[49])
	}
	second := b.get(next[1])
	if got := repoLinks(second); strings.Join(got, " ") != strings.Join(all[50:], " ") {
		t.Errorf("second page: got %v, want %v", got, all[50:])
	}
	if strings.Contains(second.Body, `rel="next"`) || !strings.Contains(second.Body, `<a href="/-/namespaces/big">First page</a>`) {
		t.Errorf("the last page: want a first page link and no next one:\n%s", second.Body)
	}
	for _, bad := range []string{"?after=other/r01", "?after=big/-x"} {
		if p := b.get("/-/namespaces/big" + bad); p.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: got %d, want 400", bad, p.StatusCode)
		}
	}

	// Its repositories do not fit on one page: the split is offered, not
	// read.
	if strings.Contains(first.Body, "Held by live tags") || !strings.Contains(first.Body, `href="/-/namespaces/big?split=1">Classify the bytes`) {
		t.Errorf("52 repositories: want the split offered, not read:\n%s", first.Body)
	}
	p := b.get("/-/namespaces/big?split=1")
	if got := splitBytes(t, p, "Held by live tags"); got == "0 B" {
		t.Errorf("?split=1: live %s, want every byte", got)
	}
	if !strings.Contains(p.Body, `href="/-/namespaces/big?after=big%2fr49&amp;split=1" rel="next"`) {
		t.Errorf("?split=1: the next page's link does not keep the split:\n%s", p.Body)
	}

	// A namespace that fits is split at every visit, unless it holds more
	// manifests or live tags than the bound.
	m := e.PushImage("small/app", "a", []byte("small"))
	e.Tag("small/app", "b", m)
	e.Tag("small/app", "c", m)
	if p := b.get("/-/namespaces/small"); !strings.Contains(p.Body, "Held by live tags") {
		t.Errorf("a small namespace: want the split read:\n%s", p.Body)
	}
	web.SetSplitAuto(t, 2)
	if p := b.get("/-/namespaces/small"); strings.Contains(p.Body, "Held by live tags") || !strings.Contains(p.Body, "?split=1") {
		t.Errorf("3 live tags over a bound of 2: want the split offered, not read:\n%s", p.Body)
	}
}
