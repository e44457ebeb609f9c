package gc

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

type metrics struct {
	deletions  *prometheus.CounterVec
	bytesFreed prometheus.Counter
	errors     prometheus.Counter
	latency    *prometheus.HistogramVec
	decided    *prometheus.CounterVec
	tagsEnded  *prometheus.CounterVec
	runs       prometheus.Counter
	preempted  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, c *Collector) *metrics {
	m := &metrics{
		deletions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "berth", Subsystem: "gc", Name: "deletions_total",
			Help: "Objects deleted by the collector, by kind."}, []string{"kind"}),
		bytesFreed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "berth", Subsystem: "gc", Name: "bytes_freed_total",
			Help: "Bytes of blobs deleted by the collector."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "berth", Subsystem: "gc", Name: "errors_total",
			Help: "Collector decisions or runs that failed (and were retried)."}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "berth", Subsystem: "gc", Name: "stage_seconds",
			Help: "Time to decide one set of reviews of a kind (one stage of a transaction).", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"kind"}),
		decided: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "berth", Subsystem: "gc", Name: "decisions_total",
			Help: "Objects decided by the collector (kept, put off or deleted), by review kind."}, []string{"kind"}),
		tagsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "berth", Subsystem: "gc", Name: "tags_ended_total",
			Help: "Tag lifetimes the collector ended, by cause: expired, subject_collected (an attachment whose subject it deleted), policy (a retention policy pruned it)."}, []string{"cause"}),
		runs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "berth", Subsystem: "gc", Name: "runs_total",
			Help: "Collection runs completed."}),
		preempted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "berth", Subsystem: "gc", Name: "preempted_total",
			Help: "Collector transactions a push rolled back to go first (SQLite, gc.push_preempts); their work was done again."}),
	}
	if reg != nil {
		reg.MustRegister(m.deletions, m.bytesFreed, m.errors, m.latency, m.decided, m.tagsEnded, m.runs, m.preempted,
			&queueCollector{c: c,
				due:     prometheus.NewDesc("berth_gc_reviews_due", "Reviews whose time has come.", nil, nil),
				overdue: prometheus.NewDesc("berth_gc_reviews_overdue", "Reviews due for longer than the overdue threshold.", nil, nil),
				pending: prometheus.NewDesc("berth_gc_reviews_pending", "Reviews in the queue.", nil, nil),
			})
	}
	return m
}

func (m *metrics) deleted(d Deletion) {
	m.deletions.WithLabelValues(string(d.Kind)).Inc()
	m.bytesFreed.Add(float64(d.Size))
}

func (m *metrics) ended(e TagEnd) { m.tagsEnded.WithLabelValues(string(e.Cause)).Inc() }

func (m *metrics) decisions(kind review.Kind, n int, took time.Duration) {
	m.latency.WithLabelValues(string(kind)).Observe(took.Seconds())
	m.decided.WithLabelValues(string(kind)).Add(float64(n))
}

func (m *metrics) run(Summary) { m.runs.Inc() }

// queueCollector reads the review queue at scrape time.
type queueCollector struct {
	c                     *Collector
	due, overdue, pending *prometheus.Desc
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.due
	ch <- q.overdue
	ch <- q.pending
}

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var st meta.ReviewStats
	err := q.c.store.View(ctx, func(tx meta.Tx) (err error) {
		st, err = tx.ReviewStats(ctx, q.c.opts.Now(), q.c.opts.OverdueAfter)
		return err
	})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(q.due, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(q.due, prometheus.GaugeValue, float64(st.Due))
	ch <- prometheus.MustNewConstMetric(q.overdue, prometheus.GaugeValue, float64(st.Overdue))
	ch <- prometheus.MustNewConstMetric(q.pending, prometheus.GaugeValue, float64(st.Pending))
}
