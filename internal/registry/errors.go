package registry

import (
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/policy"
)

// Sentinel errors. Every error a use case returns wraps one of them (or is an
// internal failure of a backend), with a message saying precisely what was
// wrong; the API maps them to OCI error codes with errors.Is.
//
// Where the oci package already has the sentinel (a bad name, tag, digest or
// manifest), the registry uses the same value, so an error from oci needs no
// second wrapping.
var (
	ErrNameInvalid     = oci.ErrNameInvalid
	ErrTagInvalid      = oci.ErrTagInvalid
	ErrDigestInvalid   = oci.ErrDigestInvalid
	ErrManifestInvalid = oci.ErrManifestInvalid
	ErrUnsupported     = oci.ErrUnsupported

	// ErrDigestMismatch: the bytes sent do not hash to the digest the
	// client named (an upload's ?digest=, a manifest PUT by digest). It
	// comes with ErrDigestInvalid, which a malformed digest wraps alone.
	ErrDigestMismatch = errors.New("provided digest did not match uploaded content")

	ErrNameUnknown     = errors.New("repository name not known to registry")
	ErrManifestUnknown = errors.New("manifest unknown")
	ErrTagUnknown      = errors.New("tag unknown")
	ErrBlobUnknown     = errors.New("blob unknown to registry")
	ErrUploadUnknown   = errors.New("blob upload unknown to registry")
	// ErrManifestBlobUnknown is wrapped by *ManifestBlobUnknownError, which
	// says which blob.
	ErrManifestBlobUnknown = errors.New("manifest references a blob unknown to the repository")
	ErrSizeInvalid         = errors.New("provided length did not match content length")
	ErrUploadInvalid       = errors.New("blob upload invalid")
	// ErrRangeInvalid is a chunk that does not start where the upload ends.
	ErrRangeInvalid = errors.New("requested range not satisfiable")
	ErrDenied       = errors.New("requested access to the resource is denied")
	ErrTooLarge     = errors.New("content too large")
	// ErrTooManyUploads: opening one more upload session would pass a cap
	// of Options.Limits; the client may retry once sessions close.
	ErrTooManyUploads = errors.New("too many open upload sessions")
	// ErrNamespaceUnknown: no namespace of that name exists (none was
	// pushed to, and no operator created it).
	ErrNamespaceUnknown = errors.New("namespace not known to registry")
	// ErrPolicyUnknown: no retention policy of that name at that scope.
	ErrPolicyUnknown = errors.New("policy not known to registry")
	// ErrInvalidArgument is a management request that makes no sense (a
	// negative retention, a restore with neither digest nor time).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnavailable: the byte store cannot serve the request now (S3
	// unreachable, timing out or throttling); the client may retry. The
	// registry passes the store's errors through, so this is the store's
	// sentinel.
	ErrUnavailable = blob.ErrUnavailable
	// ErrImmutable: an immutable rule refuses the write (a move, delete or
	// expiry of a tag it covers). It comes as a *policy.ImmutableError,
	// which names the tag and the rule; it is the policy package's
	// sentinel, which a refused purge wraps too.
	ErrImmutable = policy.ErrImmutable
	// ErrScopeTooLarge: a usage split was asked of a scope holding more
	// manifests than Options.SplitLimit.
	ErrScopeTooLarge = errors.New("scope too large to classify")
	// ErrQuotaUnknown: no quota applies to the namespace (neither its own
	// nor the registry default), or none to delete.
	ErrQuotaUnknown = errors.New("quota unknown")
)

// ManifestBlobUnknownError names the blob a manifest PUT referenced that the
// repository does not have. It wraps ErrManifestBlobUnknown.
type ManifestBlobUnknownError struct {
	Digest digest.Digest
	Role   string // "config", "layer" or "index entry"
}

func (e *ManifestBlobUnknownError) Error() string {
	return fmt.Sprintf("manifest %s %s is not a blob of this repository: %v", e.Role, e.Digest, ErrManifestBlobUnknown)
}

func (e *ManifestBlobUnknownError) Unwrap() error { return ErrManifestBlobUnknown }

// RangeError is ErrRangeInvalid with the upload's current size, so the API
// can tell the client where to resume.
type RangeError struct {
	Size   int64 // bytes the upload holds
	Offset int64 // where the client tried to write
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("chunk starts at offset %d but the upload holds %d bytes: %v", e.Offset, e.Size, ErrRangeInvalid)
}

func (e *RangeError) Unwrap() error { return ErrRangeInvalid }
