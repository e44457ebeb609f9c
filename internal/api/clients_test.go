package api_test

// Manifests real clients push that a strict reading of the specs refuses:
// BuildKit's registry cache (an index whose entries are blobs) and images
// written by Go encoders with "layers": null (docs/design/clients.md).

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

const (
	mtDockerList       = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerManifest   = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerLayer      = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mtBuildKitCacheCfg = "application/vnd.buildkit.cacheconfig.v0"
)

// buildkitDescriptor is a descriptor as BuildKit marshals it (the field
// order of the image-spec's Go type).
type buildkitDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      digest.Digest     `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// buildkitCacheIndex is the index BuildKit's registry cache exporter writes
// with image-manifest=false (its default before v0.21).
type buildkitCacheIndex struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType,omitempty"`
	Manifests     []buildkitDescriptor `json:"manifests"`
}

// gzipped compresses b.
func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pushBuildKitCache uploads what BuildKit's exporter uploads for a cache of
// n layers (the gzipped layers, then the cache config) and returns the
// index it then PUTs: OCI media types (oci-mediatypes=true, the default) or
// Docker ones.
func (e *env) pushBuildKitCache(repo string, oci bool, n int) []byte {
	e.t.Helper()
	indexType, layerType := mtIndex, mtLayer
	if !oci {
		indexType, layerType = mtDockerList, mtDockerLayer
	}
	created := time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC).Format(time.RFC3339Nano)
	idx := buildkitCacheIndex{SchemaVersion: 2, MediaType: indexType}
	type cacheLayer struct {
		Blob   digest.Digest `json:"blob"`
		Parent int           `json:"parent,omitempty"`
	}
	type cacheResult struct {
		Layer     int    `json:"layer"`
		CreatedAt string `json:"createdAt"`
	}
	type cacheRecord struct {
		Digest  digest.Digest `json:"digest"`
		Results []cacheResult `json:"results,omitempty"`
	}
	var cfg struct {
		Layers  []cacheLayer  `json:"layers"`
		Records []cacheRecord `json:"records"`
	}
	for i := range n {
		tarball := tarOf(e.t, fmt.Sprintf("step%d/file", i), randomBytes(2000))
		layer := gzipped(e.t, tarball)
		d := e.pushBlob(repo, layer)
		idx.Manifests = append(idx.Manifests, buildkitDescriptor{MediaType: layerType, Digest: d, Size: int64(len(layer)),
			Annotations: map[string]string{"buildkit/createdat": created, "containerd.io/uncompressed": digest.FromBytes(tarball).String()}})
		parent := i - 1
		if parent < 0 {
			parent = -1
		}
		cfg.Layers = append(cfg.Layers, cacheLayer{Blob: d, Parent: parent})
		cfg.Records = append(cfg.Records, cacheRecord{Digest: digest.FromString(fmt.Sprintf("step %d", i)), Results: []cacheResult{{Layer: i, CreatedAt: created}}})
	}
	cfgBody, _ := json.Marshal(cfg)
	idx.Manifests = append(idx.Manifests, buildkitDescriptor{MediaType: mtBuildKitCacheCfg, Digest: e.pushBlob(repo, cfgBody), Size: int64(len(cfgBody))})
	body, err := json.Marshal(idx)
	if err != nil {
		e.t.Fatal(err)
	}
	return body
}

