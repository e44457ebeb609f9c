package gc_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	blobfs "github.com/berth/berth/internal/blob/fs"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/review"
)

// pushWaiting is a store where a push always waits for the writer.
type pushWaiting struct{ *sqlstore.Store }

func (pushWaiting) ForegroundWaiting() bool { return true }

// pushingNow is a store whose pushes keep coming: the last arrived just
// now, whenever the collector asks. (A real push before the run made the
// case depend on the run ending within calmAfter of it, which a loaded
// machine under -race did not.)
type pushingNow struct{ *sqlstore.Store }

func (pushingNow) LastForeground() time.Time { return time.Now() }

// TestRoundsYieldToForeground: on SQLite, a collector transaction nobody
// waits for, a second after the last push, decides several sets (rounds)
// before it commits; while a push waits, each transaction ends after the
// set in flight. PostgreSQL decides
// one set per transaction (docs/design/gc.md, "Chained rounds"). Either
// way the run deletes exactly the garbage.
func TestRoundsYieldToForeground(t *testing.T) {
	for _, be := range sqltest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			for _, tc := range []struct {
				name string
				// waiting: a push waits for the writer at every round's end;
				// calm: the last push was over a second ago.
				waiting, calm bool
			}{
				{name: "calm", calm: true},
				{name: "push waiting", waiting: true, calm: true},
				{name: "pushed a moment ago"},
			} {
				store, fs, want, opts := unboundedRegistry(t, be.DSN(t), 1)
				var st meta.Store = store
				switch {
				case tc.waiting:
					st = pushWaiting{store}
				case !tc.calm:
					st = pushingNow{store}
				}
				if tc.calm {
					// The registry was made through this store's foreground
					// transactions: chaining waits a second after the last.
					time.Sleep(1100 * time.Millisecond)
				}
				s, err := gc.New(st, fs, opts).RunOnce(context.Background(), gc.RunOptions{})
				if err != nil {
					t.Fatal(err)
				}
				got := genResult{Manifests: s.Deleted[review.KindManifest], Tags: s.Deleted[review.KindTag], Links: s.Deleted[review.KindLink],
					Blobs: s.Deleted[review.KindBlob], Bytes: s.BytesFreed}
				if got != want || s.Errors != 0 {
					t.Fatalf("%s: deleted %+v (errors %d), want %+v", tc.name, got, s.Errors, want)
				}
				t.Logf("%s: %d rounds in %d transactions", tc.name, s.Rounds, s.Transactions)
				if s.Transactions == 0 {
					t.Fatalf("%s: no transaction counted", tc.name)
				}
				chained := be.Name == "sqlite" && tc.calm && !tc.waiting
				if chained && s.Rounds <= s.Transactions {
					t.Errorf("%s on SQLite: %d rounds in %d transactions, want several rounds per transaction", tc.name, s.Rounds, s.Transactions)
				}
				if !chained && s.Rounds != s.Transactions {
					t.Errorf("%s on %s: %d rounds in %d transactions, want one round per transaction", tc.name, be.Name, s.Rounds, s.Transactions)
				}
			}
		})
	}
}

// TestPushesPreemptCollectorTransactions: on SQLite, pushes of the
// collector's own process roll back its transaction in flight instead of
// waiting for it (meta.Preemptible; docs/design/gc.md, "Preemptible
// collector transactions"). The run still deletes exactly the garbage,
// each object once: a preempted transaction committed nothing and its
// claims are decided again. Transactions here grow without bound (no
// budget, no hold), and a push arrives every couple of milliseconds, so
// they are preempted, shrink, decide one stage each, and after
// maxPreemptions in a row one runs to its commit with the push waiting.
// With Options.NoPreempt pushes wait.
func TestPushesPreemptCollectorTransactions(t *testing.T) {
	for _, noPreempt := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoPreempt=%v", noPreempt), func(t *testing.T) { pushesPreempt(t, noPreempt) })
	}
}

func pushesPreempt(t *testing.T, noPreempt bool) {
	store, fs, want, opts := unboundedRegistry(t, sqltest.Backends()[0].DSN(t), 2)
	opts.NoPreempt = noPreempt
	logs, reg := &recorder{}, prometheus.NewRegistry()
	opts.Logger, opts.Registerer = slog.New(logs), reg
	ctx := context.Background()
	stop := make(chan struct{})
	pushed := make(chan int)
	go func() {
		n := 0
		defer func() { pushed <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := store.Update(ctx, func(tx meta.Tx) error {
				return tx.AddReview(ctx, meta.Review{Kind: review.KindUpload, Object: "pushing", ReviewAfter: time.Now().Add(1000 * time.Hour)})
			}); err != nil {
				t.Error(err)
				return
			}
			n++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	s, err := gc.New(store, fs, opts).RunOnce(ctx, gc.RunOptions{})
	close(stop)
	n := <-pushed
	if err != nil {
		t.Fatal(err)
	}
	got := genResult{Manifests: s.Deleted[review.KindManifest], Tags: s.Deleted[review.KindTag], Links: s.Deleted[review.KindLink],
		Blobs: s.Deleted[review.KindBlob], Bytes: s.BytesFreed}
	if got != want || s.Errors != 0 {
		t.Fatalf("deleted %+v (errors %d), want %+v", got, s.Errors, want)
	}
	preempted := len(logs.matching("gc transaction preempted by a push"))
	split := 0
	for _, v := range logs.attr("gc transaction", "split") {
		if v == "true" {
			split++
		}
	}
	t.Logf("%d pushes, %d transactions committed (%d of one stage), %d preempted", n, s.Transactions, split, preempted)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "berth_gc_preempted_total" {
			counted = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if counted != float64(preempted) {
		t.Errorf("berth_gc_preempted_total = %v, want %d (the transactions logged preempted)", counted, preempted)
	}
	switch {
	case noPreempt && preempted != 0:
		t.Errorf("%d collector transactions preempted with NoPreempt", preempted)
	case !noPreempt && preempted == 0:
		t.Errorf("no collector transaction was preempted by %d pushes", n)
	}
	// Under pushes a preemptible collector's transactions decide one
	// stage each (gc.md, "One stage per transaction under pushes");
	// pushes that wait for it leave it deciding whole cascades.
	switch {
	case noPreempt && split != 0:
		t.Errorf("%d collector transactions decided one stage with NoPreempt", split)
	case !noPreempt && split == 0:
		t.Errorf("no collector transaction decided one stage under %d pushes", n)
	}
}

// unboundedRegistry is a generated registry (10 repositories, 200 garbage
// and 20 live images, from seed) on the store at dsn and a filesystem, what
// collecting it must delete, and collector options under which sets grow
// by doubling and no hold ends a transaction: only a push or a drained
// kind does.
func unboundedRegistry(t *testing.T, dsn string, seed uint64) (*sqlstore.Store, *blobfs.Store, genResult, gc.Options) {
	t.Helper()
	store := sqltest.Open(t, dsn)
	root := filepath.Join(t.TempDir(), "storage")
	fs, err := blobfs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Millisecond)
	want := generate(t, store, fsPut(t, root), genSpec{Repos: 10, Garbage: 200, Live: 20, Seed: seed}, t0)
	opts := benchOptions(t0)
	opts.TxBudget, opts.TxHold = time.Hour, 2*time.Hour
	return store, fs, want, opts
}
