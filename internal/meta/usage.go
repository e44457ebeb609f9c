package meta

import (
	"context"
	"time"
)

// Usage is what a scope (a repository, a namespace, the registry) holds
// (docs/design/usage.md, "What a repository holds"): the bytes of its
// manifests plus those of the distinct blobs they reference, each blob
// counted once per scope.
type Usage struct {
	Bytes     int64
	Manifests int64
	Blobs     int64
}

// Add returns u plus v.
func (u Usage) Add(v Usage) Usage {
	return Usage{Bytes: u.Bytes + v.Bytes, Manifests: u.Manifests + v.Manifests, Blobs: u.Blobs + v.Blobs}
}

// NamespaceUsage is the usage of one namespace, for listings.
type NamespaceUsage struct {
	ID   int64
	Name string
	Usage
}

// UsageChange is what one transaction changed in a namespace's usage,
// reported by ApplyUsage: Added (negative when bytes went) and, when the
// namespace gained bytes (the only change a quota refuses), the usage After
// it, read from the namespace's counter row, which the transaction holds
// locked until it ends, and the Quota in force on the namespace (its own,
// else the registry default, as EffectiveQuota: Namespace, Limit and
// WarnPercent only; nil when none is). Within is set instead of After and
// Quota when the statement that applied the gain checked it against the
// quota in force: the usage after it is within the limit and crosses no
// warning threshold upwards (there may be no quota at all).
type UsageChange struct {
	NamespaceID int64
	Added       Usage
	After       Usage
	Quota       *Quota
	Within      bool
}

// Quota caps what a namespace may hold (docs/design/usage.md, "Quotas").
// Namespace "" is the registry's default, which applies to every namespace
// without a quota of its own. Namespaces are names, like grants and
// policies: a quota may precede the namespace's first push.
type Quota struct {
	Namespace string
	// Limit is the reject limit in bytes: a manifest PUT that would take
	// the namespace past it is refused; exactly at it is allowed.
	Limit int64
	// WarnPercent, when set, is the warning threshold, a percentage of
	// Limit (1–100): crossing it upwards emits quota.warning.
	WarnPercent *int
	CreatedAt   time.Time
	CreatedBy   Actor
}

// WarnBytes is the warning threshold in bytes, or -1 when there is none.
func (q Quota) WarnBytes() int64 {
	if q.WarnPercent == nil {
		return -1
	}
	p := int64(*q.WarnPercent)
	return q.Limit/100*p + q.Limit%100*p/100 // Limit*p/100 without overflow
}

// UsageCounter names a kind of counter VerifyUsage checks.
type UsageCounter string

// The counters of docs/design/usage.md, "Counters".
const (
	// CounterRepositoryBlob is the number of manifest_blob edges of a
	// repository naming a blob (Key "repository@digest").
	CounterRepositoryBlob UsageCounter = "repository_blob"
	// CounterNamespaceBlob is the number of repositories of a namespace
	// holding a blob (Key "namespace@digest").
	CounterNamespaceBlob UsageCounter = "namespace_blob"
	// CounterBlob is the number of namespaces holding a blob (Key the
	// digest).
	CounterBlob UsageCounter = "blob"
	// CounterRepository, CounterNamespace and CounterRegistry are the
	// usage of a repository (Key its name, or "#id" when the repository
	// is gone), of a namespace (likewise) and of the registry (Key "").
	CounterRepository UsageCounter = "repository"
	CounterNamespace  UsageCounter = "namespace"
	CounterRegistry   UsageCounter = "registry"
)

// UsageDiff is one counter whose stored value (Got) differs from the value
// recomputed from the rows (Want). For the per-blob counters only Bytes of
// Got and Want is set, to the count.
type UsageDiff struct {
	Counter UsageCounter
	Key     string
	Got     Usage
	Want    Usage
}

// UsageTx reads and maintains the usage counters and the quotas
// (docs/design/usage.md). The counters change in the transactions that
// change the rows they count: PutManifest, DeleteManifest and the
// collector's DeleteManifests record what they add and remove, and the
// counter rows are written last, when the transaction calls ApplyUsage or,
// if it did not, just before it commits, in one lock order (usage.md, "Hot
// rows and lock order").
type UsageTx interface {
	// ApplyUsage writes the counter changes of the transaction's writes so
	// far and reports the change to each namespace whose usage changed,
	// by namespace id; for one that gained bytes, with its usage after
	// and its quota. Its counter rows stay locked until the transaction
	// ends: a manifest PUT calls it last and compares After with the
	// quota.
	ApplyUsage(ctx context.Context) ([]UsageChange, error)
	// RepositoryUsage, NamespaceUsage and RegistryUsage read the counters
	// (zero for a scope that holds nothing).
	RepositoryUsage(ctx context.Context, repoID int64) (Usage, error)
	NamespaceUsage(ctx context.Context, nsID int64) (Usage, error)
	RegistryUsage(ctx context.Context) (Usage, error)
	// NamespacesUsageSum sums the usage of every namespace: a blob two
	// namespaces hold counts twice here and once in RegistryUsage. Less
	// the TopNamespaces, it is what the other namespaces hold.
	NamespacesUsageSum(ctx context.Context) (Usage, error)
	// TopNamespaces lists the limit namespaces holding the most bytes,
	// largest first (ties by name); namespaces holding nothing are left
	// out.
	TopNamespaces(ctx context.Context, limit int) ([]NamespaceUsage, error)
	// Namespaces lists up to limit namespaces whose name sorts after
	// after, in name order, with their usage (those holding nothing too).
	Namespaces(ctx context.Context, after string, limit int) ([]NamespaceUsage, error)

	// PutQuota creates or replaces the quota of q.Namespace.
	PutQuota(ctx context.Context, q Quota) error
	// DeleteQuota deletes the quota of the namespace; ErrNotFound if none.
	DeleteQuota(ctx context.Context, namespace string) error
	// Quota reads the quota of the namespace ("" the registry default);
	// ErrNotFound if none.
	Quota(ctx context.Context, namespace string) (Quota, error)
	// EffectiveQuota is the namespace's quota, else the registry default;
	// ErrNotFound if neither exists.
	EffectiveQuota(ctx context.Context, namespace string) (Quota, error)
	// Quotas lists every quota, by namespace (the default first).
	Quotas(ctx context.Context) ([]Quota, error)

	// VerifyUsage recomputes every counter from the rows and returns each
	// difference with the stored counters, in (Counter, Key) order; with
	// fix it also rewrites the counters to the recomputed values. In a
	// View it reads one snapshot; with fix it needs an Update, and it
	// first locks the usage rows of every namespace it fixes.
	VerifyUsage(ctx context.Context, fix bool) ([]UsageDiff, error)
	// VerifyNamespaceUsage is VerifyUsage for the counters of one
	// namespace: its repository_blob and namespace_blob counters and the
	// usage of it and of its repositories.
	VerifyNamespaceUsage(ctx context.Context, nsID int64, fix bool) ([]UsageDiff, error)
	// VerifyRegistryUsage is VerifyUsage for the counters that span
	// namespaces (the blob counters, the registry's usage) and for counter
	// rows of repositories and namespaces that no longer exist.
	VerifyRegistryUsage(ctx context.Context, fix bool) ([]UsageDiff, error)
}
