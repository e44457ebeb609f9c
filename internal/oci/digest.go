package oci

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// supportedAlgorithms are the digest algorithms berth stores and verifies:
// those the OCI image spec registers for use (blob.NewHash computes them).
// go-digest also knows sha384, which berth refuses as unsupported.
var supportedAlgorithms = map[digest.Algorithm]bool{digest.SHA256: true, digest.SHA512: true}

// unsupportedAlgorithmError is parseDigest's error for a well-formed digest
// whose algorithm berth does not accept.
type unsupportedAlgorithmError struct{ alg string }

func (e *unsupportedAlgorithmError) Error() string {
	return fmt.Sprintf("algorithm %q is not supported (only sha256 and sha512 are accepted)", e.alg)
}

// DigestError is ParseDigest's error: the digest as given, and what is
// wrong with it. It wraps ErrDigestInvalid, and also ErrUnsupported for a
// well-formed digest of an algorithm berth does not accept.
type DigestError struct {
	Digest string
	// Reason says what is wrong ("wrong length for sha256 (3 hex
	// characters, want 64)").
	Reason      string
	unsupported bool
}

func (e *DigestError) Error() string { return fmt.Sprintf("digest %q: %s", e.Digest, e.Reason) }

// Unwrap gives the sentinels e wraps.
func (e *DigestError) Unwrap() []error {
	if e.unsupported {
		return []error{ErrUnsupported, ErrDigestInvalid}
	}
	return []error{ErrDigestInvalid}
}

// ParseDigest parses a digest "algorithm:encoded" with go-digest's grammar.
// Only sha256 (64 lowercase hex characters) and sha512 (128) are accepted.
// Its error is a *DigestError: a malformed digest wraps ErrDigestInvalid;
// a well-formed digest with another algorithm wraps both ErrUnsupported and
// ErrDigestInvalid, so callers can answer UNSUPPORTED or DIGEST_INVALID as
// the endpoint requires.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := parseDigest(s)
	if err != nil {
		var unsupported *unsupportedAlgorithmError
		return "", &DigestError{Digest: s, Reason: err.Error(), unsupported: errors.As(err, &unsupported)}
	}
	return d, nil
}

// parseDigest is ParseDigest with bare errors, for callers that wrap them
// in their own sentinel. The grammar is go-digest's (DigestRegexpAnchored,
// Algorithm.Validate); what this adds is berth's choice of algorithms and
// an error that points at the fault.
func parseDigest(s string) (digest.Digest, error) {
	alg, enc, ok := strings.Cut(s, ":")
	if !ok {
		return "", errors.New("missing ':' between algorithm and encoded part")
	}
	a := digest.Algorithm(alg)
	if !supportedAlgorithms[a] {
		switch {
		case alg == "":
			return "", errors.New("algorithm is empty")
		case enc == "":
			return "", errors.New("encoded part is empty")
		case !digest.DigestRegexpAnchored.MatchString(s):
			return "", fmt.Errorf("not a digest: want algorithm:encoded, the algorithm of a-z and 0-9 joined by single '+', '.', '_' or '-', the encoded part of letters, digits, '=', '_' and '-'")
		}
		return "", &unsupportedAlgorithmError{alg: alg}
	}
	err := a.Validate(enc)
	switch {
	case err == nil:
		return digest.Digest(s), nil
	case errors.Is(err, digest.ErrDigestInvalidLength):
		return "", fmt.Errorf("wrong length for %s (%d hex characters, want %d)", alg, len(enc), 2*a.Size())
	}
	// The length is right, so some character is not lowercase hex.
	for i, r := range enc {
		switch {
		case '0' <= r && r <= '9', 'a' <= r && r <= 'f':
		case 'A' <= r && r <= 'F':
			return "", fmt.Errorf("uppercase hex %q at offset %d (must be lowercase)", r, i)
		default:
			return "", fmt.Errorf("character %q at offset %d is not hex", r, i)
		}
	}
	return "", fmt.Errorf("%s: %w", alg, err)
}
