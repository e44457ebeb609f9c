package web_test

import (
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// tagEnv is a webEnv whose registry API runs with access control on, each
// push signed as the env's current pusher, so that the history records
// real actors. Users: alice and bob write in namespace team, carol reads.
type tagEnv struct {
	*webEnv
	as string // the pusher: user name ("" anonymous)
}

const tagPass = "correct horse battery"

func newTagEnv(t *testing.T, e *webEnv) *tagEnv {
	t.Helper()
	te := &tagEnv{webEnv: e}
	apiHandler := api.New(e.Registry, api.Options{Auth: e.Auth})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if te.as != "" {
			r.SetBasicAuth(te.as, tagPass)
		}
		apiHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.Server, e.Host = srv, strings.TrimPrefix(srv.URL, "http://")
	e.createNamespace("team", false)
	for _, u := range []struct {
		name string
		role auth.Role
	}{{"alice", auth.RoleWrite}, {"bob", auth.RoleWrite}, {"carol", auth.RoleRead}} {
		e.addUser(u.name, tagPass, false)
		if err := e.Auth.Grant(e.Ctx, u.name, u.role, "team", meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
	}
	return te
}

// ociDigest is what the OCI API answers for a HEAD of repo:tag as alice:
// the digest, or "" for a 404.
func (e *tagEnv) ociDigest(repo, tag string) string {
	e.T.Helper()
	defer func(as string) { e.as = as }(e.as)
	e.as = "alice"
	resp, body := e.Do(http.MethodHead, "/v2/"+repo+"/manifests/"+tag, map[string]string{"Accept": registryenv.MediaImage}, nil)
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Header.Get("Docker-Content-Digest")
	case http.StatusNotFound:
		return ""
	}
	e.T.Fatalf("HEAD %s:%s: got %d; body %s", repo, tag, resp.StatusCode, body)
	return ""
}

// history is the text of each item of the page's list "History" (tags
// stripped, spaces collapsed), newest first.
var (
	historyList = regexp.MustCompile(`(?s)<ol class="timeline" aria-labelledby="history">(.*?)</ol>`)
	listItem    = regexp.MustCompile(`(?s)<li class="lifetime[^"]*">(.*?)</li>`)
	anyTag      = regexp.MustCompile(`<[^>]*>`)
	spaces      = regexp.MustCompile(`\s+`)
)

func history(t *testing.T, p page) []string {
	t.Helper()
	if !strings.Contains(p.Body, `<h2 id="history">History</h2>`) {
		t.Fatalf("%s: no heading History", p.Request.URL)
	}
	m := historyList.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("%s: no list labelled History in\n%s", p.Request.URL, p.Body)
	}
	var out []string
	for _, li := range listItem.FindAllStringSubmatch(m[1], -1) {
		out = append(out, text(li[1]))
	}
	return out
}

// text is HTML as a reader hears it: no tags, entities decoded, spaces
// collapsed.
func text(s string) string {
	return strings.TrimSpace(spaces.ReplaceAllString(html.UnescapeString(anyTag.ReplaceAllString(s, "")), " "))
}

// restoreButtons lists the accessible names of the page's Restore buttons.
var restoreButton = regexp.MustCompile(`<button type="submit" aria-label="(Restore [^"]*)">Restore</button>`)