// indexEdges counts the manifest_child and manifest_blob rows of manifest d.
func (e *env) indexEdges(d digest.Digest) (children, blobs int) {
	e.t.Helper()
	db := e.store.DB()
	q := func(table, col string) int {
		var n int
		query := "SELECT COUNT(*) FROM " + table + " WHERE " + col + " = '" + d.String() + "'"
		if err := db.QueryRow(query).Scan(&n); err != nil {
			e.t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	return q("manifest_child", "parent_digest"), q("manifest_blob", "manifest_digest")
}

// A BuildKit registry cache (--cache-to type=registry, image-manifest=false)
// is accepted in both media type families, pulled back byte for byte, its
// entries fetched as blobs, and its blobs kept by the index (manifest_blob).
func TestBuildKitCacheIndex(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, oci := range []bool{true, false} {
			repo, indexType := "ci/cache-oci", mtIndex
			if !oci {
				repo, indexType = "ci/cache-docker", mtDockerList
			}
			body := e.pushBuildKitCache(repo, oci, 3)
			d := e.mustPutManifest(repo, "buildcache", indexType, body)
			// BuildKit exports the same cache again after a no-op build.
			e.mustPutManifest(repo, "buildcache", indexType, body)

			resp, got := e.do("GET", "/v2/"+repo+"/manifests/buildcache", map[string]string{"Accept": indexType}, nil)
			e.expect(resp, got, http.StatusOK)
			if !bytes.Equal(got, body) || resp.Header.Get("Content-Type") != indexType || resp.Header.Get("Docker-Content-Digest") != d.String() {
				t.Errorf("%s: GET got %q (%s, %s), want the bytes pushed (%s, %s)", repo, got, resp.Header.Get("Content-Type"), resp.Header.Get("Docker-Content-Digest"), indexType, d)
			}
			var idx buildkitCacheIndex
			if err := json.Unmarshal(got, &idx); err != nil {
				t.Fatal(err)
			}
			// The importer fetches every entry by digest from /blobs/.
			for _, m := range idx.Manifests {
				resp, b := e.do("HEAD", "/v2/"+repo+"/blobs/"+m.Digest.String(), nil, nil)
				e.expect(resp, b, http.StatusOK)
				if resp.ContentLength != m.Size {
					t.Errorf("HEAD %s: got length %d, want %d", m.Digest, resp.ContentLength, m.Size)
				}
				resp, b = e.do("GET", "/v2/"+repo+"/blobs/"+m.Digest.String(), nil, nil)
				e.expect(resp, b, http.StatusOK)
				if digest.FromBytes(b) != m.Digest {
					t.Errorf("GET %s: got bytes of %s", m.Digest, digest.FromBytes(b))
				}
			}
			if children, blobs := e.indexEdges(d); children != 0 || blobs != len(idx.Manifests) {
				t.Errorf("%s: got %d child and %d blob edges, want 0 and %d", repo, children, blobs, len(idx.Manifests))
			}
			// The index now protects its blobs: a blob it lists cannot be
			// deleted, as for an image's layers.
			resp, b := e.do("DELETE", "/v2/"+repo+"/blobs/"+idx.Manifests[0].Digest.String(), nil, nil)
			if resp.StatusCode != http.StatusForbidden || ociCode(b) != "DENIED" {
				t.Errorf("DELETE a blob the cache lists: got %d %s, want 403 DENIED", resp.StatusCode, b)
			}
		}
	})
}

