package oci

import (
	"strings"

	"github.com/opencontainers/go-digest"
)

// Attachment tags (docs/design/gc.md, "Attachments follow their subject").
// Clients that store what they attach to a manifest (signatures,
// attestations, SBOMs) where the referrers API is absent or not used name
// it with a tag derived from the subject's digest "<alg>:<hex>":
//
//   - "<alg>-<hex>", the OCI referrers tag schema (distribution-spec
//     v1.1, "Unavailable Referrers API"): an index listing the subject's
//     referrers, written by notation by default and by older ORAS and
//     go-containerregistry clients;
//   - "<alg>-<hex>.sig", ".att" and ".sbom": cosign's signature,
//     attestation and SBOM.
//
// The hex is the whole digest, lowercase, as those clients write it: 64
// characters for sha256, 128 for sha512. (The spec's "limit of 64
// characters" is not what clients do, and no other form is recognized. A
// sha512 attachment tag is 135 characters or more, longer than the tag
// grammar allows, so no registry that checks it, berth included, stores
// one; it is recognized for completeness.)

// attachmentSuffixes are cosign's suffixes; "" is the referrers tag schema.
var attachmentSuffixes = []string{"", ".sig", ".att", ".sbom"}

// AttachmentSubject reports whether tag is an attachment tag and, if so,
// the digest of its subject: "sha256-<64 lowercase hex>" or
// "sha512-<128 lowercase hex>", alone or followed by ".sig", ".att" or
// ".sbom". Anything else (a short or uppercase hex, another algorithm,
// another suffix) is not.
func AttachmentSubject(tag string) (digest.Digest, bool) {
	base := tag
	for _, s := range attachmentSuffixes[1:] {
		if b, ok := strings.CutSuffix(tag, s); ok {
			base = b
			break
		}
	}
	alg, hex, ok := strings.Cut(base, "-")
	if !ok {
		return "", false
	}
	d, err := parseDigest(alg + ":" + hex)
	if err != nil {
		return "", false
	}
	return d, true
}

// AttachmentTags lists the attachment tags of subject d, in a fixed order:
// the referrers tag schema's, then cosign's signature, attestation and
// SBOM. It is the reverse of AttachmentSubject: each of them maps back to
// d. A digest of an algorithm berth does not accept has none.
func AttachmentTags(d digest.Digest) []string {
	if _, err := parseDigest(d.String()); err != nil {
		return nil
	}
	base := d.Algorithm().String() + "-" + d.Encoded()
	out := make([]string, len(attachmentSuffixes))
	for i, s := range attachmentSuffixes {
		out[i] = base + s
	}
	return out
}
