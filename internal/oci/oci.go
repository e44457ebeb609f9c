// Package oci holds the pure parts of the OCI model berth serves: repository
// name and tag grammar, digests, references, media types, manifest and index
// parsing, image config labels and expiry label values.
//
// Nothing here does I/O; the HTTP API and the registry use cases call it to
// decide whether input is acceptable and what it refers to.
package oci

import "errors"

// Sentinel errors. Every error returned by this package wraps one or more of
// them with a message saying precisely what was wrong; compare with errors.Is.
var (
	// ErrNameInvalid reports a repository name outside the distribution-spec grammar.
	ErrNameInvalid = errors.New("invalid repository name")
	// ErrTagInvalid reports a tag outside the distribution-spec grammar.
	ErrTagInvalid = errors.New("invalid tag")
	// ErrDigestInvalid reports a malformed digest. An unsupported algorithm
	// wraps it as well as ErrUnsupported.
	ErrDigestInvalid = errors.New("invalid digest")
	// ErrManifestInvalid reports a manifest or index that cannot be accepted.
	// An unsupported manifest media type wraps it as well as ErrUnsupported.
	ErrManifestInvalid = errors.New("invalid manifest")
	// ErrUnsupported reports well-formed input berth does not accept: a digest
	// algorithm other than sha256/sha512, or a manifest media type outside the
	// four accepted ones.
	ErrUnsupported = errors.New("unsupported")
	// ErrConfigInvalid reports an image config blob that is not JSON of the
	// expected shape.
	ErrConfigInvalid = errors.New("invalid image config")
	// ErrExpiryInvalid reports an expiry label value that is not a positive duration.
	ErrExpiryInvalid = errors.New("invalid expiry")
)

// Media types berth accepts for manifests, and the empty descriptor type.
const (
	MediaTypeOCIManifest        = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex           = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeOCIEmpty           = "application/vnd.oci.empty.v1+json"

	// MaxManifestSize is the largest manifest body accepted, in bytes.
	MaxManifestSize = 4 << 20
)

// IsManifestMediaType reports whether mt is the media type of a manifest or
// an index: one of the four berth accepts, or one it refuses to store
// (Docker schema 1, the withdrawn OCI artifact manifest). An index entry of
// such a type must name a manifest; an entry of any other type may name a
// blob (docs/design/clients.md).
func IsManifestMediaType(mt string) bool {
	switch mt {
	case MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerManifestList,
		"application/vnd.docker.distribution.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.v1+prettyjws",
		"application/vnd.oci.artifact.manifest.v1+json":
		return true
	}
	return false
}

// mediaTypeOCIConfig is the standard image config type; an image manifest
// whose config has another type is an artifact of that type.
const mediaTypeOCIConfig = "application/vnd.oci.image.config.v1+json"

// MediaTypeOCIConfig is the standard image config type, which the referrers
// API reports as the artifact type of an image manifest without one.
const MediaTypeOCIConfig = mediaTypeOCIConfig
