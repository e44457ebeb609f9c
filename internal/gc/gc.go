// Package gc is berth's collector: online, Quay-style garbage collection
// driven by reviews (DESIGN.md §3–§4, docs/design/gc.md).
//
// Every write that can make something unreachable records a review in the
// same transaction. The collector claims due reviews in small batches, locks
// each candidate exclusively, re-checks every edge that keeps it alive,
// deletes it with the rows it owned and records the reviews of what those
// rows pointed at, then commits. Bytes are deleted only after the commit that
// deleted their blob row, through tombstones. Nothing here scans the whole
// registry: the cost of a run follows the garbage.
package gc

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/review"
)

// Defaults of the collector's own settings (the windows are review.Policy's).
const (
	// DefaultBatchSize bounds the reviews one transaction decides.
	DefaultBatchSize = 500
	// DefaultTxBudget is the time one collector transaction aims at.
	DefaultTxBudget = 20 * time.Millisecond
	// DefaultTxHold is how long a transaction nobody waits for may chain
	// rounds.
	DefaultTxHold = 60 * time.Millisecond
)

// claimSizer adapts the number of reviews a transaction claims so that a
// transaction takes about its budget: doubling while a full transaction
// takes under half of it, halving when one takes over it. It starts small,
// so the first transactions of a run never hold the writer long.
//
// With learnFixed (stores whose writers do not share one connection:
// PostgreSQL), the budget bounds what the claims add to a transaction, not
// what every transaction costs whatever it claims — its round trips, about
// thirty statements for a tag and its cascade. Without that, a fixed cost
// over half the budget (a loaded machine, a remote database) stops the
// claims growing, and one over the budget shrinks them to one review per
// transaction, which holds no lock much shorter and decides a backlog many
// times slower (docs/design/gc.md, "Bounded transactions").
type claimSizer struct {
	mu     sync.Mutex
	n, max int
	budget time.Duration
	fit    *costFit // nil: the whole transaction counts
	// lastPush is when a push was last seen waiting for a collector
	// transaction; now is the clock for it. Transactions chain rounds
	// only calmAfter later (calm).
	lastPush time.Time
	now      func() time.Time
}

// calmAfter is how long after a push last waited for the collector its
// transactions start chaining rounds again: under a steady stream of pushes
// each one waits for a single round and its commit, never for the commit
// of a chained transaction, which costs several times more (docs/design/gc.md,
// "Chained rounds").
const calmAfter = time.Second

func newClaimSizer(max int, budget time.Duration, learnFixed bool) *claimSizer {
	s := &claimSizer{n: min(16, max), max: max, budget: budget, now: time.Now}
	if learnFixed {
		s.fit = &costFit{}
	}
	return s
}

func (s *claimSizer) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// calm reports whether no push waited for the collector for calmAfter:
// only then does a transaction chain rounds.
func (s *claimSizer) calm() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now().Sub(s.lastPush) >= calmAfter
}

// sawPush records a push waiting for the collector now.
func (s *claimSizer) sawPush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastPush = s.now()
}

// preempted records a transaction a push rolled back (meta.Preemptible):
// the push did not wait, but the next transaction is smaller, as if it had.
func (s *claimSizer) preempted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastPush = s.now()
	s.n = max(1, s.n/2)
}

// observe learns from a transaction that claimed claimed reviews and took
// took; a transaction that found fewer due than it asked for says nothing
// about a full one. pressed says a push waited for it (SQLite's writer):
// the next one is smaller, so pushes wait for ever shorter transactions
// while they keep coming, and the size grows back once they stop.
func (s *claimSizer) observe(claimed int, took time.Duration, pressed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pressed {
		s.lastPush = s.now()
	}
	full := claimed >= s.n
	own := took
	if s.fit != nil && claimed > 0 {
		s.fit.add(claimed, took)
		own = took - min(s.fit.fixed(), took)
	}
	switch {
	case (pressed || own > s.budget) && s.n > 1:
		s.n = max(1, s.n/2)
	case full && own < s.budget/2 && s.n < s.max:
		s.n = min(s.max, s.n*2)
	}
}

// costFit fits time = fixed + claims × perClaim to the recent transactions
// (least squares, each older one weighing fitDecay of the next), so that a
// machine's noise moves the estimate little.
type costFit struct {
	w, x, y, xx, xy float64 // decayed sums of 1, claims, seconds, claims², claims × seconds
}

const fitDecay = 0.9

func (f *costFit) add(claims int, took time.Duration) {
	x, y := float64(claims), took.Seconds()
	f.w = f.w*fitDecay + 1
	f.x = f.x*fitDecay + x
	f.y = f.y*fitDecay + y
	f.xx = f.xx*fitDecay + x*x
	f.xy = f.xy*fitDecay + x*y
}

