// Package review is the collector's vocabulary, shared by the registry that
// records reviews and the collector that decides them (docs/design/gc.md,
// "Vocabulary"): what a review is about (Kind, and its object through the
// constructors and Parse of object.go), why it was recorded (Cause), and the
// windows that time its decision (Policy).
//
// It sits below meta, registry and gc and imports only the standard library
// and go-digest, so both sides of the contract name the same types instead
// of agreeing on strings. The event names both sides emit are in the sibling
// package internal/event: they are what berth tells the outside (webhooks,
// logs), not part of the queue, and the webhook side needs nothing else from
// here.
//
// The strings of Kind, of objects and of Cause are stored in the review
// table: they never change once released.
package review

import (
	_ "crypto/sha256" // go-digest validates only algorithms whose hash is linked
	_ "crypto/sha512"
)

// Kind is what a review is about; with its object it is the review's key.
// The deletions the collector reports are named by Kind too.
type Kind string

// Review kinds, as stored. The comment is the object's form (object.go).
const (
	KindTag          Kind = "tag"           // repoID@tagID (TagObject)
	KindManifest     Kind = "manifest"      // repoID@digest (RepoDigestObject)
	KindLink         Kind = "link"          // repoID@digest: the repository_blob row
	KindBlob         Kind = "blob"          // digest (BlobObject)
	KindLabel        Kind = "label"         // label id (LabelObject)
	KindUploadedBlob Kind = "uploaded_blob" // repoID@digest: the upload protection marker
	KindUpload       Kind = "upload"        // upload id (UploadObject)
	KindPurge        Kind = "purge"         // repository id, or "ns:" namespace id (PurgeObject)
	KindPolicy       Kind = "policy"        // "repoID@": evaluate the repository's retention policies (PolicyObject)
)

// KindRepository names what a purge deletes, in the collector's deletions,
// summaries and metrics. No review has this kind (a purge's is KindPurge),
// and Parse refuses it.
const KindRepository Kind = "repository"

// Kinds lists every review kind, in the order of the table in gc.md.
func Kinds() []Kind {
	return []Kind{KindTag, KindManifest, KindLink, KindBlob, KindLabel, KindUploadedBlob, KindUpload, KindPurge, KindPolicy}
}

// Cause is why a review was recorded: the write that removed a reason its
// object was alive, or started a window. Behaviour keys on it (the
// collector's collect_untagged check keeps a manifest only when its
// review's cause is CausePushed); the review's free-text reason is for
// people and logs. Stored in review.cause since migration 6; "" is a
// review recorded before causes were (only "pushed" was carried over).
type Cause string

// Causes, as stored.
const (
	// CausePushed: a manifest PUT started its untagged grace.
	CausePushed Cause = "pushed"
	// CauseUploaded: a blob upload commit or mount linked the blob and
	// started its upload protection.
	CauseUploaded Cause = "uploaded"
	// CauseUploadStarted, CauseUploadActive: an upload session opened or
	// received bytes, starting its idle expiry.
	CauseUploadStarted Cause = "upload_started"
	CauseUploadActive  Cause = "upload_active"
	// CauseTagEnded: a tag lifetime ended (moved, deleted, or its manifest
	// deleted by digest); its time-machine window started.
	CauseTagEnded Cause = "tag_ended"
	// CauseTagExpired: the expiry scan ended a tag whose expiry passed.
	CauseTagExpired Cause = "tag_expired"
	// CauseTagCollected: the collector deleted a tag row naming the manifest.
	CauseTagCollected Cause = "tag_collected"
	// CauseTagForgotten: an administrator deleted ended tag rows naming
	// the manifest out of the time machine (berth tag forget).
	CauseTagForgotten Cause = "tag_forgotten"
	// CauseWithdrawn: a DELETE by digest withdrew the manifest.
	CauseWithdrawn Cause = "withdrawn"
	// CauseParentDeleted: the collector deleted an index listing the manifest.
	CauseParentDeleted Cause = "parent_deleted"
	// CauseSubjectDeleted: the collector deleted the manifest's subject.
	CauseSubjectDeleted Cause = "subject_deleted"
	// CauseManifestDeleted: the collector deleted a manifest using the
	// link or the label.
	CauseManifestDeleted Cause = "manifest_deleted"
	// CauseUploadProtectionExpired: the blob's upload protection marker
	// was collected.
	CauseUploadProtectionExpired Cause = "upload_protection_expired"
	// CauseUnlinked: a link to the blob was deleted (collector, DELETE of
	// a blob, purge).
	CauseUnlinked Cause = "unlinked"
	// CausePurge: a purge marked the repository or namespace deleting.
	CausePurge Cause = "purge"
	// CauseTagPushed: a tag was created or moved in a repository whose
	// rules may prune it; its policies are evaluated now under a count
	// rule, when the tag first becomes prunable under age and pull rules.
	CauseTagPushed Cause = "tag_pushed"
	// CausePolicyChanged: a retention policy of the repository's scope was
	// created, changed or deleted.
	CausePolicyChanged Cause = "policy_changed"
	// CausePolicyDue: an evaluation found a tag that an age or pull rule
	// prunes at the review's time.
	CausePolicyDue Cause = "policy_due"
	// CauseTagPruned: a retention policy ended the tag (its time-machine
	// window started).
	CauseTagPruned Cause = "tag_pruned"
	// CauseSubjectCollected: the collector ended an attachment tag (a
	// signature, attestation or SBOM named after its subject's digest)
	// because it deleted the subject's manifest.
	CauseSubjectCollected Cause = "subject_collected"
)
