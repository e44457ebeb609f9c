package torture

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	mediaEmpty    = "application/vnd.oci.empty.v1+json"
	artifactSig   = "application/vnd.berth.torture.signature.v1"
)

// blobData is a blob the harness pushes: bytes and digest.
type blobData struct {
	data      []byte
	digest    string
	mediaType string
}

func newBlob(data []byte, mediaType string) blobData {
	return blobData{data: data, digest: sha256Digest(data), mediaType: mediaType}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

var emptyConfig = newBlob([]byte("{}"), mediaEmpty)

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Platform     map[string]string `json:"platform,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type manifestJSON struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        *descriptor       `json:"config,omitempty"`
	Layers        []descriptor      `json:"layers,omitempty"`
	Manifests     []descriptor      `json:"manifests,omitempty"`
	Subject       *descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

func desc(b blobData) descriptor {
	return descriptor{MediaType: b.mediaType, Digest: b.digest, Size: int64(len(b.data))}
}

// imageConfig is a JSON image config; labels become manifest labels.
func imageConfig(nonce string, labels map[string]string) blobData {
	cfg := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{}},
		"config":       map[string]any{"Labels": labels},
		"torture":      nonce,
	}
	b, _ := json.Marshal(cfg)
	return newBlob(b, mediaConfig)
}

// built is a manifest ready to push, with the blobs it needs.
type built struct {
	rec   *manifestRec
	blobs []blobData
}

func buildImage(cfgBlob blobData, layers []blobData, annotations map[string]string) built {
	m := manifestJSON{SchemaVersion: 2, MediaType: mediaManifest, Annotations: annotations}
	c := desc(cfgBlob)
	m.Config = &c
	for _, l := range layers {
		m.Layers = append(m.Layers, desc(l))
	}
	body, _ := json.Marshal(m)
	rec := &manifestRec{digest: sha256Digest(body), mediaType: mediaManifest, body: body, kind: "image"}
	if v, ok := annotations["berth.expires-after"]; ok {
		// Every PUT of this manifest under a tag gives the tag this expiry.
		rec.expiry, _ = time.ParseDuration(v)
	}
	all := append([]blobData{cfgBlob}, layers...)
	for _, b := range all {
		rec.blobs = append(rec.blobs, blobRef{digest: b.digest, size: int64(len(b.data))})
	}
	return built{rec: rec, blobs: all}
}

func buildIndex(children []*manifestRec, annotations map[string]string) *manifestRec {
	m := manifestJSON{SchemaVersion: 2, MediaType: mediaIndex, Annotations: annotations}
	archs := []string{"amd64", "arm64", "s390x", "ppc64le"}
	for i, c := range children {
		m.Manifests = append(m.Manifests, descriptor{MediaType: c.mediaType, Digest: c.digest, Size: int64(len(c.body)),
			Platform: map[string]string{"architecture": archs[i%len(archs)], "os": "linux"}})
	}
	body, _ := json.Marshal(m)
	rec := &manifestRec{digest: sha256Digest(body), mediaType: mediaIndex, body: body, kind: "index"}
	for _, c := range children {
		rec.children = append(rec.children, c.digest)
	}
	return rec
}

func buildReferrer(subject *manifestRec, payload blobData, nonce string) built {
	m := manifestJSON{SchemaVersion: 2, MediaType: mediaManifest, ArtifactType: artifactSig,
		Annotations: map[string]string{"org.opencontainers.image.created": "2026-01-01T00:00:00Z", "torture": nonce}}
	c := desc(emptyConfig)
	m.Config = &c
	m.Layers = []descriptor{desc(payload)}
	m.Subject = &descriptor{MediaType: subject.mediaType, Digest: subject.digest, Size: int64(len(subject.body))}
	body, _ := json.Marshal(m)
	rec := &manifestRec{digest: sha256Digest(body), mediaType: mediaManifest, body: body, kind: "referrer", subject: subject.digest}
	all := []blobData{emptyConfig, payload}
	for _, b := range all {
		rec.blobs = append(rec.blobs, blobRef{digest: b.digest, size: int64(len(b.data))})
	}
	return built{rec: rec, blobs: all}
}

// parsed is what verification reads back from a manifest body.
type parsed struct {
	blobs    []descriptor
	children []descriptor
}

func parseManifest(body []byte) (parsed, error) {
	var m manifestJSON
	if err := json.Unmarshal(body, &m); err != nil {
		return parsed{}, fmt.Errorf("parsing manifest: %w", err)
	}
	var p parsed
	if m.Config != nil {
		p.blobs = append(p.blobs, *m.Config)
	}
	p.blobs = append(p.blobs, m.Layers...)
	p.children = m.Manifests
	return p, nil
}

// Manifest kinds the rules' operations push (worker_rules.go).
const (
	kindRelease   = "release"   // an image under an immutable tag
	kindSignature = "signature" // a cosign-style signature under sha256-<hex>.sig
)

// Cosign's media types for a signature stored under a tag.
const (
	artifactCosignSig = "application/vnd.dev.cosign.artifact.sig.v1+json"
	mediaCosignSig    = "application/vnd.dev.cosign.simplesigning.v1+json"
)

// buildSignature is a cosign-style signature manifest: an artifact with an
// empty config and one layer, no subject field (the tag names the subject).
func buildSignature(subject string, payload blobData, nonce string) built {
	l := desc(payload)
	l.Annotations = map[string]string{"dev.cosignproject.cosign/signature": nonce, "torture.subject": subject}
	m := manifestJSON{SchemaVersion: 2, MediaType: mediaManifest, ArtifactType: artifactCosignSig}
	c := desc(emptyConfig)
	m.Config = &c
	m.Layers = []descriptor{l}
	body, _ := json.Marshal(m)
	rec := &manifestRec{digest: sha256Digest(body), mediaType: mediaManifest, body: body, kind: kindSignature}
	all := []blobData{emptyConfig, payload}
	for _, b := range all {
		rec.blobs = append(rec.blobs, blobRef{digest: b.digest, size: int64(len(b.data))})
	}
	return built{rec: rec, blobs: all}
}
