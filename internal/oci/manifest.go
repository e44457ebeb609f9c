package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Descriptor points at content by digest, as in manifests and indexes.
type Descriptor struct {
	MediaType    string
	Digest       digest.Digest
	Size         int64
	ArtifactType string
	Annotations  map[string]string
	Platform     *Platform
}

// Platform is the part of an index entry's platform berth looks at.
type Platform struct {
	Architecture, OS, Variant string
}

// Manifest is a parsed manifest or index, whatever its format.
type Manifest struct {
	// MediaType is the effective media type: the body's mediaType field, or
	// the Content-Type when the body omits it.
	MediaType string
	// ArtifactType is the artifactType field or, for an OCI image manifest
	// without it, config.mediaType when that is not the standard image config
	// type (the referrers rule). Always empty for Docker types.
	ArtifactType string
	Config       *Descriptor  // nil for indexes
	Layers       []Descriptor // image manifest layers (blobs)
	// Manifests are the entries of an index or manifest list: manifests,
	// or blobs (a BuildKit cache lists its layers and cache config); the
	// registry tells which (docs/design/clients.md).
	Manifests   []Descriptor
	Subject     *Descriptor // OCI types only; ignored in Docker types
	Annotations map[string]string
}

// IsIndex reports whether m is an OCI index or a Docker manifest list.
func (m *Manifest) IsIndex() bool {
	return m.MediaType == MediaTypeOCIIndex || m.MediaType == MediaTypeDockerManifestList
}

// Blobs returns the blobs m references directly: its config (if any) then its
// layers, without repeating a digest, in order. An index has none.
func (m *Manifest) Blobs() []Descriptor {
	var out []Descriptor
	seen := make(map[digest.Digest]bool)
	add := func(d Descriptor) {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			out = append(out, d)
		}
	}
	if m.Config != nil {
		add(*m.Config)
	}
	for _, l := range m.Layers {
		add(l)
	}
	return out
}

type rawPlatform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant"`
}

type rawDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         *int64            `json:"size"`
	ArtifactType string            `json:"artifactType"`
	Annotations  map[string]string `json:"annotations"`
	Platform     *rawPlatform      `json:"platform"`
}

type rawManifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *rawDescriptor    `json:"config"`
	Layers        descriptorList    `json:"layers"`
	Manifests     descriptorList    `json:"manifests"`
	Subject       *rawDescriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// descriptorList is a JSON array of descriptors that remembers whether the
// field was in the body and whether it was null. A null list is an empty
// list: Go encoders write a nil slice as null, and the reference types of
// the image-spec (Manifest.Layers, Index.Manifests) have no omitempty, so
// "layers": null is how they write an image without layers.
type descriptorList struct {
	set   bool // the field is in the body, possibly null
	null  bool // the field is JSON null
	items []rawDescriptor
}

func (l *descriptorList) UnmarshalJSON(b []byte) error {
	l.set = true
	if string(b) == "null" {
		l.null = true
		return nil
	}
	return json.Unmarshal(b, &l.items)
}

// nonNull reports a field that is there and not null: a list, possibly
// empty. A field a media type forbids is refused only then.
func (l descriptorList) nonNull() bool { return l.set && !l.null }

