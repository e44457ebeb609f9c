package oci

import (
	"errors"
	"regexp"
	"testing"
)

// The distribution-spec grammars, as regular expressions, to check the
// hand-written validators against.
var (
	nameRE   = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE    = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	digestRE = regexp.MustCompile(`^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
	// attachmentRE: the referrers tag schema and cosign's tags.
	attachmentRE = regexp.MustCompile(`^(sha256-[a-f0-9]{64}|sha512-[a-f0-9]{128})(\.sig|\.att|\.sbom)?$`)
)

func FuzzParseManifest(f *testing.F) {
	for _, body := range []string{ociImage, ociIndex, dockerImage, dockerList, signature, sbomOldStyle, indexArtifact, buildkitCache, layersNull, manifestsNull, noMediaTypeImage, noMediaTypeIndex} {
		f.Add("", []byte(fixture(body)))
	}
	f.Add(MediaTypeOCIManifest, []byte(fixture(noMediaTypeImage)))
	f.Add(MediaTypeDockerManifestList, []byte(fixture(noMediaTypeIndex)))
	f.Add("application/json", []byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Add(MediaTypeOCIManifest, []byte(`{"schemaVersion":1}`))
	f.Add("", []byte(`null`))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		m, err := ParseManifest(contentType, body)
		if err != nil {
			if !errors.Is(err, ErrManifestInvalid) {
				t.Fatalf("got error %v, want it to wrap ErrManifestInvalid", err)
			}
			return
		}
		switch m.MediaType {
		case MediaTypeOCIManifest, MediaTypeDockerManifest:
			if m.IsIndex() || m.Config == nil || m.Manifests != nil {
				t.Fatalf("image manifest %+v: got IsIndex=%v, config %v, %d children; want false, set, none", m, m.IsIndex(), m.Config, len(m.Manifests))
			}
		case MediaTypeOCIIndex, MediaTypeDockerManifestList:
			if !m.IsIndex() || m.Config != nil || m.Layers != nil {
				t.Fatalf("index %+v: got IsIndex=%v, config %v, %d layers; want true, nil, none", m, m.IsIndex(), m.Config, len(m.Layers))
			}
		default:
			t.Fatalf("got media type %q, want one of the four accepted", m.MediaType)
		}
		all := append(m.Blobs(), m.Manifests...)
		if m.Subject != nil {
			all = append(all, *m.Subject)
		}
		seen := map[string]bool{}
		for _, d := range m.Blobs() {
			if seen[d.Digest.String()] {
				t.Errorf("Blobs() got %s twice, want each digest once", d.Digest)
			}
			seen[d.Digest.String()] = true
		}
		for _, d := range all {
			if _, err := ParseDigest(d.Digest.String()); err != nil {
				t.Errorf("got descriptor digest %q that does not validate: %v", d.Digest, err)
			}
			if d.Size < 0 || d.MediaType == "" {
				t.Errorf("got descriptor %+v, want size >= 0 and a media type", d)
			}
		}
	})
}

func FuzzValidateRepoName(f *testing.F) {
	for _, s := range []string{"library/alpine", "a", "a/b/c", "a..b", "a__b", "a___b", "a--b", "A/b", "a//b", "/a", "a/", "a.-b", "ns/repo.name_x-y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateRepoName(name)
		want := nameRE.MatchString(name) && len(name) <= 255
		if got := err == nil; got != want {
			t.Fatalf("ValidateRepoName(%q) = %v: got valid=%v, want %v", name, err, got, want)
		}
		if err != nil && !errors.Is(err, ErrNameInvalid) {
			t.Fatalf("got %v, want it to wrap ErrNameInvalid", err)
		}
		if err == nil {
			ns, rest := SplitRepo(name)
			if ns == "" || (rest != "" && ns+"/"+rest != name) || (rest == "" && ns != name) {
				t.Fatalf("SplitRepo(%q) = (%q, %q), want the first component and the rest", name, ns, rest)
			}
		}
	})
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"latest", "v1.2.3", "_x", ".x", "", "sha256:" + hex64, "sha512:" + hex128, "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:" + hex64[:5], "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		wantTag, wantDigest := tagRE.MatchString(s), digestRE.MatchString(s)
		if err != nil {
			if wantTag || wantDigest {
				t.Fatalf("ParseReference(%q) = %v, want it accepted", s, err)
			}
			if !errors.Is(err, ErrTagInvalid) && !errors.Is(err, ErrDigestInvalid) {
				t.Fatalf("got %v, want it to wrap ErrTagInvalid or ErrDigestInvalid", err)
			}
			return
		}
		if (r.Tag == "") == (r.Digest == "") {
			t.Fatalf("ParseReference(%q) = %+v, want exactly one of Tag and Digest set", s, r)
		}
		if r.Tag != "" && !wantTag || r.Digest != "" && !wantDigest {
			t.Fatalf("ParseReference(%q) = %+v, want it rejected by the grammar", s, r)
		}
		if got := r.String(); got != s {
			t.Fatalf("String() got %q, want %q", got, s)
		}
	})
}

// FuzzAttachmentSubject checks AttachmentSubject against attachmentRE, and
// that AttachmentTags of the subject it finds lists the tag.
func FuzzAttachmentSubject(f *testing.F) {
	for _, s := range []string{"sha256-" + hex64 + ".sig", "sha512-" + hex128, "sha256-abc", "sha256-" + hex64 + ".foo"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		d, ok := AttachmentSubject(tag)
		if want := attachmentRE.MatchString(tag); ok != want {
			t.Fatalf("AttachmentSubject(%q): got %v, grammar says %v", tag, ok, want)
		}
		if !ok {
			return
		}
		if !digestRE.MatchString(d.String()) {
			t.Fatalf("AttachmentSubject(%q) = %q, not a digest", tag, d)
		}
		for _, name := range AttachmentTags(d) {
			if name == tag {
				return
			}
		}
		t.Fatalf("AttachmentSubject(%q) = %s, whose attachment tags %q do not include it", tag, d, AttachmentTags(d))
	})
}
