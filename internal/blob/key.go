package blob

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Storage keys
//
// A key made by NewKey is "<algorithm>/<first two hex>/<hex>-<32 random hex>",
// e.g. "sha256/ab/ab12…ef-0f1e…9a". The random suffix makes every upload's key
// unique, so bytes being deleted for an old blob row are never the bytes of a
// re-upload of the same digest (DESIGN.md §4, "Bytes after rows"). The digest
// prefix fans objects out and lets sweep report which digest a leftover holds.
//
// Keys made before 2026-11-29 have the form "<algorithm>/<xx>/<hex>/<random>":
// on the filesystem every blob was a directory of its own, which cost a mkdir
// per commit and an rmdir per delete (docs/design/gc.md, "One file per blob").
// Such keys stay valid where rows and tombstones record them, and KeyDigest
// parses both forms.

const (
	maxKeyLen      = 1024
	maxUploadIDLen = 256
	randomHexLen   = 32 // 16 random bytes
)

// NewKey returns a fresh storage key for an upload of d, unique per call.
// d must be a valid sha256 or sha512 digest (the API validates digests before
// an upload is committed); for any other d the key is still unique and valid
// as a key, "invalid/<random>", but KeyDigest rejects it.
func NewKey(d digest.Digest) string {
	var b [randomHexLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	suffix := hex.EncodeToString(b[:])
	if checkDigest(d) != nil {
		return "invalid/" + suffix
	}
	enc := d.Encoded()
	return string(d.Algorithm()) + "/" + enc[:2] + "/" + enc + "-" + suffix
}

// KeyDigest parses the digest back out of a key made by NewKey, in its
// current form or the older one with a directory per digest. It returns
// ErrInvalidKey for any other key.
func KeyDigest(key string) (digest.Digest, error) {
	parts := strings.Split(key, "/")
	switch {
	case len(parts) == 3: // <alg>/<xx>/<hex>-<random>
		enc, random, ok := strings.Cut(parts[2], "-")
		if !ok {
			return "", fmt.Errorf("parsing key %q: %w", key, ErrInvalidKey)
		}
		parts = []string{parts[0], parts[1], enc, random}
	case len(parts) != 4: // <alg>/<xx>/<hex>/<random>
		return "", fmt.Errorf("parsing key %q: %w", key, ErrInvalidKey)
	}
	if parts[0] == "" || parts[2] == "" {
		return "", fmt.Errorf("parsing key %q: %w", key, ErrInvalidKey)
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
	if err := checkDigest(d); err != nil {
		return "", fmt.Errorf("parsing key %q: %w", key, ErrInvalidKey)
	}
	if parts[1] != parts[2][:2] || !isLowerHex(parts[3], randomHexLen) {
		return "", fmt.Errorf("parsing key %q: %w", key, ErrInvalidKey)
	}
	return d, nil
}

// ValidKey reports whether key is acceptable to every backend: non-empty,
// relative, "/"-separated segments of [A-Za-z0-9._-] that are neither empty
// nor start with "." (so no "." or "..", and dot-names stay free for a
// backend's temporary files). It returns an error wrapping ErrInvalidKey.
func ValidKey(key string) error {
	if key == "" || len(key) > maxKeyLen {
		return fmt.Errorf("key %q: %w", key, ErrInvalidKey)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg[0] == '.' {
			return fmt.Errorf("key %q: %w", key, ErrInvalidKey)
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
				return fmt.Errorf("key %q: %w", key, ErrInvalidKey)
			}
		}
	}
	return nil
}

// ValidPrefix reports whether prefix can prefix a store's object names
// (blob/s3's Config.Prefix): "", or
// "/"-separated segments that blob.ValidKey accepts ([A-Za-z0-9._-], none
// empty or starting with "."), with or without a trailing "/", none named
// "blobs" or "uploads". The last rule keeps one store's objects out of
// another's: with prefixes "" and "blobs/team/" in one bucket, the first
// store would list the second's objects as its own, and sweep them.
// internal/config checks storage.s3.prefix with it and blob/s3 its
// Config, so the two agree.
func ValidPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	p := strings.TrimSuffix(prefix, "/")
	if ValidKey(p) != nil {
		return fmt.Errorf("prefix %q: want \"\" or \"/\"-separated segments of [A-Za-z0-9._-] (none empty or starting with \".\"), such as \"berth/\"", prefix)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "blobs" || seg == "uploads" {
			return fmt.Errorf("prefix %q: a segment named %q could lie inside another store's objects in the same bucket; choose another name", prefix, seg)
		}
	}
	return nil
}

// ValidUploadID reports whether id matches [A-Za-z0-9-]+ (at most 256 bytes).
// It returns an error wrapping ErrInvalidUploadID.
func ValidUploadID(id string) error {
	if id == "" || len(id) > maxUploadIDLen {
		return fmt.Errorf("upload id %q: %w", id, ErrInvalidUploadID)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isAlnum(c) && c != '-' {
			return fmt.Errorf("upload id %q: %w", id, ErrInvalidUploadID)
		}
	}
	return nil
}

// NewHash returns a hash for d's algorithm, for backends that verify a
// digest while streaming. Only sha256 and sha512 are supported (the OCI image
// spec's registered algorithms); anything else, or a malformed d, is
// ErrUnsupportedDigest.
func NewHash(d digest.Digest) (hash.Hash, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	if d.Algorithm() == digest.SHA512 {
		return sha512.New(), nil
	}
	return sha256.New(), nil
}

func checkDigest(d digest.Digest) error {
	// Validate first: go-digest's Algorithm panics on a digest without ":".
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w: %w", d, ErrUnsupportedDigest, err)
	}
	if alg := d.Algorithm(); alg != digest.SHA256 && alg != digest.SHA512 {
		return fmt.Errorf("digest %q: %w", d, ErrUnsupportedDigest)
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