// ParseManifest parses and validates a manifest or index body sent with the
// given Content-Type. Errors wrap ErrManifestInvalid; an unaccepted media
// type also wraps ErrUnsupported.
//
// The media type is the body's mediaType, else the Content-Type (parameters
// ignored); when both are set they must agree. With no usable media type
// (empty or application/json Content-Type and no mediaType field) a body with
// "manifests" is taken as an OCI index and one with "config" and "layers" as
// an OCI image manifest.
//
// "layers" (image manifest) and "manifests" (index) must be in the body, as
// the image-spec's JSON schemas require; null is taken as an empty list
// (docs/design/clients.md).
func ParseManifest(contentType string, body []byte) (*Manifest, error) {
	if len(body) > MaxManifestSize {
		return nil, invalidf("manifest is %d bytes, larger than the %d-byte limit", len(body), MaxManifestSize)
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, invalidf("manifest body is empty")
	}
	if trimmed[0] != '{' {
		return nil, invalidf("manifest must be a JSON object")
	}
	var raw rawManifest
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, invalidf("decoding manifest: %s", jsonError(err))
	}
	if raw.SchemaVersion == nil {
		return nil, invalidf("schemaVersion is missing, want 2")
	}
	if *raw.SchemaVersion != 2 {
		return nil, invalidf("schemaVersion is %d, want 2", *raw.SchemaVersion)
	}

	mt, err := resolveMediaType(contentType, &raw)
	if err != nil {
		return nil, err
	}
	m := &Manifest{MediaType: mt, Annotations: raw.Annotations}
	switch mt {
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		if raw.Manifests.nonNull() {
			return nil, invalidf("%s must not have a \"manifests\" field", mt)
		}
		if raw.Config == nil {
			return nil, invalidf("%s has no config descriptor", mt)
		}
		if m.Config, err = parseDescriptor("config", raw.Config); err != nil {
			return nil, err
		}
		if !raw.Layers.set {
			return nil, invalidf("%s has no \"layers\" array", mt)
		}
		if m.Layers, err = parseDescriptors("layers", raw.Layers.items); err != nil {
			return nil, err
		}
		if mt == MediaTypeOCIManifest {
			m.ArtifactType = raw.ArtifactType
			if m.ArtifactType == "" && m.Config.MediaType != mediaTypeOCIConfig {
				m.ArtifactType = m.Config.MediaType
			}
		}
	case MediaTypeOCIIndex, MediaTypeDockerManifestList:
		if raw.Config != nil || raw.Layers.nonNull() {
			return nil, invalidf("%s must not have \"config\" or \"layers\" fields", mt)
		}
		if !raw.Manifests.set {
			return nil, invalidf("%s has no \"manifests\" array", mt)
		}
		if m.Manifests, err = parseDescriptors("manifests", raw.Manifests.items); err != nil {
			return nil, err
		}
		if mt == MediaTypeOCIIndex {
			m.ArtifactType = raw.ArtifactType
		}
	}
	if raw.Subject != nil && (mt == MediaTypeOCIManifest || mt == MediaTypeOCIIndex) {
		if m.Subject, err = parseDescriptor("subject", raw.Subject); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// resolveMediaType decides the effective media type of raw, sent with contentType.
func resolveMediaType(contentType string, raw *rawManifest) (string, error) {
	ct, _, _ := strings.Cut(contentType, ";")
	ct = strings.ToLower(strings.TrimSpace(ct))
	if ct == "application/json" {
		ct = ""
	}
	mt := raw.MediaType
	switch {
	case mt != "" && ct != "" && mt != ct:
		return "", invalidf("mediaType %q in the body does not match Content-Type %q", mt, ct)
	case mt == "":
		mt = ct
	}
	if mt == "" {
		// A null list is there for the field an index or an image needs,
		// and absent for the one it must not have.
		hasImage := raw.Config != nil || raw.Layers.nonNull()
		switch {
		case raw.Manifests.set && !hasImage:
			mt = MediaTypeOCIIndex
		case raw.Config != nil && raw.Layers.set && !raw.Manifests.nonNull():
			mt = MediaTypeOCIManifest
		case raw.Manifests.nonNull() && hasImage:
			return "", invalidf("no media type given, and the body has both \"manifests\" and \"config\"/\"layers\"")
		default:
			return "", invalidf("no media type given (no mediaType field, no Content-Type) and the body looks like neither an image manifest nor an index")
		}
	}
	switch mt {
	case MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerManifestList:
		return mt, nil
	}
	return "", fmt.Errorf("manifest media type %q is not supported (want %s, %s, %s or %s): %w (%w)",
		mt, MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerManifestList,
		ErrUnsupported, ErrManifestInvalid)
}

func parseDescriptors(field string, raws []rawDescriptor) ([]Descriptor, error) {
	if len(raws) == 0 {
		return nil, nil
	}
	out := make([]Descriptor, len(raws))
	for i := range raws {
		d, err := parseDescriptor(fmt.Sprintf("%s[%d]", field, i), &raws[i])
		if err != nil {
			return nil, err
		}
		out[i] = *d
	}
	return out, nil
}

func parseDescriptor(where string, r *rawDescriptor) (*Descriptor, error) {
	if r.MediaType == "" {
		return nil, invalidf("%s: mediaType is missing", where)
	}
	if r.Digest == "" {
		return nil, invalidf("%s: digest is missing", where)
	}
	dgst, err := parseDigest(r.Digest)
	if err != nil {
		return nil, invalidf("%s: digest %q: %s", where, r.Digest, err)
	}
	if r.Size == nil {
		return nil, invalidf("%s: size is missing", where)
	}
	if *r.Size < 0 {
		return nil, invalidf("%s: size is %d, must not be negative", where, *r.Size)
	}
	d := &Descriptor{
		MediaType:    r.MediaType,
		Digest:       dgst,
		Size:         *r.Size,
		ArtifactType: r.ArtifactType,
		Annotations:  r.Annotations,
	}
	if r.Platform != nil {
		d.Platform = &Platform{Architecture: r.Platform.Architecture, OS: r.Platform.OS, Variant: r.Platform.Variant}
	}
	return d, nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrManifestInvalid)
}

// jsonError makes a decoding error say where it happened.
func jsonError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not valid JSON: %s at byte %d", syn, syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q is a JSON %s, want %s", typ.Field, typ.Value, typ.Type)
		}
		return err.Error()
	}
	return err.Error()
}