// How an index entry is classified: a manifest of the repository whatever
// its media type says; else, unless its media type is a manifest's, a blob
// of the repository with the size it says; else refused.
func TestIndexEntries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		const repo = "entries"
		child := e.mustPutManifest(repo, "child", mtManifest, e.image(repo, nil, 1))
		layer := randomBytes(100)
		blobD := e.pushBlob(repo, layer)
		foreignD := e.pushBlob("elsewhere", randomBytes(50))
		missing := digest.FromString("never uploaded")
		index := func(mt string, entries ...desc) []byte {
			b, _ := json.Marshal(manifestDoc{SchemaVersion: 2, MediaType: mt, Manifests: entries})
			return b
		}
		blobEntry := desc{MediaType: mtLayer, Digest: blobD, Size: int64(len(layer))}
		tests := []struct {
			name         string
			body         []byte
			status       int
			code         string
			children     int
			blobs        int
			detailDigest digest.Digest
		}{
			{name: "child manifest and blob", body: index(mtIndex, desc{MediaType: mtManifest, Digest: child, Size: 1}, blobEntry), status: 201, children: 1, blobs: 1},
			{name: "blob listed twice", body: index(mtIndex, blobEntry, blobEntry), status: 201, blobs: 1},
			{name: "manifest listed with a layer type", body: index(mtIndex, desc{MediaType: mtLayer, Digest: child, Size: 1}), status: 201, children: 1},
			{name: "docker list of a blob", body: index(mtDockerList, desc{MediaType: mtDockerLayer, Digest: blobD, Size: int64(len(layer))}), status: 201, blobs: 1},
			{name: "unknown blob entry", body: index(mtIndex, blobEntry, desc{MediaType: mtBuildKitCacheCfg, Digest: missing, Size: 9}), status: 404, code: "MANIFEST_BLOB_UNKNOWN", detailDigest: missing},
			{name: "blob of another repository", body: index(mtIndex, desc{MediaType: mtLayer, Digest: foreignD, Size: 50}), status: 404, code: "MANIFEST_BLOB_UNKNOWN", detailDigest: foreignD},
			{name: "blob entry with the wrong size", body: index(mtIndex, desc{MediaType: mtLayer, Digest: blobD, Size: int64(len(layer)) + 1}), status: 400, code: "MANIFEST_INVALID"},
			{name: "blob listed twice, once with the wrong size", body: index(mtIndex, blobEntry, desc{MediaType: mtLayer, Digest: blobD, Size: 1}), status: 400, code: "MANIFEST_INVALID"},
			{name: "manifest type naming a blob", body: index(mtIndex, desc{MediaType: mtManifest, Digest: blobD, Size: int64(len(layer))}), status: 404, code: "MANIFEST_UNKNOWN"},
			{name: "docker manifest type naming a blob", body: index(mtDockerList, desc{MediaType: mtDockerManifest, Digest: blobD, Size: int64(len(layer))}), status: 404, code: "MANIFEST_UNKNOWN"},
			{name: "blob and manifest type on one digest", body: index(mtIndex, blobEntry, desc{MediaType: mtManifest, Digest: blobD, Size: int64(len(layer))}), status: 404, code: "MANIFEST_UNKNOWN"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp, b := e.putManifest(repo, digest.FromBytes(tt.body).String(), mtIndexOf(tt.body), tt.body)
				if resp.StatusCode != tt.status || ociCode(b) != tt.code {
					t.Fatalf("PUT: got %d %s, want %d %s", resp.StatusCode, b, tt.status, tt.code)
				}
				if tt.detailDigest != "" {
					var env struct {
						Errors []struct {
							Detail struct {
								Digest digest.Digest `json:"digest"`
							} `json:"detail"`
						} `json:"errors"`
					}
					if err := json.Unmarshal(b, &env); err != nil || len(env.Errors) == 0 || env.Errors[0].Detail.Digest != tt.detailDigest {
						t.Errorf("error detail: got %s, want digest %s", b, tt.detailDigest)
					}
				}
				if tt.status != http.StatusCreated {
					return
				}
				if children, blobs := e.indexEdges(digest.FromBytes(tt.body)); children != tt.children || blobs != tt.blobs {
					t.Errorf("edges: got %d children and %d blobs, want %d and %d", children, blobs, tt.children, tt.blobs)
				}
			})
		}
	})
}

// mtIndexOf returns the mediaType of an index body.
func mtIndexOf(body []byte) string {
	var doc manifestDoc
	_ = json.Unmarshal(body, &doc)
	return doc.MediaType
}

