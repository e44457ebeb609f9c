package oci

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
)

// Digests used by the fixtures, one per letter.
var (
	dgA = digest.Digest("sha256:" + strings.Repeat("a", 64))
	dgB = digest.Digest("sha256:" + strings.Repeat("b", 64))
	dgC = digest.Digest("sha256:" + strings.Repeat("c", 64))
	dgD = digest.Digest("sha512:" + strings.Repeat("d", 128))
)

// fixture replaces the placeholders @A@, @B@, @C@ and @D@ by digests.
func fixture(s string) string {
	return strings.NewReplacer("@A@", dgA.String(), "@B@", dgB.String(), "@C@", dgC.String(), "@D@", dgD.String()).Replace(s)
}

const (
	ociImage = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "@A@", "size": 1470},
  "layers": [
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "@B@", "size": 3370628},
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "@C@", "size": 120},
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "@B@", "size": 3370628}
  ],
  "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
}`
	ociIndex = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@A@", "size": 1000,
     "platform": {"architecture": "amd64", "os": "linux"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@D@", "size": 1001,
     "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
  ]
}`
	dockerImage = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
  "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023, "digest": "@A@"},
  "layers": [
    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654, "digest": "@B@"}
  ],
  "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@C@", "size": 10}
}`
	dockerList = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 7143, "digest": "@A@",
     "platform": {"architecture": "ppc64le", "os": "linux"}}
  ]
}`
	signature = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
  "config": {"mediaType": "application/vnd.oci.empty.v1+json",
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2, "data": "e30="},
  "layers": [
    {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": "@B@", "size": 242,
     "annotations": {"dev.cosignproject.cosign/signature": "MEUC"}}
  ],
  "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@C@", "size": 1234},
  "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
}`
	sbomOldStyle = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {"mediaType": "application/spdx+json", "digest": "@A@", "size": 10},
  "layers": [{"mediaType": "application/spdx+json", "digest": "@A@", "size": 10}],
  "subject": {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "@C@", "size": 99}
}`
	indexArtifact = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "artifactType": "application/vnd.example.bundle",
  "manifests": [],
  "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@C@", "size": 5}
}`
	// A BuildKit registry cache in its default format (image-manifest=false):
	// an index whose entries are the cache's layers and its cache config,
	// blobs rather than manifests.
	buildkitCache = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "@B@", "size": 32,
     "annotations": {"buildkit/createdat": "2024-01-01T00:00:00Z", "containerd.io/uncompressed": "@C@"}},
    {"mediaType": "application/vnd.buildkit.cacheconfig.v0", "digest": "@A@", "size": 512}
  ]
}`
	// regctl image create: an image without layers, written by a Go encoder.
	layersNull       = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@A@","size":1},"layers":null}`
	manifestsNull    = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":null}`
	noMediaTypeImage = `{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@A@","size":1},"layers":[]}`
	noMediaTypeIndex = `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"@A@","size":1}]}`
)

