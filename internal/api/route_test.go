package api

import (
	"errors"
	"strings"
	"testing"

	"github.com/berth/berth/internal/registry"
)

func TestParseRoute(t *testing.T) {
	const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		path string
		want Route
	}{
		{"/v2/", Route{Kind: KindBase}},
		{"/v2", Route{Kind: KindBase}},
		{"/v2/_catalog", Route{Kind: KindCatalog}},
		{"/v2/a/manifests/latest", Route{Kind: KindManifest, Repo: "a", Ref: "latest"}},
		{"/v2/a/b/c/manifests/x", Route{Kind: KindManifest, Repo: "a/b/c", Ref: "x"}},
		{"/v2/a/manifests/" + dgst, Route{Kind: KindManifest, Repo: "a", Ref: dgst}},
		{"/v2/a/b/blobs/" + dgst, Route{Kind: KindBlob, Repo: "a/b", Ref: dgst}},
		{"/v2/a/b/blobs/uploads/", Route{Kind: KindUploads, Repo: "a/b"}},
		{"/v2/a/b/blobs/uploads", Route{Kind: KindUploads, Repo: "a/b"}},
		{"/v2/a/b/blobs/uploads/0f1e", Route{Kind: KindUpload, Repo: "a/b", UploadID: "0f1e"}},
		{"/v2/a/b/tags/list", Route{Kind: KindTags, Repo: "a/b"}},
		{"/v2/a/referrers/" + dgst, Route{Kind: KindReferrers, Repo: "a", Ref: dgst}},
		// Names made of the words of the API.
		{"/v2/manifests/manifests/latest", Route{Kind: KindManifest, Repo: "manifests", Ref: "latest"}},
		{"/v2/blobs/uploads/manifests/v1", Route{Kind: KindManifest, Repo: "blobs/uploads", Ref: "v1"}},
		{"/v2/tags/list/tags/list", Route{Kind: KindTags, Repo: "tags/list"}},
		{"/v2/a/blobs/blobs/" + dgst, Route{Kind: KindBlob, Repo: "a/blobs", Ref: dgst}},
		{"/v2/a/blobs/uploads/blobs/uploads/", Route{Kind: KindUploads, Repo: "a/blobs/uploads"}},
		// Names are not validated here: the use case answers NAME_INVALID.
		{"/v2/A/manifests/latest", Route{Kind: KindManifest, Repo: "A", Ref: "latest"}},
		{"/v2/a//b/manifests/latest", Route{Kind: KindManifest, Repo: "a//b", Ref: "latest"}},
		{"/v2/" + strings.Repeat("a", 256) + "/tags/list", Route{Kind: KindTags, Repo: strings.Repeat("a", 256)}},
		// Nothing.
		{"/", Route{}},
		{"/v1/a/manifests/x", Route{}},
		{"/v2x/a/manifests/x", Route{}},
		{"/v2/a", Route{}},
		{"/v2/a/manifests", Route{}},
		{"/v2/manifests/x", Route{}},
		{"/v2/a/manifests/", Route{}},
		{"/v2/a/blobs/", Route{}},
		{"/v2/a/unknown/x", Route{}},
		{"/v2/a/tags/list/x", Route{}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := ParseRoute(tt.path); got != tt.want {
				t.Errorf("ParseRoute(%q): got %+v, want %+v", tt.path, got, tt.want)
			}
		})
	}
}

// TestParseRouteEscaped: the path is parsed as sent. Prefixes and the
// words of the API match only literally; the name stays as sent (Check
// refuses it); the reference is percent-decoded.
func TestParseRouteEscaped(t *testing.T) {
	const hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		path string
		want Route
	}{
		{"/%62erth/v1/gc/status", Route{}},
		{"/%762/", Route{}},
		{"/v2/%5Fcatalog", Route{}},
		{"/v2/a/%6danifests/v1", Route{}},
		{"/v2/a/manifests%2Fv1", Route{}},
		{"/v2/a/blobs/uploads%2F", Route{Kind: KindBlob, Repo: "a", Ref: "uploads/"}}, // Check refuses it
		{"/v2/a/tags%2Flist", Route{}},
		{"/berth/v1/gc%2Fstatus", Route{Kind: KindManagement, Ref: "gc%2Fstatus"}},
		{"/v2/demo%2fhello/manifests/v1", Route{Kind: KindManifest, Repo: "demo%2fhello", Ref: "v1"}},
		{"/v2/d%65mo/tags/list", Route{Kind: KindTags, Repo: "d%65mo"}},
		{"/v2/a/manifests/sha256%3A" + hex, Route{Kind: KindManifest, Repo: "a", Ref: "sha256:" + hex}},
		{"/v2/a/manifests/sha256%3a" + hex, Route{Kind: KindManifest, Repo: "a", Ref: "sha256:" + hex}},
		{"/v2/a/blobs/sha256%3A" + hex, Route{Kind: KindBlob, Repo: "a", Ref: "sha256:" + hex}},
		{"/v2/a/referrers/sha256%3A" + hex, Route{Kind: KindReferrers, Repo: "a", Ref: "sha256:" + hex}},
		{"/v2/a/manifests/v%31", Route{Kind: KindManifest, Repo: "a", Ref: "v1"}},
		{"/v2/a/manifests/v1%2Fx", Route{Kind: KindManifest, Repo: "a", Ref: "v1/x"}},
		{"/v2/a/blobs/uploads/0f%2F1e", Route{Kind: KindUpload, Repo: "a", UploadID: "0f%2F1e"}},
	}
	for _, tt := range tests {
		if got := ParseRoute(tt.path); got != tt.want {
			t.Errorf("ParseRoute(%q): got %+v, want %+v", tt.path, got, tt.want)
		}
	}
}

func TestRouteCheck(t *testing.T) {
	tests := []struct {
		rt   Route
		want error
	}{
		{Route{Kind: KindManifest, Repo: "demo/hello", Ref: "v1"}, nil},
		{Route{Kind: KindManifest, Repo: "demo/hello", Ref: "sha256:00"}, nil},
		{Route{Kind: KindManifest, Repo: "demo%2fhello", Ref: "v1"}, registry.ErrNameInvalid},
		{Route{Kind: KindTags, Repo: "d%65mo"}, registry.ErrNameInvalid},
		{Route{Kind: KindManifest, Repo: "a", Ref: "v1/x"}, registry.ErrTagInvalid},
		{Route{Kind: KindManifest, Repo: "a", Ref: "sha256:ab/cd"}, registry.ErrDigestInvalid},
		{Route{Kind: KindBlob, Repo: "a", Ref: "sha256/ab"}, registry.ErrDigestInvalid},
		{Route{Kind: KindReferrers, Repo: "a", Ref: "x/y"}, registry.ErrDigestInvalid},
		{Route{Kind: KindManagement, Ref: "gc/status"}, nil},
	}
	for _, tt := range tests {
		if err := tt.rt.Check(); !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
			t.Errorf("%+v.Check(): got %v, want %v", tt.rt, err, tt.want)
		}
	}
}
