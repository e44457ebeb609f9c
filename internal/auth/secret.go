package auth

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth/berth/internal/oci"
)

// DefaultHashCost is the bcrypt cost of passwords and robot secrets: about
// 50 ms on the machines berth is tested on, a brake on guessing that a
// login pays once (verifications are cached, and tokens carry the result).
const DefaultHashCost = 10

// hasher hashes and checks secrets at one bcrypt cost.
type hasher struct {
	cost      int
	dummyOnce sync.Once
	dummy     []byte
}

// hash returns the bcrypt hash of secret.
func (h *hasher) hash(secret string) (string, error) {
	b, err := bcrypt.GenerateFromPassword([]byte(secret), h.cost)
	if err != nil {
		return "", fmt.Errorf("hashing secret: %w", err)
	}
	return string(b), nil
}

// matches compares secret with hash in constant time (bcrypt's). An empty
// hash (no such account) is compared against a dummy hash of the same
// cost, so that an unknown name costs what a wrong password costs.
func (h *hasher) matches(hash, secret string) bool {
	if hash == "" {
		h.dummyOnce.Do(func() {
			h.dummy, _ = bcrypt.GenerateFromPassword([]byte("berth: no such account"), h.cost)
		})
		_ = bcrypt.CompareHashAndPassword(h.dummy, []byte(secret))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret)) == nil
}

// Password bounds. bcrypt reads at most 72 bytes; a longer password would
// be silently truncated, so it is refused instead.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 72
)

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
