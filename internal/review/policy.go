package review

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of the windows (DESIGN.md §3). The configuration's defaults are
// these.
const (
	// DefaultGrace protects untagged manifests and uploaded blobs.
	DefaultGrace = time.Hour
	// DefaultUploadExpiry is how long an idle upload session lives.
	DefaultUploadExpiry = 24 * time.Hour
	// DefaultTagRetention is the removed-tag window (the time machine) of
	// namespaces that set none.
	DefaultTagRetention = 14 * 24 * time.Hour
)

// Policy is what decides when an object becomes garbage. The registry
// (which records reviews at the end of each window and protects what the
// windows protect) and the collector (which decides them) must agree on it
// for safety, so internal/app builds one Policy from the configuration and
// gives the same value to both. Zero is zero: a zero window protects
// nothing; DefaultPolicy has the production values.
type Policy struct {
	// Grace protects untagged manifests and uploaded blobs after a push,
	// links after the manifest that used them is deleted, and blobs a
	// client read (roots 3 and 4 of DESIGN.md §3).
	Grace time.Duration
	// UploadExpiry is how long an idle upload session lives (root 5).
	UploadExpiry time.Duration
	// TagRetention is the removed-tag window of namespaces that set none
	// (root 2, the time machine).
	TagRetention time.Duration
	// CollectUntagged collects manifests pushed by digest and never
	// reached once their grace passed; false keeps them (for operators who
	// pin digests). It keys on the cause of the manifest's review
	// (CausePushed), never on its text.
	CollectUntagged bool
	// AttachmentsFollowSubject ends, when the collector deletes a manifest,
	// the live attachment tags of its digest in the same repository
	// (oci.AttachmentSubject: cosign's .sig, .att and .sbom, the referrers
	// tag schema's sha256-<hex>), which then enter the time machine like
	// any ended tag; false leaves them live.
	AttachmentsFollowSubject bool
}

// DefaultPolicy is the production policy of DESIGN.md: 1h grace, 24h
// upload expiry, 14 days of tag retention, untagged manifests collected,
// attachments following their subject.
func DefaultPolicy() Policy {
	return Policy{
		Grace:                    DefaultGrace,
		UploadExpiry:             DefaultUploadExpiry,
		TagRetention:             DefaultTagRetention,
		CollectUntagged:          true,
		AttachmentsFollowSubject: true,
	}
}

// Validate refuses negative windows, naming each.
func (p Policy) Validate() error {
	var errs []error
	for _, w := range []struct {
		name string
		d    time.Duration
	}{{"grace", p.Grace}, {"upload expiry", p.UploadExpiry}, {"tag retention", p.TagRetention}} {
		if w.d < 0 {
			errs = append(errs, fmt.Errorf("review policy: %s is %s; a window cannot be negative (0 is none)", w.name, w.d))
		}
	}
	return errors.Join(errs...)
}
