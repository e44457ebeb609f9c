package web

import "testing"

func TestParseRoute(t *testing.T) {
	for _, tc := range []struct {
		path string
		want Route
	}{
		{"/", Route{Kind: KindHome}},
		{"/-/sign-in", Route{Kind: KindSignIn}},
		{"/-/sign-out", Route{Kind: KindSignOut}},
		{"/-/policies", Route{Kind: KindPolicies}},
		{"/-/collector", Route{Kind: KindCollector}},
		{"/-/namespaces/acme", Route{Kind: KindNamespace, Namespace: "acme"}},
		{"/-/repositories/acme/app", Route{Kind: KindRepository, Repo: "acme/app"}},
		{"/-/repositories/acme/team/app", Route{Kind: KindRepository, Repo: "acme/team/app"}},
		{"/-/repositories/acme/app/-/tags/v1.0", Route{Kind: KindTag, Repo: "acme/app", Tag: "v1.0"}},
		{"/-/repositories/acme/app/-/tags/v1.0/restore", Route{Kind: KindTagRestore, Repo: "acme/app", Tag: "v1.0"}},
		{"/-/repositories/acme/app/-/tags/latest/expiry", Route{Kind: KindTagExpiry, Repo: "acme/app", Tag: "latest"}},
		{"/-/assets/0123456789abcdef/style.css", Route{Kind: KindAsset, Hash: "0123456789abcdef", File: "style.css"}},

		{"", Route{}},
		{"/v2/", Route{}},
		{"/-/", Route{}},
		{"/-/sign-in/", Route{}},
		{"/-/%73ign-in", Route{}},
		{"/-/namespaces/", Route{}},
		{"/-/namespaces/acme/app", Route{}},
		{"/-/namespaces/Acme", Route{}},
		{"/-/repositories/", Route{}},
		{"/-/repositories/acme/app/", Route{}},
		{"/-/repositories/acme%2Fapp", Route{}},
		{"/-/repositories/acme/app/-/", Route{}},
		{"/-/repositories/acme/app/-/tags/", Route{}},
		{"/-/repositories/acme/app/-/tags/.bad", Route{}},
		{"/-/repositories/acme/app/-/tags/v1/delete", Route{}},
		{"/-/repositories/acme/app/-/tags/v1/restore/x", Route{}},
		{"/-/repositories/acme/app/-/blobs/x", Route{}},
		{"/-/assets/style.css", Route{}},
		{"/-/assets/h/a/b.css", Route{}},
	} {
		if got := ParseRoute(tc.path); got != tc.want {
			t.Errorf("ParseRoute(%q) = %+v, want %+v", tc.path, got, tc.want)
		}
	}
}

func TestLocalPath(t *testing.T) {
	for next, want := range map[string]string{
		"/":                       "/",
		"/-/namespaces/acme":      "/-/namespaces/acme",
		"/?after=b":               "/?after=b",
		"":                        "/",
		"acme":                    "/",
		"//evil.example":          "/",
		"/\\evil.example":         "/",
		"http://evil.example/":    "/",
		"/-/sign-in?next=/":       "/",
		"/-/sign-out":             "/",
		"/a\tb":                   "/",
		"/%2F%2Fevil.example/":    "/%2F%2Fevil.example/",
		"/-/repositories/a/b?q=x": "/-/repositories/a/b?q=x",
	} {
		if got := localPath(next); got != want {
			t.Errorf("localPath(%q) = %q, want %q", next, got, want)
		}
	}
}