func TestParseManifest(t *testing.T) {
	ociConfig := &Descriptor{MediaType: mediaTypeOCIConfig, Digest: dgA, Size: 1470}
	layer := func(d digest.Digest, size int64) Descriptor {
		return Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: d, Size: size}
	}
	created := map[string]string{"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
	tests := []struct {
		name        string
		contentType string
		body        string
		want        *Manifest
		wantBlobs   []digest.Digest
	}{
		{
			name: "oci image", contentType: MediaTypeOCIManifest, body: ociImage,
			want: &Manifest{
				MediaType:   MediaTypeOCIManifest,
				Config:      ociConfig,
				Layers:      []Descriptor{layer(dgB, 3370628), layer(dgC, 120), layer(dgB, 3370628)},
				Annotations: created,
			},
			wantBlobs: []digest.Digest{dgA, dgB, dgC},
		},
		{
			name: "oci image, content type with parameters", contentType: MediaTypeOCIManifest + "; charset=utf-8", body: ociImage,
			want: &Manifest{
				MediaType:   MediaTypeOCIManifest,
				Config:      ociConfig,
				Layers:      []Descriptor{layer(dgB, 3370628), layer(dgC, 120), layer(dgB, 3370628)},
				Annotations: created,
			},
			wantBlobs: []digest.Digest{dgA, dgB, dgC},
		},
		{
			name: "oci index", contentType: MediaTypeOCIIndex, body: ociIndex,
			want: &Manifest{
				MediaType: MediaTypeOCIIndex,
				Manifests: []Descriptor{
					{MediaType: MediaTypeOCIManifest, Digest: dgA, Size: 1000, Platform: &Platform{Architecture: "amd64", OS: "linux"}},
					{MediaType: MediaTypeOCIManifest, Digest: dgD, Size: 1001, Platform: &Platform{Architecture: "arm64", OS: "linux", Variant: "v8"}},
				},
			},
		},
		{
			name: "docker image, subject ignored", contentType: MediaTypeDockerManifest, body: dockerImage,
			want: &Manifest{
				MediaType: MediaTypeDockerManifest,
				Config:    &Descriptor{MediaType: "application/vnd.docker.container.image.v1+json", Digest: dgA, Size: 7023},
				Layers:    []Descriptor{{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Digest: dgB, Size: 32654}},
			},
			wantBlobs: []digest.Digest{dgA, dgB},
		},
		{
			name: "docker manifest list", contentType: MediaTypeDockerManifestList, body: dockerList,
			want: &Manifest{
				MediaType: MediaTypeDockerManifestList,
				Manifests: []Descriptor{{MediaType: MediaTypeDockerManifest, Digest: dgA, Size: 7143, Platform: &Platform{Architecture: "ppc64le", OS: "linux"}}},
			},
		},
		{
			name: "artifact with subject and artifactType", contentType: MediaTypeOCIManifest, body: signature,
			want: &Manifest{
				MediaType:    MediaTypeOCIManifest,
				ArtifactType: "application/vnd.dev.cosign.artifact.sig.v1+json",
				Config:       &Descriptor{MediaType: MediaTypeOCIEmpty, Digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", Size: 2},
				Layers: []Descriptor{{MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", Digest: dgB, Size: 242,
					Annotations: map[string]string{"dev.cosignproject.cosign/signature": "MEUC"}}},
				Subject:     &Descriptor{MediaType: MediaTypeOCIManifest, Digest: dgC, Size: 1234},
				Annotations: created,
			},
			wantBlobs: []digest.Digest{"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", dgB},
		},
		{
			name: "artifact type from config media type", contentType: "", body: sbomOldStyle,
			want: &Manifest{
				MediaType:    MediaTypeOCIManifest,
				ArtifactType: "application/spdx+json",
				Config:       &Descriptor{MediaType: "application/spdx+json", Digest: dgA, Size: 10},
				Layers:       []Descriptor{{MediaType: "application/spdx+json", Digest: dgA, Size: 10}},
				Subject:      &Descriptor{MediaType: MediaTypeOCIIndex, Digest: dgC, Size: 99},
			},
			wantBlobs: []digest.Digest{dgA},
		},
		{
			name: "index artifact with subject", contentType: MediaTypeOCIIndex, body: indexArtifact,
			want: &Manifest{
				MediaType:    MediaTypeOCIIndex,
				ArtifactType: "application/vnd.example.bundle",
				Subject:      &Descriptor{MediaType: MediaTypeOCIManifest, Digest: dgC, Size: 5},
			},
		},
		{
			name: "media type from content type", contentType: MediaTypeOCIManifest, body: noMediaTypeImage,
			want: &Manifest{
				MediaType: MediaTypeOCIManifest,
				Config:    &Descriptor{MediaType: mediaTypeOCIConfig, Digest: dgA, Size: 1},
			},
			wantBlobs: []digest.Digest{dgA},
		},
		{
			name: "media type inferred as image, application/json", contentType: "application/json", body: noMediaTypeImage,
			want: &Manifest{
				MediaType: MediaTypeOCIManifest,
				Config:    &Descriptor{MediaType: mediaTypeOCIConfig, Digest: dgA, Size: 1},
			},
			wantBlobs: []digest.Digest{dgA},
		},
		{
			name: "media type inferred as index, no content type", contentType: "", body: noMediaTypeIndex,
			want: &Manifest{
				MediaType: MediaTypeOCIIndex,
				Manifests: []Descriptor{{MediaType: MediaTypeOCIManifest, Digest: dgA, Size: 1}},
			},
		},
		{
			name: "buildkit cache index: blob entries", contentType: MediaTypeOCIIndex, body: buildkitCache,
			want: &Manifest{
				MediaType: MediaTypeOCIIndex,
				Manifests: []Descriptor{
					{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: dgB, Size: 32,
						Annotations: map[string]string{"buildkit/createdat": "2024-01-01T00:00:00Z", "containerd.io/uncompressed": dgC.String()}},
					{MediaType: "application/vnd.buildkit.cacheconfig.v0", Digest: dgA, Size: 512},
				},
			},
		},
		{
			name: "layers null is an empty list", contentType: MediaTypeOCIManifest, body: layersNull,
			want:      &Manifest{MediaType: MediaTypeOCIManifest, Config: &Descriptor{MediaType: mediaTypeOCIConfig, Digest: dgA, Size: 1}},
			wantBlobs: []digest.Digest{dgA},
		},
		{
			name: "docker image, layers null", contentType: MediaTypeDockerManifest,
			body:      strings.Replace(layersNull, MediaTypeOCIManifest, MediaTypeDockerManifest, 1),
			want:      &Manifest{MediaType: MediaTypeDockerManifest, Config: &Descriptor{MediaType: mediaTypeOCIConfig, Digest: dgA, Size: 1}},
			wantBlobs: []digest.Digest{dgA},
		},
		{
			name: "layers null, media type inferred", contentType: "",
			body:      `{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@A@","size":1},"layers":null}`,
			want:      &Manifest{MediaType: MediaTypeOCIManifest, Config: &Descriptor{MediaType: mediaTypeOCIConfig, Digest: dgA, Size: 1}},
			wantBlobs: []digest.Digest{dgA},
		},
		{
			name: "image with manifests null", contentType: MediaTypeOCIManifest,
			body:      strings.Replace(layersNull, `"layers":null`, `"layers":[],"manifests":null`, 1),
			want:      &Manifest{MediaType: MediaTypeOCIManifest, Config: &Descriptor{MediaType: mediaTypeOCIConfig, Digest: dgA, Size: 1}},
			wantBlobs: []digest.Digest{dgA},
		},
		{
			name: "image with manifests null, media type inferred", contentType: "",
			body:      `{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@A@","size":1},"layers":[],"manifests":null}`,
			want:      &Manifest{MediaType: MediaTypeOCIManifest, Config: &Descriptor{MediaType: mediaTypeOCIConfig, Digest: dgA, Size: 1}},
			wantBlobs: []digest.Digest{dgA},
		},
		{
			name: "manifests null is an empty list", contentType: MediaTypeOCIIndex, body: manifestsNull,
			want: &Manifest{MediaType: MediaTypeOCIIndex},
		},
		{
			name: "docker list, manifests null", contentType: MediaTypeDockerManifestList,
			body: strings.Replace(manifestsNull, MediaTypeOCIIndex, MediaTypeDockerManifestList, 1),
			want: &Manifest{MediaType: MediaTypeDockerManifestList},
		},
		{
			name: "manifests null, media type inferred", contentType: "", body: `{"schemaVersion":2,"manifests":null}`,
			want: &Manifest{MediaType: MediaTypeOCIIndex},
		},
		{
			name: "index with layers null", contentType: MediaTypeOCIIndex,
			body: strings.Replace(manifestsNull, `"manifests":null`, `"manifests":[],"layers":null,"config":null`, 1),
			want: &Manifest{MediaType: MediaTypeOCIIndex},
		},
		{
			name: "docker list from content type", contentType: MediaTypeDockerManifestList, body: noMediaTypeIndex,
			want: &Manifest{
				MediaType: MediaTypeDockerManifestList,
				Manifests: []Descriptor{{MediaType: MediaTypeOCIManifest, Digest: dgA, Size: 1}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseManifest(tt.contentType, []byte(fixture(tt.body)))
			if err != nil {
				t.Fatalf("ParseManifest = %v, want nil", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("manifest mismatch (-want +got):\n%s", diff)
			}
			if gotIndex, wantIndex := got.IsIndex(), tt.want.Config == nil; gotIndex != wantIndex {
				t.Errorf("IsIndex() got %v, want %v", gotIndex, wantIndex)
			}
			var blobs []digest.Digest
			for _, b := range got.Blobs() {
				blobs = append(blobs, b.Digest)
			}
			if diff := cmp.Diff(tt.wantBlobs, blobs); diff != "" {
				t.Errorf("Blobs() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsManifestMediaType(t *testing.T) {
	for _, tt := range []struct {
		mt   string
		want bool
	}{
		{MediaTypeOCIManifest, true},
		{MediaTypeOCIIndex, true},
		{MediaTypeDockerManifest, true},
		{MediaTypeDockerManifestList, true},
		{"application/vnd.docker.distribution.manifest.v1+prettyjws", true},
		{"application/vnd.oci.artifact.manifest.v1+json", true},
		{"application/vnd.buildkit.cacheconfig.v0", false},
		{"application/vnd.oci.image.layer.v1.tar+gzip", false},
		{"application/vnd.docker.image.rootfs.diff.tar.gzip", false},
		{mediaTypeOCIConfig, false},
		{"", false},
	} {
		if got := IsManifestMediaType(tt.mt); got != tt.want {
			t.Errorf("IsManifestMediaType(%q) got %v, want %v", tt.mt, got, tt.want)
		}
	}
}

func TestParseManifestErrors(t *testing.T) {
	image := func(config, layers string) string {
		return `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + config + `,"layers":` + layers + `}`
	}
	goodConfig := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@A@","size":1}`
	tests := []struct {
		name        string
		contentType string
		body        string
		unsupported bool
		wantMsg     string
	}{
		{"too large", MediaTypeOCIManifest, `{"schemaVersion":2,"x":"` + strings.Repeat("a", MaxManifestSize) + `"}`, false, "larger than"},
		{"empty", MediaTypeOCIManifest, "", false, "empty"},
		{"array", MediaTypeOCIManifest, `[]`, false, "JSON object"},
		{"null", MediaTypeOCIManifest, `null`, false, "JSON object"},
		{"truncated", MediaTypeOCIManifest, ociImage[:100], false, "not valid JSON"},
		{"trailing garbage", MediaTypeOCIManifest, ociImage + "x", false, "not valid JSON"},
		{"schemaVersion 1", "application/vnd.docker.distribution.manifest.v1+prettyjws",
			`{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[],"history":[],"signatures":[]}`, false, "schemaVersion is 1"},
		{"schemaVersion missing", MediaTypeOCIManifest, `{"mediaType":"application/vnd.oci.image.manifest.v1+json"}`, false, "schemaVersion is missing"},
		{"schemaVersion string", MediaTypeOCIManifest, `{"schemaVersion":"2"}`, false, `"schemaVersion"`},
		{"media type mismatch", MediaTypeDockerManifest, ociImage, false, "does not match Content-Type"},
		{"unknown media type in body", "", strings.Replace(ociImage, MediaTypeOCIManifest, "application/vnd.example+json", 1), true, "not supported"},
		{"unknown content type", "text/plain", noMediaTypeImage, true, "not supported"},
		{"no media type, ambiguous", "", `{"schemaVersion":2,"config":` + goodConfig + `,"layers":[],"manifests":[]}`, false, "both"},
		{"no media type, neither", "", `{"schemaVersion":2}`, false, "neither"},
		{"no media type, layers only", "application/json", `{"schemaVersion":2,"layers":[]}`, false, "neither"},
		{"image without config", MediaTypeOCIManifest, `{"schemaVersion":2,"layers":[]}`, false, "no config"},
		{"image with null config", MediaTypeOCIManifest, `{"schemaVersion":2,"config":null,"layers":[]}`, false, "no config"},
		{"image without layers", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + goodConfig + `}`, false, `no "layers"`},
		{"docker image without layers", MediaTypeDockerManifest, `{"schemaVersion":2,"config":` + goodConfig + `}`, false, `no "layers"`},
		{"image with layers null and manifests", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + goodConfig + `,"layers":null,"manifests":[]}`, false, `"manifests"`},
		{"no media type, layers null, no config", "", `{"schemaVersion":2,"layers":null}`, false, "neither"},
		{"layer size float", "", image(goodConfig, `[{"mediaType":"x","digest":"@B@","size":1.5}]`), false, `"layers`},
		{"image with manifests", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + goodConfig + `,"layers":[],"manifests":[]}`, false, `"manifests"`},
		{"index without manifests", MediaTypeOCIIndex, `{"schemaVersion":2}`, false, `no "manifests"`},
		{"index with layers", MediaTypeOCIIndex, `{"schemaVersion":2,"manifests":[],"layers":[]}`, false, `"layers"`},
		{"index with layers null, no manifests", MediaTypeOCIIndex, `{"schemaVersion":2,"layers":null}`, false, `no "manifests"`},
		{"manifests not array", MediaTypeOCIIndex, `{"schemaVersion":2,"manifests":{}}`, false, `"manifests"`},
		{"config bad digest", "", image(`{"mediaType":"x","digest":"sha256:abc","size":1}`, `[]`), false, "config: digest"},
		{"config md5 digest", "", image(`{"mediaType":"x","digest":"md5:d41d8cd98f00b204e9800998ecf8427e","size":1}`, `[]`), false, "md5"},
		{"config negative size", "", image(`{"mediaType":"x","digest":"@A@","size":-1}`, `[]`), false, "config: size is -1"},
		{"config no size", "", image(`{"mediaType":"x","digest":"@A@"}`, `[]`), false, "config: size is missing"},
		{"config no media type", "", image(`{"digest":"@A@","size":1}`, `[]`), false, "config: mediaType is missing"},
		{"layer no digest", "", image(goodConfig, `[{"mediaType":"x","size":1}]`), false, "layers[0]: digest is missing"},
		{"layer uppercase digest", "", image(goodConfig, `[{"mediaType":"x","digest":"@B@","size":1},{"mediaType":"x","digest":"sha256:`+strings.Repeat("A", 64)+`","size":1}]`), false, "layers[1]: digest"},
		{"layer no media type", "", image(goodConfig, `[{"digest":"@B@","size":1}]`), false, "layers[0]: mediaType is missing"},
		{"layers not array", "", image(goodConfig, `{}`), false, `"layers"`},
		{"index child bad digest", MediaTypeOCIIndex, `{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:zz","size":1}]}`, false, "manifests[0]: digest"},
		{"subject bad digest", "", strings.Replace(signature, `"digest": "@C@"`, `"digest": "sha256:nope"`, 1), false, "subject: digest"},
		{"size float", "", image(`{"mediaType":"x","digest":"@A@","size":1.5}`, `[]`), false, `field "config.size"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest(tt.contentType, []byte(fixture(tt.body)))
			if err == nil {
				t.Fatalf("ParseManifest = %+v, want error containing %q", m, tt.wantMsg)
			}
			if !errors.Is(err, ErrManifestInvalid) {
				t.Errorf("got %v, want it to wrap ErrManifestInvalid", err)
			}
			if got := errors.Is(err, ErrUnsupported); got != tt.unsupported {
				t.Errorf("got errors.Is(err, ErrUnsupported) = %v, want %v (err %v)", got, tt.unsupported, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}
