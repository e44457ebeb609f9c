// Package event names the events berth's registry and collector emit to
// in-process hooks and webhooks (DESIGN.md §4), once for both: a webhook
// filters on these names, so the two emitters and the configuration must
// spell them alike. It imports nothing of berth's, so it sits below both
// (and beside internal/review, the collector's queue vocabulary, which
// webhooks do not need).
package event

// Name is an event's name, as webhooks receive it in the envelope's "kind"
// and select it in their "events" list.
type Name string

// The registry's events: committed client changes.
const (
	ManifestPushed Name = "manifest.pushed"
	TagPushed      Name = "tag.pushed"
	TagDeleted     Name = "tag.deleted"
	TagRestored    Name = "tag.restored"
	BlobPushed     Name = "blob.pushed"
	BlobUnlinked   Name = "blob.unlinked"
	// QuotaWarning: a manifest PUT took its namespace past its quota's
	// warning threshold (docs/design/usage.md, "Quotas"); once per
	// crossing upwards.
	QuotaWarning Name = "quota.warning"
	// TagForgotten: an administrator deleted ended lifetimes of a tag out
	// of the time machine (berth tag forget); one event per manifest they
	// pointed at.
	TagForgotten Name = "tag.forgotten"
)

// ManifestDeleted is emitted by both: the registry when a DELETE by digest
// withdraws a manifest, the collector when it deletes one.
const ManifestDeleted Name = "manifest.deleted"

// The collector's events: its committed decisions. TagPruned is a tag
// lifetime a retention policy ended; its reason names the rule
// (docs/design/policies.md).
const (
	TagExpired   Name = "tag.expired"
	TagPruned    Name = "tag.pruned"
	TagCollected Name = "tag.collected"
	// TagSubjectCollected: the collector ended an attachment tag (a
	// signature, attestation or SBOM named after its subject's digest)
	// because it deleted the subject's manifest.
	TagSubjectCollected Name = "tag.subject_collected"
	BlobDeleted         Name = "blob.deleted"
	RepositoryPurged    Name = "repository.purged"
	// GCDeleted is any other deletion of the collector (link, label,
	// upload marker, upload session).
	GCDeleted Name = "gc.deleted"
)
