package registry_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// blobsOf are the config and layers an image manifest pushed by registryenv
// lists, with their sizes.
func blobsOf(t *testing.T, m registryenv.Manifest) map[digest.Digest]int64 {
	t.Helper()
	var body struct {
		Config registryenv.Descriptor
		Layers []registryenv.Descriptor
	}
	if err := json.Unmarshal(m.Body, &body); err != nil {
		t.Fatal(err)
	}
	out := map[digest.Digest]int64{body.Config.Digest: body.Config.Size}
	for _, l := range body.Layers {
		out[l.Digest] = l.Size
	}
	return out
}

// pullSize is what pulling top downloads: it, the manifests ms and each
// distinct blob of them once.
func pullSize(t *testing.T, top registryenv.Manifest, ms ...registryenv.Manifest) int64 {
	t.Helper()
	size := top.Size
	blobs := map[digest.Digest]int64{}
	for _, m := range ms {
		size += m.Size
		for d, n := range blobsOf(t, m) {
			blobs[d] = n
		}
	}
	if len(ms) == 0 {
		blobs = blobsOf(t, top)
	}
	for _, n := range blobs {
		size += n
	}
	return size
}

// putHidden gives repo a hidden live tag on d, as berth's own tags are
// written (no client can push one).
func putHidden(t *testing.T, e *registryenv.Env, repo, tag string, d digest.Digest) {
	t.Helper()
	err := e.Store.Update(e.Ctx, func(tx meta.Tx) error {
		rp, err := tx.Repository(e.Ctx, repo, meta.LockNone)
		if err != nil {
			return err
		}
		_, err = tx.PutTag(e.Ctx, meta.Tag{RepoID: rp.ID, Name: tag, Manifest: d, Start: e.Clock.Now(), Hidden: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A page of tags shows what each live tag names: the digest and media
// type, what a pull downloads (an index: every child and every distinct
// blob once), an index's platforms, the referrers by artifact type and the
// cosign attachment tags by kind, the lifetime's start, expiry and last
// pull, and the immutable rule that protects it; hidden tags and tags whose
// expiry passed are not listed.
func TestTagPage(t *testing.T) {
	var reg *prometheus.Registry
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		const repo = "team/app"
		base := []byte("a base layer both images share")
		m1 := e.PushImage(repo, "v1", base, []byte("amd64 layer"))
		e.Clock.Add(time.Minute)
		m2 := e.PushImage(repo, "v2", base, []byte("arm64 layer, longer"))
		att := e.PushImage(repo, "", []byte("build provenance"))
		entry := func(m registryenv.Manifest, os, arch, variant string) map[string]any {
			return map[string]any{"mediaType": m.MediaType, "digest": m.Digest, "size": m.Size,
				"platform": map[string]string{"os": os, "architecture": arch, "variant": variant}}
		}
		body, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": registryenv.MediaIndex, "manifests": []any{
			entry(m1, "linux", "amd64", ""), entry(m2, "linux", "arm64", "v8"), entry(att, "unknown", "unknown", "")}})
		if err != nil {
			t.Fatal(err)
		}
		if st, b := e.PutManifest(repo, "multi", registryenv.MediaIndex, body); st != http.StatusCreated {
			t.Fatalf("pushing the index: %d %s", st, b)
		}
		index := registryenv.Manifest{Descriptor: registryenv.Descriptor{MediaType: registryenv.MediaIndex, Digest: digest.FromBytes(body), Size: int64(len(body))}, Body: body}

		const sbom, sig = "application/vnd.example.sbom", "application/vnd.dev.cosign.artifact.sig.v1+json"
		e.PushReferrer(repo, m1, sbom, []byte("sbom one"))
		e.PushReferrer(repo, m1, sbom, []byte("sbom two"))
		e.PushReferrer(repo, m1, sig, []byte("a signature"))
		e.PushReferrer(repo, index, sbom, []byte("sbom of the index"))
		attach := "sha256-" + m1.Digest.Encoded()
		attached := map[string]registryenv.Manifest{
			".sig": e.PushImage(repo, attach+".sig", []byte("cosign signature")),
			".att": e.PushImage(repo, attach+".att", []byte("cosign attestation")),
		}
		putHidden(t, e, repo, attach+".sbom", m2.Digest) // hidden: not counted
		putHidden(t, e, repo, "internal", m2.Digest)

		saveRule(t, e, meta.TagPolicy{Namespace: "team", Name: "releases", Kind: meta.PolicyImmutable, TagPattern: "^v1$", PatternMatches: true})
		in := time.Hour
		if _, err := e.Registry.SetTagExpiry(e.Ctx, repo, "v2", registry.Expiry{In: &in}); err != nil {
			t.Fatal(err)
		}
		e.PushImage(repo, "short-lived", []byte("short"))
		soon := time.Minute
		if _, err := e.Registry.SetTagExpiry(e.Ctx, repo, "short-lived", registry.Expiry{In: &soon}); err != nil {
			t.Fatal(err)
		}
		resp, b := e.Do("GET", "/v2/"+repo+"/manifests/v1", map[string]string{"Accept": registryenv.MediaImage}, nil)
		e.Expect(resp, b, http.StatusOK)
		waitRecorded(t, reg, 1)
		e.Clock.Add(2 * time.Minute)

		page, err := e.Registry.TagPage(e.Ctx, repo, registry.TagQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if page.Next != "" {
			t.Errorf("next: %q, want none", page.Next)
		}
		live := map[string]meta.Tag{}
		err = e.Store.View(e.Ctx, func(tx meta.Tx) error {
			rp, err := tx.Repository(e.Ctx, repo, meta.LockNone)
			if err != nil {
				return err
			}
			for _, name := range []string{"multi", attach + ".att", attach + ".sig", "v1", "v2"} {
				if live[name], err = tx.LiveTag(e.Ctx, rp.ID, name, e.Clock.Now()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		summary := func(name string, m registryenv.Manifest, size int64) registry.TagSummary {
			l := live[name]
			return registry.TagSummary{Name: name, Digest: m.Digest, MediaType: m.MediaType, Size: size,
				Start: l.Start, StartActor: l.StartActor, ExpiresAt: l.ExpiresAt, PulledAt: l.PulledAt}
		}
		multi := summary("multi", index, pullSize(t, index, m1, m2, att))
		multi.Platforms = []string{"linux/amd64", "linux/arm64/v8"}
		multi.Referrers = []registry.ReferrerCount{{ArtifactType: sbom, Count: 1}}
		v1 := summary("v1", m1, pullSize(t, m1))
		v1.Referrers = []registry.ReferrerCount{{ArtifactType: sig, Count: 1}, {ArtifactType: sbom, Count: 2},
			{Attachment: registry.AttachmentSignature, Count: 1}, {Attachment: registry.AttachmentAttestation, Count: 1}}
		v1.Immutable = "team:releases"
		v2 := summary("v2", m2, pullSize(t, m2))
		var want []registry.TagSummary
		want = append(want, multi)
		for _, suffix := range []string{".att", ".sig"} {
			s := live[attach+suffix]
			want = append(want, registry.TagSummary{Name: attach + suffix, Digest: s.Manifest, MediaType: registryenv.MediaImage,
				Size: pullSize(t, attached[suffix]), AttachedTo: m1.Digest, Start: s.Start, StartActor: s.StartActor})
		}
		want = append(want, v1, v2)
		if diff := cmp.Diff(want, page.Tags); diff != "" {
			t.Errorf("tag page (-want +got):\n%s", diff)
		}
		if got := page.Tags[3]; got.PulledAt == nil || got.ExpiresAt != nil {
			t.Errorf("v1: pulled %v, expires %v; want pulled, no expiry", got.PulledAt, got.ExpiresAt)
		}
		if got := page.Tags[4]; got.PulledAt != nil || got.ExpiresAt == nil {
			t.Errorf("v2: pulled %v, expires %v; want never pulled, an expiry", got.PulledAt, got.ExpiresAt)
		}
	}, pullEnv(0, &reg))
}

// Pages of tags: in name order, Next the last name of a page that has a
// successor, "" for the last page (one holding exactly its limit too), a
// prefix narrowing them; a prefix no tag can start with lists nothing, a
// missing repository is ErrNameUnknown.
func TestTagPagination(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		const repo = "team/many"
		m := e.PushImage(repo, "t00", []byte("one layer"))
		for i := 1; i < 12; i++ {
			e.Tag(repo, fmt.Sprintf("t%02d", i), m)
		}
		e.Tag(repo, "u0", m)
		names := func(p registry.TagPage) []string {
			var out []string
			for _, tg := range p.Tags {
				out = append(out, tg.Name)
			}
			return out
		}
		for _, c := range []struct {
			q    registry.TagQuery
			want []string
			next string
		}{
			{registry.TagQuery{Limit: 13}, []string{"t00", "t01", "t02", "t03", "t04", "t05", "t06", "t07", "t08", "t09", "t10", "t11", "u0"}, ""},
			{registry.TagQuery{Limit: 5}, []string{"t00", "t01", "t02", "t03", "t04"}, "t04"},
			{registry.TagQuery{After: "t04", Limit: 5}, []string{"t05", "t06", "t07", "t08", "t09"}, "t09"},
			{registry.TagQuery{After: "t09", Limit: 3}, []string{"t10", "t11", "u0"}, ""},
			{registry.TagQuery{After: "u0", Limit: 3}, nil, ""},
			{registry.TagQuery{Prefix: "t1"}, []string{"t10", "t11"}, ""},
			{registry.TagQuery{Prefix: "t0", Limit: 4}, []string{"t00", "t01", "t02", "t03"}, "t03"},
			{registry.TagQuery{Prefix: "t0", After: "t03", Limit: 4}, []string{"t04", "t05", "t06", "t07"}, "t07"},
			{registry.TagQuery{Prefix: "t0", After: "t07", Limit: 2}, []string{"t08", "t09"}, ""},
			{registry.TagQuery{Prefix: "t", After: "t10"}, []string{"t11"}, ""},
			{registry.TagQuery{Prefix: "u"}, []string{"u0"}, ""},
			{registry.TagQuery{Prefix: "v"}, nil, ""},
			{registry.TagQuery{Prefix: "-t"}, nil, ""},
			{registry.TagQuery{Prefix: "t/"}, nil, ""},
		} {
			p, err := e.Registry.TagPage(e.Ctx, repo, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, names(p)); diff != "" || p.Next != c.next {
				t.Errorf("%+v: next %q, want %q (-want +got):\n%s", c.q, p.Next, c.next, diff)
			}
			for _, tg := range p.Tags {
				if tg.Digest != m.Digest || tg.Size != pullSize(t, m) {
					t.Errorf("%s: %s, %d bytes; want %s, %d", tg.Name, tg.Digest, tg.Size, m.Digest, pullSize(t, m))
				}
			}
		}
		if _, err := e.Registry.TagPage(e.Ctx, "team/none", registry.TagQuery{}); !errors.Is(err, registry.ErrNameUnknown) {
			t.Errorf("a missing repository: %v, want ErrNameUnknown", err)
		}
		if _, err := e.Registry.TagPage(e.Ctx, "Team/App", registry.TagQuery{}); !errors.Is(err, registry.ErrNameInvalid) {
			t.Errorf("an invalid name: %v, want ErrNameInvalid", err)
		}
	})
}

// Pages of namespaces: every one, the public ones, the named ones, or
// either, each with its usage, the quota in force, its window and its
// repositories.
func TestNamespacesPage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		shared := []byte("shared")
		e.PushImage("alpha/app", "v1", shared)
		e.PushImage("beta/app", "v1", shared, []byte("beta"))
		e.PushImage("beta/lib", "v1", []byte("lib"))
		e.PushImage("gamma/x", "v1", []byte("gamma"))
		err := e.Store.Update(e.Ctx, func(tx meta.Tx) error {
			_, err := tx.SetNamespacePublic(e.Ctx, "beta", true)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		ret := 48 * time.Hour
		if _, err := e.Registry.SetNamespaceRetention(e.Ctx, "alpha", &ret); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Registry.SetQuota(e.Ctx, "alpha", 1<<20, nil); err != nil {
			t.Fatal(err)
		}
		names := func(p registry.NamespacePage) []string {
			var out []string
			for _, n := range p.Namespaces {
				out = append(out, n.Name)
			}
			return out
		}
		for _, c := range []struct {
			q    registry.NamespaceQuery
			want []string
			next string
		}{
			{registry.NamespaceQuery{}, []string{"alpha", "beta", "gamma"}, ""},
			{registry.NamespaceQuery{Limit: 3}, []string{"alpha", "beta", "gamma"}, ""},
			{registry.NamespaceQuery{Limit: 2}, []string{"alpha", "beta"}, "beta"},
			{registry.NamespaceQuery{After: "beta", Limit: 2}, []string{"gamma"}, ""},
			{registry.NamespaceQuery{PublicOnly: true}, []string{"beta"}, ""},
			{registry.NamespaceQuery{PublicOnly: true, Names: []string{"gamma"}}, []string{"beta", "gamma"}, ""},
			{registry.NamespaceQuery{PublicOnly: true, Names: []string{"gamma", "alpha"}, Limit: 2}, []string{"alpha", "beta"}, "beta"},
			{registry.NamespaceQuery{Names: []string{"gamma", "nobody"}}, []string{"gamma"}, ""},
			{registry.NamespaceQuery{Names: []string{}}, nil, ""},
		} {
			p, err := e.Registry.Namespaces(e.Ctx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, names(p)); diff != "" || p.Next != c.next {
				t.Errorf("%+v: next %q, want %q (-want +got):\n%s", c.q, p.Next, c.next, diff)
			}
		}
		p, err := e.Registry.Namespaces(e.Ctx, registry.NamespaceQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range p.Namespaces {
			u, err := e.Registry.Usage(e.Ctx, n.Name, "", false)
			if err != nil {
				t.Fatal(err)
			}
			r, err := e.Registry.NamespaceRetention(e.Ctx, n.Name)
			if err != nil {
				t.Fatal(err)
			}
			want := registry.NamespaceSummary{Name: n.Name, Public: n.Name == "beta", Retention: r, Repositories: map[string]int{"beta": 2}[n.Name],
				Usage: u.Usage, Quota: u.Quota, QuotaDefault: u.QuotaDefault}
			if want.Repositories == 0 {
				want.Repositories = 1
			}
			if diff := cmp.Diff(want, n); diff != "" {
				t.Errorf("namespace %s (-want +got):\n%s", n.Name, diff)
			}
		}
		if q := p.Namespaces[0].Quota; q == nil || q.Limit != 1<<20 || p.Namespaces[1].Quota != nil {
			t.Errorf("quotas: alpha %+v, beta %+v; want alpha's own and none", q, p.Namespaces[1].Quota)
		}
		if _, err := e.Registry.SetQuota(e.Ctx, "", 1<<30, nil); err != nil {
			t.Fatal(err)
		}
		p, err = e.Registry.Namespaces(e.Ctx, registry.NamespaceQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if a, b := p.Namespaces[0], p.Namespaces[1]; a.QuotaDefault || a.Quota.Limit != 1<<20 || !b.QuotaDefault || b.Quota == nil || b.Quota.Limit != 1<<30 {
			t.Errorf("quotas with a default: alpha %+v (%v), beta %+v (%v); want alpha's own, the default for beta", a.Quota, a.QuotaDefault, b.Quota, b.QuotaDefault)
		}
	})
}

// Pages of a namespace's repositories: in name order, with their usage,
// live tags (hidden ones left out, counted up to MaxCountedTags) and last
// push; a repository of a namespace whose name extends this one's is not
// listed; a missing namespace is ErrNamespaceUnknown.
func TestRepositoriesPage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		m := e.PushImage("beta/app", "v1", []byte("app"))
		e.Clock.Add(time.Hour)
		e.Tag("beta/app", "v2", m)
		pushed := e.Clock.Now()
		putHidden(t, e, "beta/app", "pin", m.Digest)
		e.Clock.Add(time.Hour)
		e.PushImage("beta/lib", "", []byte("lib, by digest"))
		e.PushImage("beta", "latest", []byte("the namespace's own"))
		e.PushImage("beta-x/app", "v1", []byte("another namespace"))

		p, err := e.Registry.Repositories(e.Ctx, "beta", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var want []registry.RepositorySummary
		for _, c := range []struct {
			name string
			tags int
			last time.Time
		}{{"beta", 1, pushed.Add(time.Hour)}, {"beta/app", 2, pushed}, {"beta/lib", 0, time.Time{}}} {
			u, err := e.Registry.Usage(e.Ctx, "", c.name, false)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, registry.RepositorySummary{Name: c.name, Usage: u.Usage, Tags: c.tags, LastPush: c.last})
		}
		if diff := cmp.Diff(registry.RepositoryPage{Repositories: want}, p); diff != "" {
			t.Errorf("repositories of beta (-want +got):\n%s", diff)
		}
		p, err = e.Registry.Repositories(e.Ctx, "beta", "", 2)
		if err != nil || len(p.Repositories) != 2 || p.Next != "beta/app" {
			t.Errorf("first page of 2: %+v, %v; want beta, beta/app and a next page", p, err)
		}
		p, err = e.Registry.Repositories(e.Ctx, "beta", p.Next, 2)
		if err != nil || len(p.Repositories) != 1 || p.Repositories[0].Name != "beta/lib" || p.Next != "" {
			t.Errorf("second page of 2: %+v, %v; want beta/lib and no next page", p, err)
		}

		// More tags than a listing counts.
		err = e.Store.Update(e.Ctx, func(tx meta.Tx) error {
			rp, err := tx.Repository(e.Ctx, "beta/lib", meta.LockNone)
			if err != nil {
				return err
			}
			for i := range registry.MaxCountedTags + 1 {
				if _, err := tx.PutTag(e.Ctx, meta.Tag{RepoID: rp.ID, Name: fmt.Sprint("t", i), Manifest: m.Digest, Start: e.Clock.Now()}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		p, err = e.Registry.Repositories(e.Ctx, "beta", "beta/app", 1)
		if err != nil || len(p.Repositories) != 1 || p.Repositories[0].Tags != registry.MaxCountedTags || !p.Repositories[0].MoreTags {
			t.Errorf("beta/lib with %d tags: %+v, %v; want %d and more", registry.MaxCountedTags+1, p, err, registry.MaxCountedTags)
		}

		if _, err := e.Registry.Repositories(e.Ctx, "nobody", "", 0); !errors.Is(err, registry.ErrNamespaceUnknown) {
			t.Errorf("a missing namespace: %v, want ErrNamespaceUnknown", err)
		}
		if _, err := e.Registry.Repositories(e.Ctx, "beta/app", "", 0); !errors.Is(err, registry.ErrNameInvalid) {
			t.Errorf("a repository named as a namespace: %v, want ErrNameInvalid", err)
		}
	})
}
