package api

import (
	"strings"
	"testing"
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
