package registry

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth/berth/internal/meta"
)

// Pull tracking (docs/design/policies.md, "Pull tracking"): a GET or HEAD
// of a manifest by tag records the pull in tag.pulled_at, for the pull
// rules. The read path already has the live tag row; when its pull time is
// older than the interval, it hands the row's id to the pull recorder and
// answers at once. The recorder writes in the background, in short
// transactions of their own, at most one pending write per tag: a burst of
// pulls of one tag makes one write, and a pull never waits for one.

const (
	// maxPendingPulls bounds the tags waiting for their pull to be
	// written; a pull arriving when that many wait is dropped (counted).
	maxPendingPulls = 10000
	// pullBatch bounds the rows one recorder transaction writes.
	pullBatch = 500
)

// Reasons a pull that needed recording was not written, the values of the
// label of berth_tag_pulls_dropped_total.
const (
	pullDropFull   = "queue_full" // maxPendingPulls tags were waiting
	pullDropError  = "error"      // the transaction failed
	pullDropClosed = "closed"     // after Close
)

// pullRecorder writes the pulls the read path hands it, from one goroutine
// started by the first pull to record.
type pullRecorder struct {
	store    meta.Store
	interval time.Duration
	limit    int // of pending tags: maxPendingPulls
	log      *slog.Logger

	recorded prometheus.Counter
	dropped  *prometheus.CounterVec

	mu      sync.Mutex
	pending map[int64]time.Time // tag row id → pull time
	started bool
	closed  bool

	wake chan struct{} // buffered 1: pending has something
	stop chan struct{} // closed by close
	done chan struct{} // closed when run returns
}

func newPullRecorder(store meta.Store, interval time.Duration, log *slog.Logger, reg prometheus.Registerer) *pullRecorder {
	p := &pullRecorder{
		store:    store,
		interval: interval,
		limit:    maxPendingPulls,
		log:      log,
		recorded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "berth", Subsystem: "tag", Name: "pulls_recorded_total",
			Help: "Pulls by tag written to the tag's last pull time (at most one per tag per policy.pull_interval)."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "berth", Subsystem: "tag", Name: "pulls_dropped_total",
			Help: "Pulls by tag that needed recording and were not written, by reason (queue_full, error, closed)."}, []string{"reason"}),
		pending: map[int64]time.Time{},
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if reg != nil {
		reg.MustRegister(p.recorded, p.dropped)
	}
	return p
}

// due reports whether a pull at now of a tag last pulled at pulledAt needs
// recording: never pulled, or not within the interval (the condition
// meta.PolicyTx.RecordPull checks again when it writes).
func (p *pullRecorder) due(pulledAt *time.Time, now time.Time) bool {
	return pulledAt == nil || !pulledAt.After(now.Add(-p.interval))
}

// note hands the recorder a pull of tag row id at at. It never blocks on
// the database: a tag already pending keeps its first pull, and a full
// queue drops the pull.
func (p *pullRecorder) note(id int64, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pending[id]; ok {
		return
	}
	switch {
	case p.closed:
		p.dropped.WithLabelValues(pullDropClosed).Inc()
		return
	case len(p.pending) >= p.limit:
		p.dropped.WithLabelValues(pullDropFull).Inc()
		return
	}
	p.pending[id] = at
	if !p.started {
		p.started = true
		go p.run()
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run writes pending pulls whenever there are some, until close.
func (p *pullRecorder) run() {
	defer close(p.done)
	ctx := meta.Background(context.Background())
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
			if err := p.flush(ctx); err != nil {
				p.log.Warn("recording tag pulls failed; they are dropped", "err", err)
			}
		}
	}
}

// flush writes every pending pull, in batches of pullBatch rows per
// transaction, in id order (two replicas flushing lock rows in one order).
// A batch that fails is dropped (a lost pull makes a tag look less recently
// pulled by at most one interval); the first error is returned.
func (p *pullRecorder) flush(ctx context.Context) error {
	p.mu.Lock()
	batch := p.pending
	p.pending = map[int64]time.Time{}
	p.mu.Unlock()
	ids := make([]int64, 0, len(batch))
	for id := range batch {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var first error
	for chunk := range slices.Chunk(ids, pullBatch) {
		wrote := 0
		err := p.store.Update(ctx, func(tx meta.Tx) error {
			wrote = 0
			for _, id := range chunk {
				ok, err := tx.RecordPull(ctx, id, batch[id], p.interval)
				if err != nil {
					return err
				}
				if ok {
					wrote++
				}
			}
			return nil
		})
		if err != nil {
			p.dropped.WithLabelValues(pullDropError).Add(float64(len(chunk)))
			if first == nil {
				first = err
			}
			continue
		}
		p.recorded.Add(float64(wrote))
	}
	return first
}

// close stops the recorder and writes what is pending, within ctx; later
// pulls are dropped. Closing twice does nothing.
func (p *pullRecorder) close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	started := p.started
	p.mu.Unlock()
	if started {
		close(p.stop)
		select {
		case <-p.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return p.flush(meta.Background(ctx))
}
