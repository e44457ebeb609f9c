package blob_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob"
)

func TestNewKeyRoundTrip(t *testing.T) {
	for _, d := range []digest.Digest{
		digest.SHA256.FromString("hello"),
		digest.SHA512.FromString("hello"),
	} {
		t.Run(string(d.Algorithm()), func(t *testing.T) {
			k1, k2 := blob.NewKey(d), blob.NewKey(d)
			if k1 == k2 {
				t.Fatalf("NewKey twice: got the same key %q, want distinct keys", k1)
			}
			for _, k := range []string{k1, k2} {
				if err := blob.ValidKey(k); err != nil {
					t.Errorf("ValidKey(%q): got %v, want nil", k, err)
				}
				if !strings.HasPrefix(k, string(d.Algorithm())+"/"+d.Encoded()[:2]+"/"+d.Encoded()+"-") || strings.Count(k, "/") != 2 {
					t.Errorf("NewKey(%s): got %q, want alg/xx/hex-random", d, k)
				}
				got, err := blob.KeyDigest(k)
				if err != nil || got != d {
					t.Errorf("KeyDigest(%q): got %q, %v, want %q, nil", k, got, err, d)
				}
			}
		})
	}
}

func TestNewKeyInvalidDigest(t *testing.T) {
	k := blob.NewKey("sha256:nothex")
	if err := blob.ValidKey(k); err != nil {
		t.Fatalf("ValidKey(%q): got %v, want nil", k, err)
	}
	if _, err := blob.KeyDigest(k); !errors.Is(err, blob.ErrInvalidKey) {
		t.Errorf("KeyDigest(%q): got %v, want ErrInvalidKey", k, err)
	}
}

// TestKeyDigestBothForms: keys recorded before the flat layout
// (<alg>/<xx>/<hex>/<random>, a directory per blob) still name their digest,
// so sweep and usage verify can report what an old leftover holds.
func TestKeyDigestBothForms(t *testing.T) {
	for _, d := range []digest.Digest{digest.SHA256.FromString("old"), digest.SHA512.FromString("old")} {
		enc := d.Encoded()
		rnd := strings.Repeat("0f", randomHex/2)
		for _, key := range []string{
			string(d.Algorithm()) + "/" + enc[:2] + "/" + enc + "/" + rnd,
			string(d.Algorithm()) + "/" + enc[:2] + "/" + enc + "-" + rnd,
		} {
			if got, err := blob.KeyDigest(key); err != nil || got != d {
				t.Errorf("KeyDigest(%q): got %q, %v, want %q, nil", key, got, err, d)
			}
		}
	}
}

// randomHex is the length of a key's random suffix.
const randomHex = 32

func TestKeyDigestRejects(t *testing.T) {
	d := digest.SHA256.FromString("x")
	enc := d.Encoded()
	good := blob.NewKey(d)
	rnd := good[strings.LastIndex(good, "-")+1:]
	if len(rnd) != randomHex {
		t.Fatalf("NewKey(%s) = %q: random suffix %q, want %d hex", d, good, rnd, randomHex)
	}
	for _, key := range []string{
		"",
		enc,
		"sha256/" + enc[:2] + "/" + enc,       // no random suffix
		"sha256/" + enc[:2] + "/" + enc + "-", // empty random suffix
		"sha256/" + enc[:2] + "/" + enc + "-" + rnd + "-" + rnd, // two suffixes
		"sha256/" + enc[:2] + "/" + enc + "." + rnd,             // other separator
		"sha256/zz/" + enc + "-" + rnd,                          // wrong fan-out, new form
		"sha256/" + enc[:2] + "/" + enc[:10] + "-" + rnd,        // short hex, new form
		"sha256/" + enc[:2] + "/" + enc + "-" + rnd + "/extra",
		"sha256/zz/" + enc + "/" + rnd,                               // wrong fan-out
		"sha384/" + enc[:2] + "/" + enc + "/" + rnd,                  // unsupported algorithm
		"sha256/" + enc[:2] + "/" + enc[:10] + "/" + rnd,             // short hex
		"sha256/" + enc[:2] + "/" + enc + "/" + rnd[:10],             // short suffix
		"sha256/" + enc[:2] + "/" + strings.ToUpper(enc) + "/" + rnd, // upper-case hex
		"sha256/" + enc[:2] + "/" + enc + "/" + rnd + "/extra",
	} {
		if got, err := blob.KeyDigest(key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("KeyDigest(%q): got %q, %v, want ErrInvalidKey", key, got, err)
		}
	}
}

func TestValidKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"sha256/ab/abc/0123", true},
		{"A.b_c-d/e", true},
		{"", false},
		{"/abs", false},
		{"a/", false},
		{"a//b", false},
		{".", false},
		{"..", false},
		{"a/../b", false},
		{"../a", false},
		{"a/./b", false},
		{".hidden", false},
		{`a\b`, false},
		{"a b", false},
		{"a:b", false},
		{strings.Repeat("a", 2000), false},
	}
	for _, tt := range tests {
		err := blob.ValidKey(tt.key)
		if tt.ok && err != nil {
			t.Errorf("ValidKey(%q): got %v, want nil", tt.key, err)
		}
		if !tt.ok && !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("ValidKey(%q): got %v, want ErrInvalidKey", tt.key, err)
		}
	}
}

func TestValidUploadID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"abc-123-DEF", true},
		{"", false},
		{"a/b", false},
		{"..", false},
		{"a.b", false},
		{"a_b", false},
		{strings.Repeat("a", 300), false},
	}
	for _, tt := range tests {
		err := blob.ValidUploadID(tt.id)
		if tt.ok && err != nil {
			t.Errorf("ValidUploadID(%q): got %v, want nil", tt.id, err)
		}
		if !tt.ok && !errors.Is(err, blob.ErrInvalidUploadID) {
			t.Errorf("ValidUploadID(%q): got %v, want ErrInvalidUploadID", tt.id, err)
		}
	}
}

func TestNewHash(t *testing.T) {
	tests := []struct {
		d    digest.Digest
		size int
		err  error
	}{
		{digest.SHA256.FromString("x"), 32, nil},
		{digest.SHA512.FromString("x"), 64, nil},
		{digest.SHA384.FromString("x"), 0, blob.ErrUnsupportedDigest},
		{"sha256:short", 0, blob.ErrUnsupportedDigest},
		{"", 0, blob.ErrUnsupportedDigest},
	}
	for _, tt := range tests {
		h, err := blob.NewHash(tt.d)
		if !errors.Is(err, tt.err) {
			t.Errorf("NewHash(%q): got error %v, want %v", tt.d, err, tt.err)
			continue
		}
		if err == nil && h.Size() != tt.size {
			t.Errorf("NewHash(%q).Size(): got %d, want %d", tt.d, h.Size(), tt.size)
		}
	}
}