// fixed is where the fitted line meets zero claims, within [0, the mean
// time]; 0 until the transactions seen differ in size.
func (f *costFit) fixed() time.Duration {
	den := f.w*f.xx - f.x*f.x
	if f.w == 0 || den <= 1e-9*f.w*f.xx {
		return 0
	}
	perClaim := max(0, (f.w*f.xy-f.x*f.y)/den)
	mean := f.y / f.w
	fixed := min(mean, max(0, mean-perClaim*f.x/f.w))
	return time.Duration(fixed * float64(time.Second))
}

// Options configure a Collector. Zero durations are real zeros (tests set
// every window to 0); use DefaultOptions for production values.
type Options struct {
	// Policy holds the windows that decide when an object becomes garbage
	// (grace, upload expiry, tag retention) and whether untagged manifests
	// are collected. It must be the registry's (internal/app gives both
	// the same value) and valid (Policy.Validate).
	Policy review.Policy
	// ReviewDelay is added to every follow-up review.
	ReviewDelay time.Duration
	// Workers is how many goroutines Run starts.
	Workers int
	// BatchSize bounds the reviews one transaction claims and decides as a
	// set (with what they cascade to). Fewer are claimed while a
	// transaction takes longer than TxBudget.
	BatchSize int
	// TxBudget is how long one collector transaction should hold the
	// writer (SQLite) or its row locks: the number of reviews claimed per
	// transaction adapts to it (docs/design/gc.md, "Bounded
	// transactions"). Zero means DefaultTxBudget.
	TxBudget time.Duration
	// TxHold is how long a collector transaction on a single writer
	// (SQLite) may go on deciding rounds of TxBudget each while no push
	// waits: a push waits for the round in flight and the commit, and a
	// collection nobody waits for commits less often (docs/design/gc.md,
	// "Chained rounds"). At most TxBudget: one round per transaction.
	// Zero means DefaultTxHold.
	TxHold time.Duration
	// NoPreempt keeps pushes waiting for the collector's transaction in
	// flight. By default, where pushes of this process share the
	// collector's single writer (SQLite in serve), a push rolls back the
	// collector's decision transaction instead of waiting for it
	// (meta.Preemptible; docs/design/gc.md, "Preemptible collector
	// transactions"): lower push latency during a collection, a slower
	// collection while pushes keep coming.
	NoPreempt bool
	// Interval is how long an idle worker sleeps before polling again.
	Interval time.Duration
	// OverdueAfter is when a due review counts as overdue (metrics, status).
	OverdueAfter time.Duration
	// Now is the clock.
	Now func() time.Time
	// Logger receives one line per deletion, with its reason.
	Logger *slog.Logger
	// Hooks are called, in process, after each committed deletion; they
	// must not block (internal/webhook queues events for delivery).
	Hooks []func(Event)
	// Registerer registers the collector's metrics; nil = none.
	Registerer prometheus.Registerer
	// deleteBatch, when set, replaces deleteBatch as the keys of one byte
	// delete (tests: SetDeleteBatch).
	deleteBatch int
	// splitAlways makes every collector transaction decide one stage, as
	// under pushes (tests: SplitStages).
	splitAlways bool
}

// DefaultOptions are the production defaults of DESIGN.md.
func DefaultOptions() Options {
	return Options{
		Policy:       review.DefaultPolicy(),
		Workers:      2,
		BatchSize:    DefaultBatchSize,
		TxBudget:     DefaultTxBudget,
		TxHold:       DefaultTxHold,
		Interval:     10 * time.Second,
		OverdueAfter: time.Hour,
	}
}

// Collector collects garbage.
type Collector struct {
	store   meta.Store
	blobs   blob.Store
	opts    Options
	log     *slog.Logger
	metrics *metrics
	hooks   *dispatcher
	// activity is the record of this process's runs, deletions and
	// errors (Activity).
	activity *activity
	// claims is how many reviews one transaction claims (see batch).
	claims *claimSizer
}

// New returns a collector over store and blobs.
func New(store meta.Store, blobs blob.Store, opts Options) *Collector {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.TxBudget <= 0 {
		opts.TxBudget = DefaultTxBudget
	}
	if opts.TxHold <= 0 {
		opts.TxHold = DefaultTxHold
	}
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.OverdueAfter <= 0 {
		opts.OverdueAfter = time.Hour
	}
	c := &Collector{store: store, blobs: blobs, opts: opts, log: opts.Logger, claims: newClaimSizer(opts.BatchSize, opts.TxBudget, !singleWriter(store))}
	c.metrics = newMetrics(opts.Registerer, c)
	c.hooks = newDispatcher(opts.Hooks)
	c.activity = newActivity(opts.Now)
	return c
}

