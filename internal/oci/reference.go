package oci

import (
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Reference is the <reference> of /v2/<name>/manifests/<reference>: a tag or
// a digest. Exactly one field is set.
type Reference struct {
	Tag    string
	Digest digest.Digest
}

// ParseReference parses a tag or, when s contains ':', a digest. Tags cannot
// contain ':', so the two never overlap. Errors wrap ErrTagInvalid, or those
// of ParseDigest.
func ParseReference(s string) (Reference, error) {
	if strings.Contains(s, ":") {
		d, err := ParseDigest(s)
		if err != nil {
			return Reference{}, fmt.Errorf("parsing reference: %w", err)
		}
		return Reference{Digest: d}, nil
	}
	if err := ValidateTag(s); err != nil {
		return Reference{}, fmt.Errorf("parsing reference: %w", err)
	}
	return Reference{Tag: s}, nil
}

// String returns the reference as it appears in a URL: the digest if set,
// otherwise the tag.
func (r Reference) String() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}
