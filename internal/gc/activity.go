package gc

import (
	"maps"
	"sync"
	"time"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/review"
)

// The record of what this process's collector did lately, which the web
// interface's collector page shows (docs/design/web.md, "Cost"): the
// collector feeds it where it already logs and counts (afterCommit, the end
// of RunOnce, a decision's backoff, a failed byte delete), under one mutex
// taken once per committed transaction, into rings allocated when the
// Collector is made. It is this process's alone (a replica shows its own)
// and starts empty at every start.

// Bounds of the record.
const (
	// ActivityDeletions is how many deletions Activity keeps.
	ActivityDeletions = 200
	// ActivityRuns is how many runs that did something Activity keeps.
	ActivityRuns = 20
	// ActivityErrors is how many errors Activity keeps.
	ActivityErrors = 10
	// ThroughputWindow is the span Activity's throughput is measured over.
	ThroughputWindow = 5 * time.Minute
	// rateSlot is the granularity of the throughput's window.
	rateSlot = 5 * time.Second
)

// Activity is what this process's collector did since it was made: its
// recent deletions, runs and errors (newest first), its totals and its
// throughput. Dry runs are not in it.
type Activity struct {
	// Since is when the record starts: when the Collector was made.
	Since     time.Time        `json:"since"`
	Deletions []DeletionRecord `json:"deletions"` // the last ActivityDeletions
	// Runs are the last ActivityRuns runs (RunOnce, the workers' and
	// berth gc's) that decided, deleted or failed something; an idle run
	// counts in Totals only.
	Runs       []RunRecord    `json:"runs"`
	Errors     []ErrorRecord  `json:"errors"` // the last ActivityErrors
	Totals     ActivityTotals `json:"totals"`
	Throughput Throughput     `json:"throughput"`
}

// DeletionRecord is one committed deletion: what was deleted, why (the
// review's cause and the reason in words), and the event it was emitted as.
type DeletionRecord struct {
	At    time.Time  `json:"at"`
	Event event.Name `json:"event"`
	Deletion
}

// RunRecord is one run of the collector.
type RunRecord struct {
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	// Reviews counts the decisions taken.
	Reviews    int                 `json:"reviews"`
	Deleted    map[review.Kind]int `json:"deleted"`
	BytesFreed int64               `json:"bytes_freed"`
	// TagsEnded counts the tag lifetimes the run ended (expired, pruned,
	// attachments of a collected subject): not deletions yet.
	TagsEnded int `json:"tags_ended"`
	// Errors counts the decisions that failed (and were rescheduled), and
	// the run's own failure.
	Errors int `json:"errors"`
	// Error is why the run stopped early, if it failed.
	Error string `json:"error,omitempty"`
}