// singleWriter reports whether store serializes its write transactions
// (sqlstore on SQLite). A store that does not say is taken for one.
func singleWriter(store meta.Store) bool {
	sw, ok := store.(interface{ SingleWriter() bool })
	return !ok || sw.SingleWriter()
}

// Deletion is one object the collector deleted (or, in a dry run, would).
type Deletion struct {
	// Kind is the kind of the object: a review kind, or
	// review.KindRepository for a purge's.
	Kind       review.Kind   `json:"kind"`
	Repository string        `json:"repository,omitempty"`
	Digest     digest.Digest `json:"digest,omitempty"`
	Tag        string        `json:"tag,omitempty"`
	Size       int64         `json:"size,omitempty"` // bytes freed (blobs)
	// Cause is why the object was reviewed (the review's or the
	// follow-up's cause; review.CausePurge for a purge's deletions);
	// Reason says why it was garbage, in words.
	Cause  review.Cause `json:"cause,omitempty"`
	Reason string       `json:"reason"`
}

// TagEnd is a tag lifetime the collector ended (or, in a dry run, would):
// its expiry passed, it is an attachment whose subject the collector
// deleted, or a retention policy pruned it. The tag enters the time
// machine; deleting its row is a later Deletion.
type TagEnd struct {
	Repository string        `json:"repository"`
	Tag        string        `json:"tag"`
	Digest     digest.Digest `json:"digest"` // the manifest it pointed at
	Cause      meta.EndCause `json:"cause"`
	// Rule is the ref of the policy that pruned it (cause policy).
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason"`
}

// Summary reports a run.
type Summary struct {
	DryRun     bool                `json:"dry_run"`
	Reviews    int                 `json:"reviews"` // decisions taken
	Deleted    map[review.Kind]int `json:"deleted"` // by kind
	BytesFreed int64               `json:"bytes_freed"`
	Expired    int                 `json:"tags_expired"`
	Pruned     int                 `json:"tags_pruned"` // ended by retention policies (prune.go)
	// AttachmentsEnded counts the attachment tags ended because their
	// subject was collected (review.Policy.AttachmentsFollowSubject).
	AttachmentsEnded int `json:"attachment_tags_ended"`
	Errors           int `json:"errors"`
	// Skipped counts claimed reviews left for later because another
	// transaction held their object (PostgreSQL).
	Skipped int `json:"skipped,omitempty"`
	// Transactions counts the decision transactions that committed, and
	// Rounds the sets they decided (several per transaction while no push
	// waits, on SQLite: docs/design/gc.md, "Chained rounds").
	Transactions int           `json:"transactions"`
	Rounds       int           `json:"rounds"`
	Duration     time.Duration `json:"duration_ns"`
	Deletions    []Deletion    `json:"deletions,omitempty"` // kept when Options ask for it (dry run, --list)
	// Ends are the tag lifetimes ended, kept with the deletions.
	Ends []TagEnd `json:"tag_ends,omitempty"`
}

// Add adds o's counts and deletions to s.
func (s *Summary) Add(o Summary) {
	if s.Deleted == nil {
		s.Deleted = map[review.Kind]int{}
	}
	s.Reviews += o.Reviews
	for k, v := range o.Deleted {
		s.Deleted[k] += v
	}
	s.BytesFreed += o.BytesFreed
	s.Expired += o.Expired
	s.Pruned += o.Pruned
	s.AttachmentsEnded += o.AttachmentsEnded
	s.Errors += o.Errors
	s.Skipped += o.Skipped
	s.Transactions += o.Transactions
	s.Rounds += o.Rounds
	s.Deletions = append(s.Deletions, o.Deletions...)
	s.Ends = append(s.Ends, o.Ends...)
}

// retention is the removed-tag window of the repository's namespace.
func (c *Collector) retention(ctx context.Context, tx meta.Tx, repoName string) (time.Duration, error) {
	return Retention(ctx, tx, repoName, c.opts.Policy.TagRetention)
}

// Retention is the removed-tag window of the namespace of repository
// repoName: the namespace's own, or def when it sets none. The push path
// and the collector share it so both measure the time machine alike.
func Retention(ctx context.Context, tx meta.Tx, repoName string, def time.Duration) (time.Duration, error) {
	ns, _ := oci.SplitRepo(repoName)
	n, err := tx.Namespace(ctx, ns, meta.LockNone)
	if err != nil {
		return 0, fmt.Errorf("reading namespace %s: %w", ns, err)
	}
	if n.TagRetention != nil {
		return *n.TagRetention, nil
	}
	return def, nil
}
