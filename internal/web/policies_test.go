package web_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/bytesize"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
)

// setPolicy saves p as user (its author).
func (e *webEnv) setPolicy(user string, p meta.TagPolicy) {
	e.T.Helper()
	if _, _, _, err := e.Registry.SetPolicy(registry.WithActor(e.Ctx, meta.UserActor(user)), p); err != nil {
		e.T.Fatalf("saving policy %s: %v", p.Ref(), err)
	}
}

func (e *webEnv) grant(user string, role auth.Role, target string) {
	e.T.Helper()
	if err := e.Auth.Grant(e.Ctx, user, role, target, meta.ActorOperator); err != nil {
		e.T.Fatal(err)
	}
}

// section is the part of a page under the h2 (or h3) whose text starts
// with title, up to the next heading of any level.
func section(t *testing.T, p page, title string) string {
	t.Helper()
	_, after, ok := strings.Cut(p.Body, ">"+html.EscapeString(title))
	if !ok {
		t.Fatalf("%s: no heading %q in\n%s", p.Request.URL, title, p.Body)
	}
	if i := regexp.MustCompile(`<h[1-6][ >]`).FindStringIndex(after); i != nil {
		after = after[:i[0]]
	}
	return after
}

// ruleNames lists the rules a section's table names (its row headers).
func ruleNames(s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<th scope="row">([^<]+)</th>`).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// prunedTags lists the tags a preview's table names, as repo:tag.
func prunedTags(p page) []string {
	var out []string
	re := regexp.MustCompile(`<th scope="row"><a href="/-/repositories/([^"]+)/-/tags/([^"]+)">`)
	for _, m := range re.FindAllStringSubmatch(p.Body, -1) {
		out = append(out, m[1]+":"+m[2])
	}
	return out
}

func wantStatus(t *testing.T, p page, status int) {
	t.Helper()
	if p.StatusCode != status {
		t.Fatalf("GET %s: got %d, want %d; body\n%s", p.Request.URL, p.StatusCode, status, p.Body)
	}
}

// The policies of each scope, which of them apply, who may see them, and
// the preview of a rule (given or saved): the tags it would prune now and
// the bytes freed.
func TestPolicies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *webEnv) {
		e.addUser("root", "root-password", true)
		e.addUser("alice", "alice-password", false)
		e.addUser("bob", "bob-password", false)
		e.addUser("carol", "carol-password", false)
		for _, tag := range []string{"v1", "v2", "v3", "v4"} {
			e.PushImage("team/app", tag, []byte("layer of team/app:"+tag))
			e.Clock.Add(time.Minute)
		}
		e.PushImage("team/web", "1.0", []byte("layer of team/web"))
		e.PushImage("other/x", "1", []byte("layer of other/x:1"))
		e.PushImage("other/x", "2", []byte("layer of other/x:2"))
		e.grant("alice", auth.RoleWrite, "team")
		e.grant("bob", auth.RoleRead, "team/app")
		e.setPolicy("root", meta.TagPolicy{Name: "default-keep", Kind: meta.PolicyKeepNewest, Count: 5, PatternMatches: true})
		e.setPolicy("alice", meta.TagPolicy{Namespace: "team", Name: "release", Kind: meta.PolicyImmutable, TagPattern: "^v1$", PatternMatches: true})
		e.setPolicy("alice", meta.TagPolicy{Namespace: "team", Repository: "team/app", Name: "keep-2", Kind: meta.PolicyKeepNewest, Count: 2, PatternMatches: true})
		e.setPolicy("root", meta.TagPolicy{Namespace: "team", Repository: "team/web", Name: "old", Kind: meta.PolicyPruneOlderThan,
			Span: 30 * 24 * time.Hour, TagPattern: "^tmp-", PatternMatches: false})

		root, alice, bob, carol, anon := e.browser(), e.browser(), e.browser(), e.browser(), e.browser()
		root.signIn("root", "root-password")
		alice.signIn("alice", "alice-password")
		bob.signIn("bob", "bob-password")
		carol.signIn("carol", "carol-password")

		// The registry's scope, to its administrator: its default and
		// every other rule.
		p := root.get("/-/policies")
		wantStatus(t, p, http.StatusOK)
		if !strings.Contains(p.Body, "<h1>Policies</h1>") || !strings.Contains(p.Body, ">Preview</button>") {
			t.Errorf("the policies page lacks its h1 or its Preview button:\n%s", p.Body)
		}
		if got := ruleNames(section(t, p, "Registry default")); strings.Join(got, " ") != "default-keep" {
			t.Errorf("registry scope: default rules %v, want [default-keep]", got)
		}
		others := section(t, p, "Rules of namespaces and repositories")
		if got := ruleNames(others); strings.Join(got, " ") != "release keep-2 old" {
			t.Errorf("registry scope: other rules %v, want [release keep-2 old]", got)
		}
		for _, want := range []string{"user:alice", "not matching <code>^tmp-</code>", "30d", "2 tags", `href="/-/policies?scope=team%2Fapp"`} {
			if !strings.Contains(others, want) {
				t.Errorf("registry scope: the rules of other scopes lack %q:\n%s", want, others)
			}
		}
		if !strings.Contains(p.Body, "berth policy set") {
			t.Errorf("the page does not say how to change rules")
		}

		// A namespace: its rules, its repositories', and the registry
		// default, which does not apply in a namespace with rules.
		p = alice.get("/-/policies?scope=team")
		wantStatus(t, p, http.StatusOK)
		ns := section(t, p, "Rules of namespace team")
		if got := ruleNames(ns); strings.Join(got, " ") != "release" || !strings.Contains(ns, "matching <code>^v1$</code>") ||
			!strings.Contains(ns, "<td>yes</td>") {
			t.Errorf("namespace team: own rules %v, want [release], immutable, matching ^v1$:\n%s", got, ns)
		}
		if got := ruleNames(section(t, p, "Rules of its repositories")); strings.Join(got, " ") != "keep-2 old" {
			t.Errorf("namespace team: repository rules %v, want [keep-2 old]", got)
		}
		if reg := section(t, p, "Registry default"); !strings.Contains(reg, "Not applied in team") || strings.Join(ruleNames(reg), " ") != "default-keep" {
			t.Errorf("namespace team: the registry default should be listed and said not to apply:\n%s", reg)
		}
		// In a namespace with no rules, the default applies.
		p = root.get("/-/policies?scope=other")
		if reg := section(t, p, "Registry default"); !strings.Contains(reg, "Applied to every repository of other") {
			t.Errorf("namespace other: the registry default should apply:\n%s", reg)
		}

		// A repository: its rules and its namespace's apply, the
		// default does not.
		for _, b := range []*browser{alice, bob} {
			p = b.get("/-/policies?scope=team/app")
			wantStatus(t, p, http.StatusOK)
			if got := ruleNames(section(t, p, "Rules of repository team/app")); strings.Join(got, " ") != "keep-2" {
				t.Errorf("repository team/app: own rules %v, want [keep-2]", got)
			}
			if got := ruleNames(section(t, p, "Rules of namespace team")); strings.Join(got, " ") != "release" {
				t.Errorf("repository team/app: namespace rules %v, want [release]", got)
			}
			if reg := section(t, p, "Registry default"); !strings.Contains(reg, "Not applied to team/app") {
				t.Errorf("repository team/app: the registry default should not apply:\n%s", reg)
			}
		}
		// bob reads team/app only: he is offered no preview of team's
		// rule (he may not preview at the namespace's scope).
		if strings.Contains(p.Body, "preview=release") || !strings.Contains(p.Body, "preview=keep-2") {
			t.Errorf("bob's preview links: want keep-2's and not release's:\n%s", p.Body)
		}

		// Gating, as the management API: read on the scope; the
		// registry's, its administrators only.
		for _, c := range []struct {
			who    *browser
			name   string
			path   string
			status int
		}{
			{bob, "bob", "/-/policies?scope=team", http.StatusNotFound},
			{carol, "carol", "/-/policies?scope=team", http.StatusNotFound},
			{carol, "carol", "/-/policies?scope=team/app", http.StatusNotFound},
			{anon, "anonymous", "/-/policies?scope=team/app", http.StatusNotFound},
			{anon, "anonymous", "/-/policies?scope=team/app&preview=keep-2", http.StatusNotFound},
			{alice, "alice", "/-/policies?preview=default-keep", http.StatusForbidden},
			{alice, "alice", "/-/policies?scope=*&preview=1&kind=keep_newest&count=0", http.StatusForbidden},
			{alice, "alice", "/-/policies?scope=a//b", http.StatusBadRequest},
		} {
			if p := c.who.get(c.path); p.StatusCode != c.status {
				t.Errorf("%s GET %s: got %d, want %d", c.name, c.path, p.StatusCode, c.status)
			}
		}
		// The menu's link lands on the registry's scope: others get the
		// scope form, without the registry's rules.
		for _, b := range []*browser{alice, anon} {
			p = b.get("/-/policies")
			wantStatus(t, p, http.StatusOK)
			if strings.Contains(p.Body, "default-keep") || !strings.Contains(p.Body, "shown to registry administrators") ||
				!strings.Contains(p.Body, `<label for="scope">`) {
				t.Errorf("the registry's scope to a non-administrator should show the scope form only:\n%s", p.Body)
			}
		}

		// Preview of a rule given in the form: keep_newest 1 in
		// team/app, with the saved keep-2 and the immutable release.
		// v4 is kept, v1 protected: v3 and v2 would be pruned.
		q := url.Values{"scope": {"team/app"}, "preview": {"1"}, "kind": {"keep_newest"}, "count": {"1"}, "span": {"ignored"}}
		p = alice.get("/-/policies?" + q.Encode())
		wantStatus(t, p, http.StatusOK)
		if got := prunedTags(p); strings.Join(got, " ") != "team/app:v2 team/app:v3" {
			t.Errorf("preview keep_newest 1 in team/app: pruned %v, want [team/app:v2 team/app:v3]", got)
		}
		pv, err := e.Registry.PreviewPolicy(e.Ctx, meta.TagPolicy{Namespace: "team", Repository: "team/app", Kind: meta.PolicyKeepNewest, Count: 1, PatternMatches: true})
		if err != nil {
			t.Fatal(err)
		}
		if pv.Bytes == 0 || !strings.Contains(p.Body, "<strong>"+bytesize.Format(pv.Bytes)+"</strong>") {
			t.Errorf("preview: the bytes freed (%d) are not shown:\n%s", pv.Bytes, p.Body)
		}
		if !strings.Contains(p.Body, "A preview is bounded") || !strings.Contains(p.Body, "100,000") {
			t.Errorf("the page does not say the preview is bounded")
		}
		if !regexp.MustCompile(`name="count"[^>]* value="1"`).MatchString(p.Body) || !strings.Contains(p.Body, `<option value="keep_newest" selected>`) {
			t.Errorf("the form does not keep the rule previewed")
		}
		// A saved rule, by its name: keep-2 prunes v2 only (v1 is
		// protected).
		p = bob.get("/-/policies?scope=team/app&preview=keep-2")
		wantStatus(t, p, http.StatusOK)
		if got := prunedTags(p); strings.Join(got, " ") != "team/app:v2" || !strings.Contains(p.Body, "team/app:keep-2 <span class=\"muted\">(this rule)") {
			t.Errorf("preview of keep-2: pruned %v, want [team/app:v2] by this rule:\n%s", got, p.Body)
		}
		// The registry's keep_newest 0 applies only where no rule does:
		// other/x's tags, none of team's.
		p = root.get("/-/policies?preview=1&kind=keep_newest&count=0")
		wantStatus(t, p, http.StatusOK)
		if got := prunedTags(p); strings.Join(got, " ") != "other/x:1 other/x:2" {
			t.Errorf("registry keep_newest 0: pruned %v, want other/x's two tags", got)
		}
		// Rules that cannot be previewed say why, on the page.
		for _, c := range []struct {
			query  string
			status int
			want   string
		}{
			{"scope=team/app&preview=1&kind=keep_newest", http.StatusBadRequest, "needs the number of tags it keeps"},
			{"scope=team/app&preview=1&kind=prune_older_than&span=soon", http.StatusBadRequest, "needs an age"},
			{"scope=team/app&preview=1&kind=keep_newest&count=1&pattern=%28", http.StatusBadRequest, "cannot be previewed"},
			{"scope=team/app&preview=nope", http.StatusNotFound, "has no saved rule named &#34;nope&#34;"},
		} {
			p := alice.get("/-/policies?" + c.query)
			if p.StatusCode != c.status || !strings.Contains(p.Body, `role="alert"`) || !strings.Contains(p.Body, c.want) {
				t.Errorf("GET ?%s: got %d, want %d with an alert saying %q:\n%s", c.query, p.StatusCode, c.status, c.want, p.Body)
			}
		}
	})
}

// With access control off, every scope is everyone's.
func TestPoliciesAuthOff(t *testing.T) {
	e := newWebEnv(t, backend(t), func(o *envOptions) { o.noAuth = true })
	e.setPolicy("root", meta.TagPolicy{Name: "default-keep", Kind: meta.PolicyKeepNewest, Count: 3, PatternMatches: true})
	p := e.browser().get("/-/policies")
	wantStatus(t, p, http.StatusOK)
	if got := ruleNames(section(t, p, "Registry default")); strings.Join(got, " ") != "default-keep" {
		t.Errorf("access control off: registry rules %v, want [default-keep]", got)
	}
	// An immutable rule is not offered at the registry's scope.
	if strings.Contains(p.Body, `<option value="immutable"`) {
		t.Errorf("the registry's preview form offers an immutable rule")
	}
	if p := e.browser().get("/-/policies?scope=acme"); !strings.Contains(p.Body, `<option value="immutable"`) {
		t.Errorf("a namespace's preview form does not offer an immutable rule")
	}
}
