package auth

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth/berth/internal/oci"
)

// bcryptCost is the hash cost of passwords and robot secrets: about 50 ms
// on the machines berth is tested on, a brake on guessing that a login
// pays once (verifications are cached, and tokens carry the result).
const bcryptCost = 10

// Password bounds. bcrypt reads at most 72 bytes; a longer password would
// be silently truncated, so it is refused instead.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 72
)

// hashSecret returns the bcrypt hash of secret.
func hashSecret(secret string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(secret), bcryptCost)
	if err != nil {
		return "", fmt.Errorf("hashing secret: %w", err)
	}
	return string(h), nil
}

// dummyHash is compared against when the account does not exist, so that
// an unknown name costs what a wrong password costs.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("berth: no such account"), bcryptCost)

// secretMatches compares secret with hash in constant time (bcrypt's).
func secretMatches(hash, secret string) bool {
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(secret))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret)) == nil
}

// checkPassword refuses a password bcrypt cannot hash whole, or one too
// short to resist guessing.
func checkPassword(p string) error {
	switch {
	case len(p) < MinPasswordLength:
		return fmt.Errorf("password is %d bytes; at least %d are needed: %w", len(p), MinPasswordLength, ErrInvalid)
	case len(p) > MaxPasswordLength:
		return fmt.Errorf("password is %d bytes; at most %d are hashed: %w", len(p), MaxPasswordLength, ErrInvalid)
	}
	return nil
}

// newSecret is a robot secret: 32 random bytes, base64url without padding
// (43 characters, 256 bits).
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ValidateUserName checks a user name: one OCI path component, so that
// it also names the namespace the user owns.
func ValidateUserName(name string) error {
	if strings.Contains(name, "/") || oci.ValidateRepoName(name) != nil {
		return fmt.Errorf("user name %q: want lowercase letters, digits and single '.', '_' or '-' between them (the grammar of a namespace): %w", name, ErrInvalid)
	}
	return nil
}

// SplitRobotName splits "namespace+name" and validates both parts.
func SplitRobotName(full string) (namespace, name string, err error) {
	ns, n, ok := strings.Cut(full, "+")
	if !ok || ValidateUserName(ns) != nil || ValidateUserName(n) != nil {
		return "", "", fmt.Errorf("robot name %q: want NAMESPACE+NAME, each lowercase letters, digits and single '.', '_' or '-' between them: %w", full, ErrInvalid)
	}
	return ns, n, nil
}