func restoreButtons(p page) []string {
	var out []string
	for _, m := range restoreButton.FindAllStringSubmatch(p.Body, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

func short(d digest.Digest) string { return d.String()[:len("sha256:")+12] }

func minute(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") + " UTC" }

// wantItem fails unless item holds each of parts, in order.
func wantItem(t *testing.T, i int, item string, parts ...string) {
	t.Helper()
	rest := item
	for _, p := range parts {
		k := strings.Index(rest, p)
		if k < 0 {
			t.Errorf("history item %d: %q lacks %q (in order)", i, item, p)
			return
		}
		rest = rest[k+len(p):]
	}
}

func statusOf(t *testing.T, p page) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<p class="flash" role="status">(.*?)</p>`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("%s: no role=status message in\n%s", p.Request.URL, p.Body)
	}
	return text(m[1])
}

func alertOf(t *testing.T, p page) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<p class="error" role="alert">(.*?)</p>`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("%s: no role=alert message in\n%s", p.Request.URL, p.Body)
	}
	return text(m[1])
}

// follow GETs the Location of a 303.
func (b *browser) follow(p page) page {
	b.e.T.Helper()
	if p.StatusCode != http.StatusSeeOther {
		b.e.T.Fatalf("%s %s: got %d, want 303; body\n%s", p.Request.Method, p.Request.URL, p.StatusCode, p.Body)
	}
	return b.get(p.Header.Get("Location"))
}

// A tag pushed by alice, moved and deleted by bob: its page tells each
// lifetime in words with its actors; bob restores the first one over the
// form and the OCI API serves it again; he sets and clears an expiry.
func TestTagHistoryRestoreExpiry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, we *webEnv) {
		e := newTagEnv(t, we)
		const path = "/-/repositories/team/app/-/tags/v1"
		e.as = "alice"
		t0 := e.Clock.Now()
		a := e.PushImage("team/app", "v1", []byte("layer a"))
		e.Clock.Add(time.Hour)
		t1 := e.Clock.Now()
		e.as = "bob"
		b := e.PushImage("team/app", "v1", []byte("layer b"))
		e.Clock.Add(time.Hour)
		t2 := e.Clock.Now()
		resp, body := e.Do(http.MethodDelete, "/v2/team/app/manifests/v1", nil, nil)
		e.Expect(resp, body, http.StatusAccepted)
		e.Clock.Add(time.Minute)
		if got := e.ociDigest("team/app", "v1"); got != "" {
			t.Fatalf("after the delete, v1 resolves to %s", got)
		}

		br := e.browser()
		br.signIn("bob", tagPass)
		p := br.get(path)
		if p.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: got %d; body\n%s", path, p.StatusCode, p.Body)
		}
		if !strings.Contains(p.Body, "<h1 class=\"tag-title\">team/app:v1</h1>") {
			t.Errorf("no h1 team/app:v1 in\n%s", p.Body)
		}
		if !strings.Contains(text(p.Body), "The tag points at nothing now") {
			t.Errorf("the deleted tag is not said to point at nothing")
		}
		items := history(t, p)
		if len(items) != 2 {
			t.Fatalf("history: got %d items, want 2: %q", len(items), items)
		}
		until := func(at time.Time) string { return "Restorable until " + minute(at.Add(review.DefaultTagRetention)) }
		wantItem(t, 0, items[0], short(b.Digest), "Pushed by user:bob at "+minute(t1), "Deleted by user:bob at "+minute(t2), until(t2))
		wantItem(t, 1, items[1], short(a.Digest), "Pushed by user:alice at "+minute(t0), "Moved to "+short(b.Digest)+" by user:bob at "+minute(t1), until(t1))
		for i, it := range items {
			if strings.Contains(it, "live") {
				t.Errorf("item %d of a deleted tag is marked live: %q", i, it)
			}
		}
		want := []string{"Restore " + short(b.Digest) + " (pushed " + minute(t1) + ")", "Restore " + short(a.Digest) + " (pushed " + minute(t0) + ")"}
		if got := restoreButtons(p); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Restore buttons: got %q, want %q", got, want)
		}
		if strings.Contains(p.Body, "data-confirm") {
			t.Errorf("restoring a deleted tag asks for confirmation; only moving a live tag should")
		}

		// Restore alice's lifetime over the form.
		e.Clock.Add(time.Minute)
		t3 := e.Clock.Now()
		p = br.follow(br.post(path+"/restore", url.Values{"digest": {a.Digest.String()}}, csrfOf(t, p)))
		if got, want := statusOf(t, p), "Restored team/app:v1 to "+short(a.Digest)+"."; got != want {
			t.Errorf("after the restore: got %q, want %q", got, want)
		}
		if got := e.ociDigest("team/app", "v1"); got != a.Digest.String() {
			t.Fatalf("after the restore, v1 resolves to %q, want %s", got, a.Digest)
		}
		items = history(t, p)
		if len(items) != 3 {
			t.Fatalf("history after the restore: %d items, want 3: %q", len(items), items)
		}
		wantItem(t, 0, items[0], short(a.Digest), "live", "Restored by user:bob at "+minute(t3))
		wantItem(t, 2, items[2], short(a.Digest), "The tag points at this manifest again now")
		// b's lifetime is restorable, and restoring it would move the live
		// tag: the form asks first.
		if got := restoreButtons(p); len(got) != 1 || !strings.HasPrefix(got[0], "Restore "+short(b.Digest)) {
			t.Errorf("Restore buttons after the restore: %q", got)
		}
		if !strings.Contains(p.Body, `data-confirm="team/app:v1 points at `+short(a.Digest)+` now. Move it back to `+short(b.Digest)+`?"`) {
			t.Errorf("the Restore that moves the live tag does not ask first")
		}
		// Restoring what the tag points at changes nothing, and says so.
		q := br.follow(br.post(path+"/restore", url.Values{"digest": {a.Digest.String()}}, csrfOf(t, p)))
		if got := statusOf(t, q); !strings.Contains(got, "already points at "+short(a.Digest)) {
			t.Errorf("restoring the live manifest: got %q", got)
		}

		// The expiry: none, then 36h, then none again.
		if strings.Contains(strings.ToLower(text(p.Body)), "expires at") || strings.Contains(p.Body, "Clear expiry") {
			t.Errorf("a tag without expiry shows one")
		}
		if !strings.Contains(p.Body, `<label for="expires-in">Expires in</label>`) || !strings.Contains(p.Body, ">Set expiry</button>") {
			t.Errorf("no expiry form for a writer")
		}
		p = br.follow(br.post(path+"/expiry", url.Values{"expires_in": {"36h"}}, csrfOf(t, p)))
		exp := e.Clock.Now().Add(36 * time.Hour)
		if got, want := statusOf(t, p), "Expiry set: team/app:v1 expires at "+minute(exp)+"."; got != want {
			t.Errorf("after setting the expiry: got %q, want %q", got, want)
		}
		tl, err := e.Registry.TagTimeline(e.Ctx, "team/app", "v1", registry.TimelineQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if tl.Live == nil || tl.Live.ExpiresAt == nil || !tl.Live.ExpiresAt.Equal(exp) {
			t.Fatalf("the live lifetime after setting the expiry: %+v, want expiry %s", tl.Live, exp)
		}
		if !strings.Contains(text(p.Body), "Expires at "+minute(exp)+" (in 1d12h)") || !strings.Contains(p.Body, ">Clear expiry</button>") {
			t.Errorf("the page does not show the expiry and its Clear button")
		}
		p = br.follow(br.post(path+"/expiry", url.Values{"clear": {"1"}}, csrfOf(t, p)))
		if got := statusOf(t, p); !strings.HasPrefix(got, "Expiry cleared") {
			t.Errorf("after clearing the expiry: got %q", got)
		}
		if tl, err = e.Registry.TagTimeline(e.Ctx, "team/app", "v1", registry.TimelineQuery{}); err != nil || tl.Live.ExpiresAt != nil {
			t.Errorf("after clearing: %+v, %v; want no expiry", tl.Live, err)
		}

		// Mistakes are shown on the page, never as a 500.
		for _, c := range []struct {
			path   string
			form   url.Values
			status int
			alert  string
		}{
			{path + "/expiry", url.Values{"expires_in": {"soon"}}, http.StatusBadRequest, `Invalid duration "soon"`},
			{path + "/expiry", url.Values{"expires_in": {""}}, http.StatusBadRequest, "Say when the tag expires"},
			{path + "/restore", url.Values{"digest": {"sha256:" + strings.Repeat("0", 64)}}, http.StatusConflict, "never pointed at sha256:000000"},
			{path + "/restore", url.Values{"digest": {"sha256:nope"}}, http.StatusBadRequest, "Could not restore team/app:v1"},
		} {
			r := br.post(c.path, c.form, csrfOf(t, p))
			if r.StatusCode != c.status {
				t.Errorf("POST %s %v: got %d, want %d; body\n%s", c.path, c.form, r.StatusCode, c.status, r.Body)
				continue
			}
			if got := alertOf(t, r); !strings.Contains(got, c.alert) {
				t.Errorf("POST %s %v: alert %q, want it to say %q", c.path, c.form, got, c.alert)
			}
			if c.form.Get("expires_in") == "soon" && !strings.Contains(r.Body, `value="soon"`) {
				t.Errorf("the refused expiry is not kept in its field")
			}
		}
		if got := e.ociDigest("team/app", "v1"); got != a.Digest.String() {
			t.Errorf("after the refusals, v1 resolves to %q, want %s", got, a.Digest)
		}
	})
}

