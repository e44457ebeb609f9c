package web_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/blob/fs"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv/registryenv"
	"github.com/berth/berth/internal/web"
)

// benchSizes are the tag counts of the benchmark's two repositories: the
// pages must cost the same at both (docs/design/web.md, "Cost").
var benchSizes = []int{100, 10_000}

// benchManifests is how many image manifests the tags point at.
const benchManifests = 10

// BenchmarkWebPages times the namespace and repository pages through the
// real handler (httptest.NewRecorder, no network), as a signed-in user
// with a read grant on the namespace sees them, over a repository of 100
// tags and one of 10,000 (many tags over 10 manifests, pushed through the
// registry's own PutManifest), on SQLite and, with
// BERTH_TEST_POSTGRES_DSN, PostgreSQL. The namespace page is timed as it
// answers (at 10,000 tags without the split, which it offers) and with the
// split asked (?split=1, whose cost grows with the namespace); the
// repository page at its first page, a middle page (?after=) and a prefix
// filter (?q=) listing 100 tags. bench/README.md has the figures.
func BenchmarkWebPages(b *testing.B) {
	for _, be := range sqltest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			h, cookie := benchSetup(b, be.DSN(b))
			for _, n := range benchSizes {
				ns := fmt.Sprintf("t%d", n)
				middle := fmt.Sprintf("v%05d", n/2-1)
				prefix := "v000"
				if n > 1000 {
					prefix = fmt.Sprintf("v%03d", n/2/100)
				}
				for _, p := range []struct{ name, path string }{
					{"namespace", "/-/namespaces/" + ns},
					{"namespace-split", "/-/namespaces/" + ns + "?split=1"},
					{"repository", "/-/repositories/" + ns + "/app"},
					{"repository-after", "/-/repositories/" + ns + "/app?after=" + middle},
					{"repository-prefix", "/-/repositories/" + ns + "/app?q=" + prefix},
				} {
					b.Run(fmt.Sprintf("tags=%d/%s", n, p.name), func(b *testing.B) {
						get := func() *httptest.ResponseRecorder {
							req := httptest.NewRequest(http.MethodGet, p.path, nil)
							req.AddCookie(cookie)
							rec := httptest.NewRecorder()
							h.ServeHTTP(rec, req)
							if rec.Code != http.StatusOK {
								b.Fatalf("GET %s: %d\n%s", p.path, rec.Code, rec.Body)
							}
							return rec
						}
						body := get().Body.String()
						if rows := strings.Count(body, "/-/tags/"); strings.HasPrefix(p.name, "repository") && rows == 0 {
							b.Fatalf("GET %s lists no tag", p.path)
						}
						b.ResetTimer()
						for b.Loop() {
							get()
						}
					})
				}
			}
		})
	}
}

// benchSetup fills a fresh database on dsn: for each of benchSizes a
// namespace t<n> with one repository t<n>/app of n tags v00000… over
// benchManifests images, and a user reading both; it returns the web
// handler and the user's session cookie.
func benchSetup(b *testing.B, dsn string) (http.Handler, *http.Cookie) {
	b.Helper()
	ctx := context.Background()
	store := sqltest.Open(b, dsn)
	blobs, err := fs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	reg := registry.New(store, blobs, registry.Options{Policy: review.DefaultPolicy()})
	b.Cleanup(func() { _ = reg.Close(ctx) })
	push := func(repo string, data []byte) (digest.Digest, int64) {
		d := digest.FromBytes(data)
		if _, err := reg.PushBlob(ctx, repo, d.String(), int64(len(data)), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		return d, int64(len(data))
	}
	start := time.Now()
	for _, n := range benchSizes {
		repo := fmt.Sprintf("t%d/app", n)
		var bodies [][]byte
		for i := range benchManifests {
			cd, cs := push(repo, fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","n":%d}`, i))
			ld, ls := push(repo, bytes.Repeat([]byte{byte(i)}, 4096))
			bodies = append(bodies, registryenv.ImageManifest(cd, cs, map[digest.Digest]int64{ld: ls}))
		}
		for i := range n {
			if _, err := reg.PutManifest(ctx, repo, fmt.Sprintf("v%05d", i), registryenv.MediaImage, bodies[i%benchManifests]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("filled %v tags in %v", benchSizes, time.Since(start).Round(time.Millisecond))

	a := auth.New(store, auth.Options{Service: "registry.test", HashCost: bcrypt.MinCost})
	if err := a.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if err := a.AddUser(ctx, "dev", "dev-password", false, meta.ActorOperator); err != nil {
		b.Fatal(err)
	}
	for _, n := range benchSizes {
		if err := a.Grant(ctx, "dev", auth.RoleRead, fmt.Sprintf("t%d", n), meta.ActorOperator); err != nil {
			b.Fatal(err)
		}
	}
	s, err := a.StartSession(ctx, "dev", "dev-password", "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	h, err := web.New(web.Options{Registry: reg, Auth: a})
	if err != nil {
		b.Fatal(err)
	}
	return h, &http.Cookie{Name: "berth_session", Value: s.Token}
}
