package sqlstore

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// writeMetrics time the store's write transactions, by priority
// (foreground: pushes, deletes, admin writes; background: the collector,
// tombstone clearing, the pull recorder). On SQLite the wait is for the one
// writer — the in-process gate, the gate between processes, the writer
// connection and BEGIN IMMEDIATE's lock — and the hold is how long the
// transaction kept it, which is what the next writer waits for; on
// PostgreSQL the wait is for a pooled connection and BEGIN. A push slowed
// by the collector shows as foreground waits (docs/design/gc.md, "One
// stage per transaction under pushes").
type writeMetrics struct {
	wait, hold *prometheus.HistogramVec
	// by priority (0 foreground, 1 background), resolved once: every
	// push observes them.
	waits, holds [2]prometheus.Observer
}

// writeBuckets run from 0.25 ms to about 4 s.
var writeBuckets = prometheus.ExponentialBuckets(0.00025, 2, 15)

func newWriteMetrics() *writeMetrics {
	m := &writeMetrics{
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "berth", Subsystem: "db", Name: "write_wait_seconds",
			Help:    "Time a write transaction waited before it began (SQLite: for the one writer; PostgreSQL: for a connection), by priority.",
			Buckets: writeBuckets}, []string{"priority"}),
		hold: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "berth", Subsystem: "db", Name: "write_seconds",
			Help:    "Time from a write transaction's begin to the end of its commit or rollback (SQLite: how long it held the one writer), by priority.",
			Buckets: writeBuckets}, []string{"priority"}),
	}
	for i, p := range []string{"foreground", "background"} {
		m.waits[i], m.holds[i] = m.wait.WithLabelValues(p), m.hold.WithLabelValues(p)
	}
	return m
}

// observe records one attempt of a write transaction that asked for the
// writer at asked and began at began (zero: it never began).
func (m *writeMetrics) observe(background bool, asked, began time.Time) {
	if began.IsZero() {
		return
	}
	i := 0
	if background {
		i = 1
	}
	m.waits[i].Observe(began.Sub(asked).Seconds())
	m.holds[i].Observe(time.Since(began).Seconds())
}

// Collectors are the store's metrics, for the caller to register (serve
// registers them when metrics are on): berth_db_write_wait_seconds and
// berth_db_write_seconds.
func (s *Store) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.wait, s.metrics.hold}
}