// Who sees what: a reader sees the page without forms and its POSTs are
// refused; an anonymous visitor gets 404 for a private namespace, and a
// POST without the form's token is refused, signed in or not.
func TestTagRoles(t *testing.T) {
	forEachBackend(t, func(t *testing.T, we *webEnv) {
		e := newTagEnv(t, we)
		const path = "/-/repositories/team/app/-/tags/v1"
		e.as = "alice"
		a := e.PushImage("team/app", "v1", []byte("layer a"))
		e.Clock.Add(time.Minute)
		e.PushImage("team/app", "v1", []byte("layer b"))
		e.Clock.Add(time.Minute)

		carol := e.browser()
		carol.signIn("carol", tagPass)
		p := carol.get(path)
		if p.StatusCode != http.StatusOK || len(history(t, p)) != 2 {
			t.Fatalf("a reader: got %d; body\n%s", p.StatusCode, p.Body)
		}
		for _, s := range []string{"/restore", "/expiry", ">Restore</button>", "Set expiry", "Clear expiry", "Expires in"} {
			if strings.Contains(p.Body, s) {
				t.Errorf("a reader is shown %q", s)
			}
		}
		token := csrfOf(t, p) // the sign-out form's
		for _, post := range []struct {
			path string
			form url.Values
		}{
			{path + "/restore", url.Values{"digest": {a.Digest.String()}}},
			{path + "/expiry", url.Values{"expires_in": {"1h"}}},
		} {
			if r := carol.post(post.path, post.form, token); r.StatusCode != http.StatusForbidden {
				t.Errorf("a reader's POST %s: got %d, want 403", post.path, r.StatusCode)
			}
		}

		anon := e.browser()
		for _, path := range []string{path, "/-/repositories/team/nope/-/tags/v1", "/-/repositories/team/app/-/tags/nope"} {
			if r := anon.get(path); r.StatusCode != http.StatusNotFound {
				t.Errorf("anonymous GET %s: got %d, want 404", path, r.StatusCode)
			}
		}
		signInForm := anon.get("/-/sign-in")
		if r := anon.post(path+"/restore", url.Values{"digest": {a.Digest.String()}}, ""); r.StatusCode != http.StatusForbidden {
			t.Errorf("anonymous POST without token: got %d, want 403", r.StatusCode)
		}
		if r := anon.post(path+"/restore", url.Values{"digest": {a.Digest.String()}}, csrfOf(t, signInForm)); r.StatusCode != http.StatusNotFound {
			t.Errorf("anonymous POST with the cookie's token: got %d, want 404 (the namespace is private)", r.StatusCode)
		}

		bob := e.browser()
		bob.signIn("bob", tagPass)
		p = bob.get(path)
		if len(restoreButtons(p)) != 1 {
			t.Fatalf("a writer sees %d Restore buttons, want 1", len(restoreButtons(p)))
		}
		if r := bob.post(path+"/expiry", url.Values{"expires_in": {"1h"}}, ""); r.StatusCode != http.StatusForbidden {
			t.Errorf("a writer's POST without token: got %d, want 403", r.StatusCode)
		}
		cross := bob.do(http.MethodPost, path+"/expiry", url.Values{"expires_in": {"1h"}, "csrf": {csrfOf(t, p)}},
			map[string]string{"Origin": "https://evil.example"})
		if cross.StatusCode != http.StatusForbidden {
			t.Errorf("a cross-site POST: got %d, want 403", cross.StatusCode)
		}
		if r := bob.post(path+"/restore", url.Values{"digest": {a.Digest.String()}}, ""); r.StatusCode != http.StatusForbidden {
			t.Errorf("a writer's restore without token: got %d, want 403", r.StatusCode)
		}
		tl, err := e.Registry.TagTimeline(e.Ctx, "team/app", "v1", registry.TimelineQuery{})
		if err != nil || tl.Live == nil || tl.Live.ExpiresAt != nil || tl.Live.Manifest == a.Digest || tl.Total != 2 {
			t.Errorf("a refused POST changed the tag: %+v, %v", tl.Live, err)
		}
	})
}

