package oci

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
)

func TestAttachmentSubject(t *testing.T) {
	sha256D := digest.Digest("sha256:" + hex64)
	sha512D := digest.Digest("sha512:" + hex128)
	tests := []struct {
		tag  string
		want digest.Digest // "": not an attachment tag
	}{
		{"sha256-" + hex64, sha256D},
		{"sha256-" + hex64 + ".sig", sha256D},
		{"sha256-" + hex64 + ".att", sha256D},
		{"sha256-" + hex64 + ".sbom", sha256D},
		{"sha512-" + hex128, sha512D},
		{"sha512-" + hex128 + ".sig", sha512D},
		{"sha512-" + hex128 + ".sbom", sha512D},

		{"latest", ""},
		{"v1.sig", ""},
		{"sha256-abc", ""},
		{"sha256-abc.sig", ""},
		{"sha256-" + hex64[:63], ""},
		{"sha256-" + hex64 + "0", ""},
		{"sha256-" + hex64[:63] + ".sig", ""},
		{"sha256-" + strings.ToUpper(hex64), ""},
		{"sha256-" + strings.ToUpper(hex64) + ".sig", ""},
		{"SHA256-" + hex64, ""},
		{"sha256-" + hex64 + ".foo", ""},
		{"sha256-" + hex64 + ".SIG", ""},
		{"sha256-" + hex64 + ".sig.sig", ""},
		{"sha256-" + hex64 + "sig", ""},
		{"sha256_" + hex64, ""},
		{"sha256--" + hex64, ""},
		{"sha512-" + hex64, ""}, // the spec's 64-character limit is not recognized
		{"sha384-" + strings.Repeat("0", 96), ""},
		{"md5-d41d8cd98f00b204e9800998ecf8427e", ""},
		{"x-sha256-" + hex64, ""},
		{".sig", ""},
		{"", ""},
	}
	for _, tc := range tests {
		got, ok := AttachmentSubject(tc.tag)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("AttachmentSubject(%q) = %q, %v; want %q, %v", tc.tag, got, ok, tc.want, tc.want != "")
		}
	}
}

func TestAttachmentTags(t *testing.T) {
	d := digest.Digest("sha256:" + hex64)
	want := []string{"sha256-" + hex64, "sha256-" + hex64 + ".sig", "sha256-" + hex64 + ".att", "sha256-" + hex64 + ".sbom"}
	if diff := cmp.Diff(want, AttachmentTags(d)); diff != "" {
		t.Errorf("AttachmentTags(%s) (-want +got):\n%s", d, diff)
	}
	for _, d := range []digest.Digest{d, digest.Digest("sha512:" + hex128), digest.FromString("subject")} {
		tags := AttachmentTags(d)
		if len(tags) != 4 {
			t.Fatalf("AttachmentTags(%s): got %d tags, want 4", d, len(tags))
		}
		for _, tag := range tags {
			if got, ok := AttachmentSubject(tag); !ok || got != d {
				t.Errorf("AttachmentSubject(%q) = %q, %v; want %s, true", tag, got, ok, d)
			}
		}
	}
	// Only digests berth accepts have attachment tags.
	for _, d := range []digest.Digest{"", "sha256:abc", digest.Digest("sha384:" + strings.Repeat("0", 96)), digest.Digest("sha256:" + strings.ToUpper(hex64))} {
		if tags := AttachmentTags(d); tags != nil {
			t.Errorf("AttachmentTags(%q) = %q, want none", d, tags)
		}
	}
}

// Every sha256 attachment tag is a valid tag; a sha512 one is too long
// for the tag grammar (the reason no registry stores one).
func TestAttachmentTagsAgainstTagGrammar(t *testing.T) {
	for _, tag := range AttachmentTags(digest.Digest("sha256:" + hex64)) {
		if err := ValidateTag(tag); err != nil {
			t.Errorf("ValidateTag(%q): %v", tag, err)
		}
	}
	for _, tag := range AttachmentTags(digest.Digest("sha512:" + hex128)) {
		if err := ValidateTag(tag); err == nil {
			t.Errorf("ValidateTag(%q): got nil, want too long", tag)
		}
	}
}
