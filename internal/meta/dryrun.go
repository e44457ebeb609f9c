package meta

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// DryRunTx holds the reads a dry run makes to decide as a real run would
// without writing (internal/gc/dryrun.go): it keeps what it would have
// deleted in memory, and asks for the few edges that may have gone with it.
// Every list stops at limit.
type DryRunTx interface {
	// ManifestRefs is what DeleteManifests would return for keys, read
	// without deleting.
	ManifestRefs(ctx context.Context, keys []RepoDigest) (ManifestSetRefs, error)
	// LinkUsers lists the manifests of the repository that list the blob.
	LinkUsers(ctx context.Context, key RepoDigest, limit int) ([]digest.Digest, error)
	// BlobLinks lists the repositories that link the blob.
	BlobLinks(ctx context.Context, d digest.Digest, limit int) ([]int64, error)
	// LabelUsers lists the manifests that use the label.
	LabelUsers(ctx context.Context, id int64, limit int) ([]RepoDigest, error)
	// LiveTagsNamed reads the rows EndLiveTags would end: those of the
	// named tags live at now.
	LiveTagsNamed(ctx context.Context, tags []RepoTag, now time.Time) ([]Tag, error)
}