// Lifetimes ended by an expiry, a rule and a collected subject are told
// as such; a window that passed leaves no Restore button and refuses the
// restore on the page; an immutable rule refuses the expiry with its
// reason.
func TestTagEndsAndRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, we *webEnv) {
		e := newTagEnv(t, we)
		e.as = "alice"
		old := e.PushImage("team/app", "old", []byte("layer old"))
		resp, body := e.Do(http.MethodDelete, "/v2/team/app/manifests/old", nil, nil)
		e.Expect(resp, body, http.StatusAccepted)
		e.Clock.Add(review.DefaultTagRetention + time.Hour)

		br := e.browser()
		br.signIn("bob", tagPass)
		p := br.get("/-/repositories/team/app/-/tags/old")
		items := history(t, p)
		if len(items) != 1 {
			t.Fatalf("history of old: %q", items)
		}
		wantItem(t, 0, items[0], "Deleted by user:alice", fmt.Sprintf("No longer restorable: the window of %d days passed at ", review.DefaultTagRetention/(24*time.Hour)))
		if len(restoreButtons(p)) != 0 {
			t.Errorf("a lifetime past its window has a Restore button")
		}
		r := br.post("/-/repositories/team/app/-/tags/old/restore", url.Values{"digest": {old.Digest.String()}}, csrfOf(t, p))
		if r.StatusCode != http.StatusConflict || !strings.Contains(alertOf(t, r), "outside the") {
			t.Errorf("restoring past the window: got %d; body\n%s", r.StatusCode, r.Body)
		}
		// Without a digest: the newest lifetime that ended, refused alike.
		if r := br.post("/-/repositories/team/app/-/tags/old/restore", nil, csrfOf(t, p)); r.StatusCode != http.StatusConflict {
			t.Errorf("restoring the latest lifetime past the window: got %d; body\n%s", r.StatusCode, r.Body)
		}

		// An expiry that passed: the lifetime ended, by itself.
		e.PushImage("team/app", "short", []byte("layer short"))
		short1 := e.Clock.Now()
		p = br.get("/-/repositories/team/app/-/tags/short")
		br.follow(br.post("/-/repositories/team/app/-/tags/short/expiry", url.Values{"expires_in": {"1h"}}, csrfOf(t, p)))
		e.Clock.Add(2 * time.Hour)
		br.signIn("bob", tagPass) // the session was idle too long
		p = br.get("/-/repositories/team/app/-/tags/short")
		if p.StatusCode != http.StatusOK {
			t.Fatalf("GET short: %d\n%s", p.StatusCode, p.Body)
		}
		items = history(t, p)
		if len(items) != 1 {
			t.Fatalf("history of short: %q", items)
		}
		wantItem(t, 0, items[0], "Pushed by user:alice", "Expired at "+minute(short1.Add(time.Hour)), "Restorable until ")
		if strings.Contains(items[0], "live") {
			t.Errorf("an expired lifetime is marked live: %q", items[0])
		}

		// What the collector records: a rule's prune, a collected subject.
		e.PushImage("team/app", "pruned", []byte("layer p"))
		e.PushImage("team/app", "sig", []byte("layer s"))
		e.Clock.Add(time.Minute)
		if err := e.Store.Update(e.Ctx, func(tx meta.Tx) error {
			for _, c := range []struct {
				name  string
				cause meta.EndCause
			}{{"pruned", meta.CausePolicy}, {"sig", meta.CauseSubjectCollected}} {
				rp, err := tx.Repository(e.Ctx, "team/app", meta.LockNone)
				if err != nil {
					return err
				}
				live, err := tx.LiveTag(e.Ctx, rp.ID, c.name, e.Clock.Now())
				if err != nil {
					return err
				}
				if err := tx.EndTag(e.Ctx, live.ID, e.Clock.Now(), meta.ActorCollector, c.cause); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		e.Exec(`UPDATE tag SET end_rule = 'team/app:keep-3' WHERE name = 'pruned'`)
		p = br.get("/-/repositories/team/app/-/tags/pruned")
		wantItem(t, 0, history(t, p)[0], "Pruned by rule team/app:keep-3 at ")
		if !strings.Contains(p.Body, `<a href="/-/policies?scope=team%2fapp"><code>team/app:keep-3</code></a>`) {
			t.Errorf("the rule is not linked to its policies page:\n%s", p.Body)
		}
		p = br.get("/-/repositories/team/app/-/tags/sig")
		wantItem(t, 0, history(t, p)[0], "Ended when the image it is attached to (its subject) was collected at ")

		// An immutable rule: the expiry is refused with its reason.
		e.as = "alice"
		e.PushImage("team/app", "stable", []byte("layer stable"))
		if _, _, _, err := e.Registry.SetPolicy(e.Ctx, meta.TagPolicy{Namespace: "team", Name: "lock", Kind: meta.PolicyImmutable, TagPattern: "^stable$", PatternMatches: true}); err != nil {
			t.Fatal(err)
		}
		p = br.get("/-/repositories/team/app/-/tags/stable")
		if !strings.Contains(text(p.Body), "Protected by rule team:lock") {
			t.Errorf("the page does not say the tag is immutable")
		}
		r = br.post("/-/repositories/team/app/-/tags/stable/expiry", url.Values{"expires_in": {"7d"}}, csrfOf(t, p))
		if r.StatusCode != http.StatusConflict || !strings.Contains(alertOf(t, r), `tag "stable" is immutable (rule team:lock)`) {
			t.Errorf("an expiry on an immutable tag: got %d; body\n%s", r.StatusCode, r.Body)
		}
	})
}

// A long history comes in pages of 100, newest first, with a link to the
// older ones; the live lifetime is shown on every page.
func TestTagHistoryPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, we *webEnv) {
		e := newTagEnv(t, we)
		e.as = "alice"
		a := e.PushImage("team/app", "ci", []byte("layer a"))
		b := e.PushImage("team/app", "", []byte("layer b"))
		for i := 0; i < 120; i++ {
			e.Clock.Add(time.Second)
			if i%2 == 0 {
				e.Tag("team/app", "ci", b)
			} else {
				e.Tag("team/app", "ci", a)
			}
		}
		br := e.browser()
		br.signIn("carol", tagPass)
		p := br.get("/-/repositories/team/app/-/tags/ci")
		items := history(t, p)
		if len(items) != 100 || !strings.Contains(items[0], "live") {
			t.Fatalf("first page: %d items, first %q", len(items), items[0])
		}
		next := regexp.MustCompile(`<a href="(/-/repositories/team/app/-/tags/ci\?before=\d+)" rel="next">Older lifetimes</a>`).FindStringSubmatch(p.Body)
		if next == nil {
			t.Fatalf("no link to the older lifetimes")
		}
		p = br.get(html.UnescapeString(next[1]))
		items = history(t, p)
		if len(items) != 21 || strings.Contains(p.Body, "Older lifetimes") || !strings.Contains(p.Body, ">Newest lifetimes</a>") {
			t.Errorf("second page: %d items, want 21, and a link to the first only", len(items))
		}
		if !strings.Contains(text(p.Body), "Points at "+short(a.Digest)) {
			t.Errorf("the second page does not show what the tag points at now")
		}
		if r := br.get("/-/repositories/team/app/-/tags/ci?before=x"); r.StatusCode != http.StatusBadRequest {
			t.Errorf("?before=x: got %d, want 400", r.StatusCode)
		}
	})
}

