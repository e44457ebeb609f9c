package config

import "fmt"

// MaxS3Parts is S3's limit on parts per multipart upload: an object on S3
// is at most MaxS3Parts × storage.s3.part_size bytes.
const MaxS3Parts = 10_000

// Limits bound what clients may open and send (docs/design/limits.md). A
// zero field is unlimited.
type Limits struct {
	// UploadSessions caps the upload sessions open in the whole registry
	// (active within gc.upload_expiry). Enforced without a registry-wide
	// lock: concurrent POSTs may overshoot it by at most their number.
	UploadSessions int `yaml:"upload_sessions"`
	// UploadSessionsPerRepository caps the sessions open in one
	// repository, exactly.
	UploadSessionsPerRepository int `yaml:"upload_sessions_per_repository"`
	// BlobSize caps the size of one uploaded blob.
	BlobSize Size `yaml:"blob_size"`
}

// DefaultLimits are the limits of Default(): well above what pushes need
// (a client opens a handful of sessions at a time; ECR Public caps a layer
// at 10,000 MiB), so that they only stop runaway or abusive clients.
func DefaultLimits() Limits {
	return Limits{
		UploadSessions:              100_000,
		UploadSessionsPerRepository: 1_000,
		BlobSize:                    10 * GiB,
	}
}

// validate reports the problems of the limits section, each prefixed with
// its YAML key; storage is needed to compare blob_size with what S3 holds.
func (l Limits) validate(s Storage) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if l.UploadSessions < 0 {
		bad("limits.upload_sessions", "must not be negative (0 is unlimited), got %d", l.UploadSessions)
	}
	if l.UploadSessionsPerRepository < 0 {
		bad("limits.upload_sessions_per_repository", "must not be negative (0 is unlimited), got %d", l.UploadSessionsPerRepository)
	}
	if l.BlobSize < 0 {
		bad("limits.blob_size", "must not be negative (0 is unlimited), got %d", l.BlobSize)
	}
	// An invalid part size is reported by the storage section alone.
	if s.Backend == StorageS3 && s.S3.PartSize >= MinS3PartSize && s.S3.PartSize <= MaxS3PartSize {
		if most := s.S3.PartSize * MaxS3Parts; l.BlobSize > most {
			bad("limits.blob_size", "%s is more than S3 can hold with storage.s3.part_size %s (%d parts: %s); raise the part size or lower the limit",
				l.BlobSize, s.S3.PartSize, MaxS3Parts, most)
		}
	}
	return errs
}
