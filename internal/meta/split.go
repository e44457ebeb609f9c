package meta

import (
	"context"
	"time"
)

// HeldClass is how the bytes of a manifest, or of a blob, that a scope holds
// are kept (docs/design/usage.md, "Reading usage"). The classes are ordered:
// a blob takes the first class of any manifest of the scope that references
// it, and a manifest the first class of any root that reaches it.
type HeldClass int

const (
	// HeldLive: reachable from a live tag (tag → manifest → index children
	// → referrers of what is reached), hidden tags included.
	HeldLive HeldClass = iota
	// HeldTimeMachine: reachable only from tags that ended inside their
	// namespace's window: restorable, and counted until collected.
	HeldTimeMachine
	// HeldUntagged: reachable from no tag, but from a manifest inside its
	// untagged grace (not withdrawn), or, under collect_untagged: false,
	// from a manifest pushed by digest that no tag ever named.
	HeldUntagged
	// HeldReclaimable: reachable from nothing: the collector deletes the
	// manifests at its next run and their blobs a grace later.
	HeldReclaimable
)

// HeldClasses lists the classes in order.
func HeldClasses() []HeldClass {
	return []HeldClass{HeldLive, HeldTimeMachine, HeldUntagged, HeldReclaimable}
}

var heldNames = []string{"live", "time_machine", "untagged", "reclaimable"}

// String is the class's name in documents: live, time_machine, untagged,
// reclaimable.
func (c HeldClass) String() string {
	if c >= 0 && int(c) < len(heldNames) {
		return heldNames[c]
	}
	return "unknown"
}

// Held counts what one class holds: manifests by their size, blobs by
// theirs, each blob once in the scope.
type Held struct {
	Manifests     int64
	ManifestBytes int64
	Blobs         int64
	BlobBytes     int64
}

// Bytes is what the class holds in all.
func (h Held) Bytes() int64 { return h.ManifestBytes + h.BlobBytes }

// Split is the bytes a scope holds, by class (indexed by HeldClass).
type Split [4]Held

// Total is what the scope holds in all: its usage, as the counters say it
// when they agree with the rows.
func (s Split) Total() Held {
	var t Held
	for _, h := range s {
		t.Manifests += h.Manifests
		t.ManifestBytes += h.ManifestBytes
		t.Blobs += h.Blobs
		t.BlobBytes += h.BlobBytes
	}
	return t
}

// SplitScope is what a split classifies: one repository (RepoID), or every
// repository of a namespace (NamespaceID). Exactly one is set.
type SplitScope struct {
	RepoID      int64
	NamespaceID int64
}

// SplitPolicy is what decides the classes: the time, and the windows the
// collector decides with.
type SplitPolicy struct {
	Now time.Time
	// Grace is the untagged grace; Retention the time-machine window of
	// namespaces that set none.
	Grace     time.Duration
	Retention time.Duration
	// KeepUntagged is collect_untagged: false: a manifest that no tag row
	// names and that has no subject is kept past its grace.
	KeepUntagged bool
}

// SplitTx classifies the bytes a scope holds by reachability, read-only,
// in a few set-based statements whose cost grows with the scope, never
// with the registry.
type SplitTx interface {
	// ScopeManifests counts the manifests of the scope, stopping at limit:
	// the result is min(count, limit).
	ScopeManifests(ctx context.Context, scope SplitScope, limit int) (int, error)
	// UsageSplit classifies every manifest of the scope, and every blob
	// its manifests reference (once per scope), by HeldClass.
	UsageSplit(ctx context.Context, scope SplitScope, p SplitPolicy) (Split, error)
}
