package oci

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// unsupportedAlgorithmError is parseDigest's error for a well-formed digest
// whose algorithm berth does not accept.
type unsupportedAlgorithmError struct{ alg string }

func (e *unsupportedAlgorithmError) Error() string {
	return fmt.Sprintf("algorithm %q is not supported (only sha256 and sha512 are accepted)", e.alg)
}

// ParseDigest parses a digest "algorithm:encoded". Only sha256 (64 lowercase
// hex characters) and sha512 (128) are accepted. A malformed digest wraps
// ErrDigestInvalid; a well-formed digest with another algorithm wraps both
// ErrUnsupported and ErrDigestInvalid, so callers can answer UNSUPPORTED or
// DIGEST_INVALID as the endpoint requires.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := parseDigest(s)
	var unsupported *unsupportedAlgorithmError
	switch {
	case errors.As(err, &unsupported):
		return "", fmt.Errorf("digest %q: %s: %w (%w)", s, err, ErrUnsupported, ErrDigestInvalid)
	case err != nil:
		return "", fmt.Errorf("digest %q: %s: %w", s, err, ErrDigestInvalid)
	}
	return d, nil
}

// parseDigest is ParseDigest with bare errors, for callers that wrap them
// in their own sentinel.
func parseDigest(s string) (digest.Digest, error) {
	alg, enc, ok := strings.Cut(s, ":")
	if !ok {
		return "", errors.New("missing ':' between algorithm and encoded part")
	}
	var want int
	switch alg {
	case "sha256":
		want = 64
	case "sha512":
		want = 128
	default:
		// The OCI grammar: algorithm-component (separator component)*,
		// component [a-z0-9]+, separator [+._-]; encoded [a-zA-Z0-9=_-]+.
		if err := checkAlgorithm(alg); err != nil {
			return "", err
		}
		if enc == "" {
			return "", errors.New("encoded part is empty")
		}
		for i := 0; i < len(enc); i++ {
			if b := enc[i]; !isAlnum(b) && b != '=' && b != '_' && b != '-' {
				return "", fmt.Errorf("character %q in encoded part is not allowed", rune(b))
			}
		}
		return "", &unsupportedAlgorithmError{alg: alg}
	}
	if len(enc) != want {
		return "", fmt.Errorf("%s encoded part must be %d hex characters, got %d", alg, want, len(enc))
	}
	for i := 0; i < len(enc); i++ {
		b := enc[i]
		switch {
		case (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f'):
		case b >= 'A' && b <= 'F':
			return "", fmt.Errorf("uppercase hex %q at offset %d (must be lowercase)", b, i)
		default:
			return "", fmt.Errorf("character %q at offset %d is not hex", rune(b), i)
		}
	}
	return digest.Digest(s), nil
}

func checkAlgorithm(alg string) error {
	if alg == "" {
		return errors.New("algorithm is empty")
	}
	prevSep := true // a separator may not start the algorithm
	for i := 0; i < len(alg); i++ {
		b := alg[i]
		switch {
		case isLowerAlnum(b):
			prevSep = false
		case b == '+' || b == '.' || b == '_' || b == '-':
			if prevSep {
				return fmt.Errorf("algorithm %q has a misplaced separator %q", alg, b)
			}
			prevSep = true
		default:
			return fmt.Errorf("algorithm %q: character %q is not allowed (want a-z, 0-9, '+', '.', '_', '-')", alg, rune(b))
		}
	}
	if prevSep {
		return fmt.Errorf("algorithm %q ends with a separator", alg)
	}
	return nil
}