// go-containerregistry pushes an index whose entries are layers (its fix
// for BuildKit caches), pulls it back, reads each entry as a layer through
// the index, and copies it to another repository as crane copy does.
func TestGGCRBuildKitCache(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newClient(t, e)
		var adds []mutate.IndexAddendum
		var want []v1.Hash
		for i := range 2 {
			l := static.NewLayer(gzipped(t, tarOf(t, fmt.Sprintf("f%d", i), randomBytes(1500))), types.OCILayer)
			adds = append(adds, mutate.IndexAddendum{Add: l, Descriptor: v1.Descriptor{Annotations: map[string]string{"buildkit/createdat": "2025-03-04T05:06:07Z"}}})
			want = append(want, mustDigest(t, l))
		}
		cfg := static.NewLayer([]byte(`{"layers":[],"records":[]}`), mtBuildKitCacheCfg)
		adds = append(adds, mutate.IndexAddendum{Add: cfg})
		want = append(want, mustDigest(t, cfg))
		idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
		if err := remote.WriteIndex(c.ref("ci/ggcr:cache"), idx, c.opts()...); err != nil {
			t.Fatalf("remote.WriteIndex: %v", err)
		}

		for _, repo := range []string{"ci/ggcr", "ci/copy"} {
			got, err := remote.Index(c.ref(repo+":cache"), c.opts()...)
			if err != nil {
				t.Fatalf("remote.Index %s: %v", repo, err)
			}
			if g, w := mustDigest(t, got), mustDigest(t, idx); g != w {
				t.Fatalf("%s: got index %s, want %s", repo, g, w)
			}
			entries, err := partial.Manifests(got)
			if err != nil {
				t.Fatalf("%s: entries: %v", repo, err)
			}
			if len(entries) != len(want) {
				t.Fatalf("%s: got %d entries, want %d", repo, len(entries), len(want))
			}
			for i, en := range entries {
				l, ok := en.(v1.Layer)
				if !ok {
					t.Fatalf("%s: entry %d is a %T, want a layer", repo, i, en)
				}
				rc, err := l.Compressed()
				if err != nil {
					t.Fatalf("%s: entry %d: %v", repo, i, err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatalf("%s: reading entry %d: %v", repo, i, err)
				}
				if d := digest.FromBytes(b); d.String() != want[i].String() {
					t.Errorf("%s: entry %d bytes: got %s, want %s", repo, i, d, want[i])
				}
			}
			if repo == "ci/ggcr" {
				// crane copy: the remote index is written to another repository.
				if err := remote.WriteIndex(c.ref("ci/copy:cache"), got, c.opts()...); err != nil {
					t.Fatalf("copying the cache: %v", err)
				}
			}
		}
	})
}

// "layers": null (regctl image create, Go encoders) and "manifests": null
// are empty lists; a manifest without the field is still refused.
func TestNullLists(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		const repo = "scratch"
		cfg := []byte(`{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}`)
		cfgD := e.pushBlob(repo, cfg)
		config := fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, mtConfig, cfgD, len(cfg))
		dockerConfig := strings.Replace(config, mtConfig, "application/vnd.docker.container.image.v1+json", 1)
		tests := []struct {
			name, mediaType, body string
			status                int
			code, detail          string
		}{
			{"oci image, layers null", mtManifest, `{"schemaVersion":2,"mediaType":"` + mtManifest + `","config":` + config + `,"layers":null}`, 201, "", ""},
			{"docker image, layers null", mtDockerManifest, `{"schemaVersion":2,"mediaType":"` + mtDockerManifest + `","config":` + dockerConfig + `,"layers":null}`, 201, "", ""},
			{"oci index, manifests null", mtIndex, `{"schemaVersion":2,"mediaType":"` + mtIndex + `","manifests":null}`, 201, "", ""},
			{"docker list, manifests null", mtDockerList, `{"schemaVersion":2,"mediaType":"` + mtDockerList + `","manifests":null}`, 201, "", ""},
			{"image without layers", mtManifest, `{"schemaVersion":2,"mediaType":"` + mtManifest + `","config":` + config + `}`, 400, "MANIFEST_INVALID", `no \"layers\" array`},
			{"index without manifests", mtIndex, `{"schemaVersion":2,"mediaType":"` + mtIndex + `"}`, 400, "MANIFEST_INVALID", `no \"manifests\" array`},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tag := fmt.Sprintf("t%d", i)
				resp, b := e.putManifest(repo, tag, tt.mediaType, []byte(tt.body))
				if resp.StatusCode != tt.status || ociCode(b) != tt.code || !strings.Contains(string(b), tt.detail) {
					t.Fatalf("PUT: got %d %s, want %d %s mentioning %s", resp.StatusCode, b, tt.status, tt.code, tt.detail)
				}
				if tt.status != http.StatusCreated {
					return
				}
				resp, b = e.do("GET", "/v2/"+repo+"/manifests/"+tag, map[string]string{"Accept": tt.mediaType}, nil)
				e.expect(resp, b, http.StatusOK)
				if string(b) != tt.body {
					t.Errorf("GET: got %s, want the bytes pushed", b)
				}
			})
		}
		// A client library reads the image back as one without layers.
		c := newClient(t, e)
		img, err := remote.Image(c.ref(repo+":t0"), c.opts()...)
		if err != nil {
			t.Fatalf("remote.Image: %v", err)
		}
		if ls, err := img.Layers(); err != nil || len(ls) != 0 {
			t.Errorf("layers of the pulled image: got %d (%v), want none", len(ls), err)
		}
	})
}
