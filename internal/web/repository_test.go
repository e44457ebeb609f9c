package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/bytesize"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// tagLinks lists the tags a repository page links, in order.
func tagLinks(p page, repo string) []string {
	var out []string
	re := regexp.MustCompile(`<a href="/-/repositories/` + regexp.QuoteMeta(repo) + `/-/tags/([^"]+)">([^<]+)</a>`)
	for _, m := range re.FindAllStringSubmatch(p.Body, -1) {
		if m[1] == m[2] {
			out = append(out, m[1])
		}
	}
	return out
}

// tagRow is the table row of tag on a repository page.
func tagRow(t *testing.T, p page, tag string) string {
	t.Helper()
	for _, row := range strings.Split(p.Body, "<tr>") {
		if strings.Contains(row, ">"+tag+"</a>") {
			return row[:strings.Index(row, "</tr>")]
		}
	}
	t.Fatalf("%s: no row for tag %s in\n%s", p.Request.URL, tag, p.Body)
	return ""
}

// The repository page: its usage, the filter form, and per live tag the
// link to its history, the digest (short, the full one in its title),
// what a pull downloads, an index's platforms, what is attached by kind,
// the expiry, the immutable rule, the last pull, who pushed it and when,
// and the pull command with this host and its copy button (hidden until
// the script shows it). 404 to whoever may not pull the repository, as
// for one that does not exist.
func TestRepositoryPage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *webEnv) {
		const repo = "team/app"
		e.addUser("root", "root-password", true)
		e.addUser("alice", "alice-password", false)
		e.addUser("bob", "bob-password", false)
		base := []byte("a base layer both images share")
		m1 := e.PushImage(repo, "v1", base, []byte("amd64 layer"))
		m2 := e.PushImage(repo, "", base, []byte("arm64 layer, longer"))
		entry := func(m registryenv.Manifest, os, arch, variant string) map[string]any {
			return map[string]any{"mediaType": m.MediaType, "digest": m.Digest, "size": m.Size,
				"platform": map[string]string{"os": os, "architecture": arch, "variant": variant}}
		}
		body, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": registryenv.MediaIndex,
			"manifests": []any{entry(m1, "linux", "amd64", ""), entry(m2, "linux", "arm64", "v8")}})
		if err != nil {
			t.Fatal(err)
		}
		if st, b := e.PutManifest(repo, "multi", registryenv.MediaIndex, body); st != http.StatusCreated {
			t.Fatalf("pushing the index: %d %s", st, b)
		}
		index := registryenv.Manifest{Descriptor: registryenv.Descriptor{MediaType: registryenv.MediaIndex, Digest: digest.FromBytes(body), Size: int64(len(body))}, Body: body}
		e.PushReferrer(repo, m1, "application/vnd.dev.cosign.artifact.sig.v1+json", []byte("a signature"))
		e.PushReferrer(repo, m1, "application/spdx+json", []byte("an SBOM"))
		e.PushReferrer(repo, m1, "application/vnd.example.thing", []byte("something else"))
		e.PushReferrer(repo, index, "application/vnd.in-toto+json", []byte("provenance"))
		sigTag := "sha256-" + m1.Digest.Encoded() + ".sig"
		e.PushImage(repo, sigTag, []byte("a cosign signature under a tag"))
		if _, _, _, err := e.Registry.SetPolicy(e.Ctx, meta.TagPolicy{Namespace: "team", Name: "releases", Kind: meta.PolicyImmutable,
			TagPattern: "^v1$", PatternMatches: true}); err != nil {
			t.Fatal(err)
		}
		in := 36 * time.Hour
		lt, err := e.Registry.SetTagExpiry(e.Ctx, repo, "multi", registry.Expiry{In: &in})
		if err != nil {
			t.Fatal(err)
		}
		e.PushImage("team/db", "latest", []byte("layer of team/db"))
		if err := e.Auth.Grant(e.Ctx, "alice", auth.RoleRead, "team", meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		if err := e.Auth.Grant(e.Ctx, "bob", auth.RoleRead, "team/db", meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		u, err := e.Registry.Usage(e.Ctx, "", repo, false)
		if err != nil {
			t.Fatal(err)
		}

		alice := e.browser()
		alice.signIn("alice", "alice-password")
		p := alice.get("/-/repositories/team/app")
		checkPage(t, p, repo)
		if got, want := strings.Join(tagLinks(p, repo), " "), "multi "+sigTag+" v1"; got != want {
			t.Errorf("tags: got %q, want %q", got, want)
		}
		host := strings.TrimPrefix(e.Web.URL, "http://")
		for _, want := range []string{
			fmt.Sprintf("team/app holds %s: %d manifests and %d blobs", bytesize.Format(u.Bytes), u.Manifests, u.Blobs),
			`<form class="filter" method="get" action="/-/repositories/team/app" aria-label="Filter tags">`,
			`<label for="tag-prefix">Tag name starts with</label>`,
			`<input type="search" id="tag-prefix" name="q" value=""`,
			`<a href="/-/namespaces/team">team</a>`,
			`href="/-/policies?scope=team%2fapp"`,
		} {
			if !strings.Contains(p.Body, want) {
				t.Errorf("the repository page lacks %q:\n%s", want, p.Body)
			}
		}
		rows := map[string][]string{
			"v1": {
				`<code class="digest" title="` + m1.Digest.String() + `" data-digest="` + m1.Digest.String() + `">` + m1.Digest.String()[:19] + `</code>`,
				`<td class="num">` + bytesize.Format(m1.Size+blobBytes(t, m1)) + `</td>`,
				`<span class="muted">image</span>`,
				`<span title="application/vnd.dev.cosign.artifact.sig.v1&#43;json, cosign tag signature">2 signatures</span>`,
				`<span title="application/spdx&#43;json">1 SBOM</span>`,
				`<span title="application/vnd.example.thing">1 other referrer</span>`,
				"yes, rule team:releases",
				"<td>by anonymous<br><time datetime=",
				`<code id="pull-2">docker pull ` + host + `/team/app:v1</code>`,
				`<button type="button" class="secondary copy" data-copy="docker pull ` + host + `/team/app:v1" aria-describedby="pull-2" hidden>Copy pull command</button>`,
			},
			"multi": {
				"linux/amd64, linux/arm64/v8",
				`<span title="application/vnd.in-toto&#43;json">1 attestation</span>`,
				`<time datetime="` + lt.ExpiresAt.UTC().Format(time.RFC3339) + `">`,
				`<td><span class="muted">no</span></td>`,
				`<td><span class="muted">never</span></td>`, // never pulled
			},
			sigTag: {"attached to <code title=\"" + m1.Digest.String() + "\">"},
		}
		for tag, wants := range rows {
			row := tagRow(t, p, tag)
			for _, want := range wants {
				if !strings.Contains(row, want) {
					t.Errorf("the row of %s lacks %q:\n%s", tag, want, row)
				}
			}
		}

		// An administrator may read it; bob, with a role on team/db alone,
		// may not; nor may an anonymous visitor; nobody sees a repository
		// that does not exist.
		root := e.browser()
		root.signIn("root", "root-password")
		checkPage(t, root.get("/-/repositories/team/app"), repo)
		bob := e.browser()
		bob.signIn("bob", "bob-password")
		checkPage(t, bob.get("/-/repositories/team/db"), "team/db")
		for who, b := range map[string]*browser{"root": root, "bob": bob, "anonymous": e.browser()} {
			paths := []string{"/-/repositories/team/nope", "/-/repositories/nope/app"}
			if who != "root" {
				paths = append(paths, "/-/repositories/team/app")
			}
			for _, path := range paths {
				if p := b.get(path); p.StatusCode != http.StatusNotFound || strings.Contains(p.Body, ">v1</a>") {
					t.Errorf("%s GET %s: got %d, want the 404 page", who, path, p.StatusCode)
				}
			}
		}
		e.Exec(`UPDATE namespace SET public = TRUE WHERE name = 'team'`)
		checkPage(t, e.browser().get("/-/repositories/team/app"), repo)
	})
}

