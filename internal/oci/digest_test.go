package oci

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

var (
	hex64  = strings.Repeat("0123456789abcdef", 4)
	hex128 = strings.Repeat("0123456789abcdef", 8)
)

func TestParseDigest(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		wantErr     error // nil means valid
		unsupported bool
		wantMsg     string
	}{
		{"sha256", "sha256:" + hex64, nil, false, ""},
		{"sha512", "sha512:" + hex128, nil, false, ""},
		{"uppercase hex", "sha256:" + strings.ToUpper(hex64), ErrDigestInvalid, false, "uppercase"},
		{"sha256 too short", "sha256:" + hex64[:63], ErrDigestInvalid, false, "wrong length for sha256 (63 hex characters, want 64)"},
		{"sha256 too long", "sha256:" + hex64 + "0", ErrDigestInvalid, false, "(65 hex characters, want 64)"},
		{"sha512 with sha256 length", "sha512:" + hex64, ErrDigestInvalid, false, "wrong length for sha512 (64 hex characters, want 128)"},
		{"not hex", "sha256:" + strings.Repeat("g", 64), ErrDigestInvalid, false, "not hex"},
		{"missing colon", "sha256" + hex64, ErrDigestInvalid, false, "missing ':'"},
		{"empty", "", ErrDigestInvalid, false, "missing ':'"},
		{"empty algorithm", ":" + hex64, ErrDigestInvalid, false, "algorithm is empty"},
		{"empty encoded", "sha256:", ErrDigestInvalid, false, "(0 hex characters, want 64)"},
		{"short", "sha256:abc", ErrDigestInvalid, false, "wrong length for sha256 (3 hex characters, want 64)"},
		{"non-ASCII", "sha256:" + hex64[:62] + "é", ErrDigestInvalid, false, "character 'é' at offset 62 is not hex"},
		{"sha384 (go-digest knows it, berth does not)", "sha384:" + strings.Repeat("0", 96), ErrUnsupported, true, `algorithm "sha384"`},
		{"uppercase algorithm", "SHA256:" + hex64, ErrDigestInvalid, false, "not a digest"},
		{"md5", "md5:d41d8cd98f00b204e9800998ecf8427e", ErrUnsupported, true, `algorithm "md5"`},
		{"blake3", "blake3:" + hex64, ErrUnsupported, true, "only sha256 and sha512"},
		{"compound algorithm", "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", ErrUnsupported, true, ""},
		{"md5 empty encoded", "md5:", ErrDigestInvalid, false, "encoded part is empty"},
		{"algorithm trailing separator", "md5+:abc", ErrDigestInvalid, false, "not a digest"},
		{"bad encoded character", "md5:a/b", ErrDigestInvalid, false, "not a digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDigest(tt.in)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ParseDigest(%q) = %v, want nil", tt.in, err)
				}
				if d.String() != tt.in {
					t.Errorf("got %q, want %q", d, tt.in)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseDigest(%q) = %v, want it to wrap %v", tt.in, err, tt.wantErr)
			}
			if !errors.Is(err, ErrDigestInvalid) {
				t.Errorf("got %v, want it to wrap ErrDigestInvalid too", err)
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

func TestParseReference(t *testing.T) {
	tests := []struct {
		in      string
		want    Reference
		wantErr error
	}{
		{"latest", Reference{Tag: "latest"}, nil},
		{"v1.0", Reference{Tag: "v1.0"}, nil},
		{"sha256:" + hex64, Reference{Digest: digest.Digest("sha256:" + hex64)}, nil},
		{"sha512:" + hex128, Reference{Digest: digest.Digest("sha512:" + hex128)}, nil},
		{"", Reference{}, ErrTagInvalid},
		{".x", Reference{}, ErrTagInvalid},
		{"sha256:" + hex64[:10], Reference{}, ErrDigestInvalid},
		{"md5:d41d8cd98f00b204e9800998ecf8427e", Reference{}, ErrUnsupported},
		{"a:b", Reference{}, ErrDigestInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseReference(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseReference(%q) error = %v, want %v", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseReference(%q) = %v, want nil", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("String() got %q, want %q", s, tt.in)
			}
		})
	}
}
