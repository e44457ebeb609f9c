package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// TestWriteMetrics: every write transaction is timed by priority — how
// long it waited before it began, how long it then ran to its commit. On
// SQLite a push that arrives while a background transaction holds the one
// writer waits for it, and berth_db_write_wait_seconds says how long; on
// PostgreSQL it waits only for a connection of its own.
func TestWriteMetrics(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			s := sqltest.Open(t, b.DSN(t))
			reg := prometheus.NewRegistry()
			reg.MustRegister(s.Collectors()...)
			ctx := context.Background()
			// Long enough that PostgreSQL's wait for a new connection
			// (tens of ms) stays well below half of it.
			const hold = 300 * time.Millisecond
			holding := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				done <- s.Update(meta.Background(ctx), func(tx meta.Tx) error {
					close(holding)
					time.Sleep(hold)
					return nil
				})
			}()
			<-holding
			if err := s.Update(ctx, func(tx meta.Tx) error { return nil }); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			got := histograms(t, reg)
			for _, k := range []string{"berth_db_write_wait_seconds/background", "berth_db_write_wait_seconds/foreground",
				"berth_db_write_seconds/background", "berth_db_write_seconds/foreground"} {
				if got[k].count != 1 {
					t.Errorf("%s: %d observations, want 1", k, got[k].count)
				}
			}
			if h := got["berth_db_write_seconds/background"].sum; h < hold.Seconds() {
				t.Errorf("background transaction held %.3fs, want at least %v", h, hold)
			}
			wait := got["berth_db_write_wait_seconds/foreground"].sum
			switch b.Name {
			case "sqlite":
				if wait < (hold / 2).Seconds() {
					t.Errorf("push waited %.3fs behind a transaction holding the writer for %v", wait, hold)
				}
			default:
				if wait >= (hold / 2).Seconds() {
					t.Errorf("push waited %.3fs on PostgreSQL, where writers share no connection", wait)
				}
			}
		})
	}
}

type histogram struct {
	count uint64
	sum   float64
}

// histograms reads reg's histograms as name/priority.
func histograms(t *testing.T, reg *prometheus.Registry) map[string]histogram {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]histogram{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			out[key] = histogram{count: m.GetHistogram().GetSampleCount(), sum: m.GetHistogram().GetSampleSum()}
		}
	}
	return out
}