// Tags come 100 to a page by name (?after=, link "Next page"), narrowed
// by a prefix (?q=) that the next page's link keeps.
func TestRepositoryPages(t *testing.T) {
	e := newWebEnv(t, backend(t), func(o *envOptions) { o.noAuth = true })
	const repo = "team/many"
	m := e.PushImage(repo, "x1", []byte("one layer"))
	var ts []string
	for i := range 105 {
		tag := fmt.Sprintf("t%03d", i)
		if _, err := e.Registry.PutManifest(e.Ctx, repo, tag, m.MediaType, m.Body); err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tag)
	}
	e.Tag(repo, "x2", m)
	b := e.browser()
	cases := []struct {
		path, want, next string
	}{
		{"", strings.Join(ts[:100], " "), "?after=t099"},
		{"?after=t099", strings.Join(ts[100:], " ") + " x1 x2", ""},
		{"?q=t", strings.Join(ts[:100], " "), "?q=t&amp;after=t099"},
		{"?q=t&after=t099", strings.Join(ts[100:], " "), ""},
		{"?q=x", "x1 x2", ""},
		{"?q=t10", "t100 t101 t102 t103 t104", ""},
		{"?q=nothing", "", ""},
		{"?q=%3Cscript%3E", "", ""}, // no tag can start so: nothing, escaped
	}
	for _, c := range cases {
		p := b.get("/-/repositories/" + repo + c.path)
		checkPage(t, p, repo)
		if got := strings.Join(tagLinks(p, repo), " "); got != c.want {
			t.Errorf("%s: got tags %q, want %q", c.path, got, c.want)
		}
		next := regexp.MustCompile(`href="/-/repositories/team/many([^"]*)" rel="next">Next page`).FindStringSubmatch(p.Body)
		switch {
		case c.next == "" && next != nil:
			t.Errorf("%s: a next page link %s on the last page", c.path, next[1])
		case c.next != "" && (next == nil || next[1] != c.next):
			t.Errorf("%s: next page link %v, want %s", c.path, next, c.next)
		}
	}
	if p := b.get("/-/repositories/team/many?q=nothing"); !strings.Contains(p.Body, "No live tag starts with <code>nothing</code>.") ||
		!strings.Contains(p.Body, `value="nothing"`) {
		t.Errorf("an empty filter: want it said, and the prefix kept in the form:\n%s", p.Body)
	}
	if p := b.get("/-/repositories/team/many?q=%3Cscript%3E"); !strings.Contains(p.Body, "&lt;script&gt;") {
		t.Errorf("the prefix is not escaped:\n%s", p.Body)
	}
	for _, bad := range []string{"?after=a/b", "?after=-x", "?q=" + strings.Repeat("a", 200)} {
		if p := b.get("/-/repositories/team/many" + bad); p.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: got %d, want 400", bad, p.StatusCode)
		}
	}
}