// A public namespace's tag page is open to anonymous visitors, without
// forms; the page has no inline script or style.
func TestTagPublic(t *testing.T) {
	forEachBackend(t, func(t *testing.T, we *webEnv) {
		e := newTagEnv(t, we)
		e.createNamespace("pub", true)
		e.addUser("dave", tagPass, false)
		if err := e.Auth.Grant(e.Ctx, "dave", auth.RoleWrite, "pub", meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		e.as = "dave"
		e.PushImage("pub/tools", "latest", []byte("layer"))
		p := e.browser().get("/-/repositories/pub/tools/-/tags/latest")
		if p.StatusCode != http.StatusOK {
			t.Fatalf("anonymous GET of a public tag: got %d", p.StatusCode)
		}
		checkHeaders(t, p, "no-store")
		items := history(t, p)
		if len(items) != 1 {
			t.Fatalf("history: %q", items)
		}
		wantItem(t, 0, items[0], "live", "Pushed by user:dave at ")
		for _, bad := range []string{"<form method=\"post\" action=\"/-/repositories", "style=", " onclick=", "<script>"} {
			if strings.Contains(p.Body, bad) {
				t.Errorf("the page of an anonymous visitor contains %q", bad)
			}
		}
	})
}

// With access control off, every visitor may restore (the form's token is
// the berth_csrf cookie's), recorded as an anonymous client.
func TestTagAuthOff(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *webEnv) {
		a := e.PushImage("team/app", "v1", []byte("layer a"))
		e.Clock.Add(time.Minute)
		resp, body := e.Do(http.MethodDelete, "/v2/team/app/manifests/v1", nil, nil)
		e.Expect(resp, body, http.StatusAccepted)
		br := e.browser()
		p := br.get("/-/repositories/team/app/-/tags/v1")
		wantItem(t, 0, history(t, p)[0], "Pushed by an anonymous client", "Deleted by an anonymous client")
		if len(restoreButtons(p)) != 1 {
			t.Fatalf("no Restore button with access control off")
		}
		p = br.follow(br.post("/-/repositories/team/app/-/tags/v1/restore", nil, csrfOf(t, p)))
		if got, want := statusOf(t, p), "Restored team/app:v1 to "+short(a.Digest)+"."; got != want {
			t.Errorf("restore without a digest: got %q, want %q", got, want)
		}
		wantItem(t, 0, history(t, p)[0], "live", "Restored by an anonymous client")
	}, func(o *envOptions) { o.noAuth = true })
}