// ErrorRecord is one error of the collector: a decision that failed, a
// run that failed, or bytes it could not delete.
type ErrorRecord struct {
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

// ActivityTotals are counts since the record started.
type ActivityTotals struct {
	Runs int64 `json:"runs"`
	// LastRun is when the last run ended, idle or not.
	LastRun        time.Time `json:"last_run,omitzero"`
	Reviews        int64     `json:"reviews"`
	ObjectsDeleted int64     `json:"objects_deleted"`
	BytesFreed     int64     `json:"bytes_freed"`
	// Errors counts the errors recorded (ErrorRecord): failed byte
	// deletes included, which berth_gc_errors_total does not count.
	Errors int64 `json:"errors"`
}

// Throughput is the rate of deletions over the last ThroughputWindow (to
// within 5 s), or since the record started when that is shorter.
type Throughput struct {
	Window  time.Duration `json:"window_ns"`
	Objects float64       `json:"objects_per_second"`
	Bytes   float64       `json:"bytes_per_second"`
}

// Activity returns a copy of the record.
func (c *Collector) Activity() Activity { return c.activity.snapshot() }

// ring keeps the last len(buf) values added.
type ring[T any] struct {
	buf   []T
	added int
}

func newRing[T any](n int) ring[T] { return ring[T]{buf: make([]T, n)} }

func (r *ring[T]) add(v T) {
	r.buf[r.added%len(r.buf)] = v
	r.added++
}

func (r *ring[T]) newestFirst() []T {
	out := make([]T, min(r.added, len(r.buf)))
	for i := range out {
		out[i] = r.buf[(r.added-1-i)%len(r.buf)]
	}
	return out
}

// rateCount counts the deletions of one rateSlot of time.
type rateCount struct {
	slot           int64 // the Unix time divided by rateSlot
	objects, bytes int64
}

// activity is the record behind Collector.Activity.
type activity struct {
	now   func() time.Time
	since time.Time

	mu        sync.Mutex
	deletions ring[DeletionRecord]
	runs      ring[RunRecord]
	errors    ring[ErrorRecord]
	totals    ActivityTotals
	rate      [ThroughputWindow / rateSlot]rateCount
}

func newActivity(now func() time.Time) *activity {
	return &activity{now: now, since: now(), deletions: newRing[DeletionRecord](ActivityDeletions),
		runs: newRing[RunRecord](ActivityRuns), errors: newRing[ErrorRecord](ActivityErrors)}
}

func slotOf(t time.Time) int64 { return t.Unix() / int64(rateSlot/time.Second) }

// deleted records the deletions a transaction committed at at.
func (a *activity) deleted(at time.Time, ds []Deletion) {
	if len(ds) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var bytes int64
	for _, d := range ds {
		a.deletions.add(DeletionRecord{At: at, Event: eventKind(d.Kind), Deletion: d})
		bytes += d.Size
	}
	a.totals.ObjectsDeleted += int64(len(ds))
	a.totals.BytesFreed += bytes
	slot := slotOf(at)
	r := &a.rate[slot%int64(len(a.rate))]
	switch {
	case r.slot < slot:
		*r = rateCount{slot: slot}
	case r.slot > slot:
		return // older than the window (a clock that went back)
	}
	r.objects += int64(len(ds))
	r.bytes += bytes
}

// ran records a run that began at start, took took and summed up to s;
// err is why it failed (nil if it did not, or was stopped).
func (a *activity) ran(start time.Time, took time.Duration, s Summary, err error) {
	deleted := 0
	for _, n := range s.Deleted {
		deleted += n
	}
	run := RunRecord{Start: start, Duration: took, Reviews: s.Reviews, BytesFreed: s.BytesFreed,
		TagsEnded: s.Expired + s.Pruned + s.AttachmentsEnded, Errors: s.Errors}
	if err != nil {
		run.Errors++
		run.Error = err.Error()
	}
	idle := run.Reviews == 0 && deleted == 0 && run.TagsEnded == 0 && run.Errors == 0
	if !idle {
		run.Deleted = maps.Clone(s.Deleted)
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.totals.Runs++
	a.totals.LastRun = now
	a.totals.Reviews += int64(s.Reviews)
	if err != nil {
		a.failedLocked(now, "run failed: "+run.Error)
	}
	if !idle {
		a.runs.add(run)
	}
}

// failed records an error.
func (a *activity) failed(msg string) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failedLocked(now, msg)
}

func (a *activity) failedLocked(at time.Time, msg string) {
	a.totals.Errors++
	a.errors.add(ErrorRecord{At: at, Message: msg})
}

func (a *activity) snapshot() Activity {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	out := Activity{Since: a.since, Deletions: a.deletions.newestFirst(), Runs: a.runs.newestFirst(),
		Errors: a.errors.newestFirst(), Totals: a.totals}
	for i := range out.Runs {
		out.Runs[i].Deleted = maps.Clone(out.Runs[i].Deleted)
	}
	// The slots that start inside the window (now - window, now].
	first := slotOf(now.Add(-ThroughputWindow)) + 1
	var objects, bytes int64
	for _, r := range a.rate {
		if r.slot >= first {
			objects += r.objects
			bytes += r.bytes
		}
	}
	span := min(ThroughputWindow, max(now.Sub(a.since), time.Second))
	out.Throughput = Throughput{Window: span, Objects: float64(objects) / span.Seconds(), Bytes: float64(bytes) / span.Seconds()}
	return out
}
