package torture

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"modernc.org/sqlite"

	"github.com/berth/berth/internal/gc/gcoracle"
	"github.com/berth/berth/internal/review"
)

// liveness is what the final inspection found once writes stopped, every
// window passed and the collector reached its fixed point.
type liveness struct {
	FixedPointAfter time.Duration
	GCRounds        int
	Rows            map[string]int // rows left, by table
	Reachable       map[string]int // reachable objects, by kind
	Problems        []string       // liveness (and storage safety) violations
	SweepableLater  int            // leaked files younger than sweep's minimum age when it ran
	sweptAt         time.Time      // when the final sweep started
	SweepDeleted    int
	PendingReviews  int // not due: scheduled after the inspection time
	// UsageNamespaces is how many namespaces "berth usage verify" checked
	// at the fixed point (-1: not run).
	UsageNamespaces int
}

// finish stops the writers' world: it brings every replica back, finishes
// interrupted purges, pulls everything still promised, waits for every
// window, drives the collector to its fixed point, stops berth, sweeps, and
// inspects the database and the storage directory.
func (rn *runner) finish(ctx context.Context, dir string) *Report {
	cfg := rn.cfg
	cl := rn.cl
	rn.logf("writes stopped; bringing every replica up")
	if err := cl.startAll(ctx); err != nil {
		rn.hist.violate("berth does not restart", err.Error())
	}
	// Purges the end of the run interrupted.
	for _, name := range rn.pending {
		rn.logf("finishing interrupted purge of %s", name)
		rn.purgeRepo(ctx, -1, rn.m.repo(name))
	}
	w := &worker{id: -2, rng: rand.New(rand.NewPCG(cfg.Seed, 9)), r: rn, c: &client{http: rn.httpClient, cluster: cl, stats: rn.st}}
	// The rules' rows while they are all still listed: what the collector
	// ended on its own, and every immutable tag's single lifetime.
	rn.logf("checking the rows rules ended and every immutable tag's history")
	rn.finalRuleChecks(ctx, w)
	// The time machine at the end: every lifetime that ended less than its
	// window ago, however it ended, restores and pulls completely. First,
	// while the most recent ends are still inside the window.
	rn.logf("restoring every lifetime still inside the time machine")
	for _, name := range append(slices.Clone(rn.repos), rn.purgeable...) {
		rn.finalRestores(ctx, w, rn.m.repo(name))
	}
	// Safety at the end: everything promised pulls.
	rn.logf("final pull of every promised tag and manifest")
	for _, name := range append(slices.Clone(rn.repos), rn.purgeable...) {
		r := rn.m.repo(name)
		rn.m.mu.Lock()
		var tags, digests []string
		for t := range r.tags {
			tags = append(tags, t)
		}
		now := time.Now()
		for d := range r.manifests {
			if !rn.m.promisedUntil(r, d, now).IsZero() {
				digests = append(digests, d)
			}
		}
		rn.m.mu.Unlock()
		slices.Sort(tags)
		slices.Sort(digests)
		for _, t := range tags {
			rn.st.op("final-verify-tag", orNone(w.verifyTag(ctx, r, t)))
		}
		for _, d := range digests {
			rn.st.op("final-verify", orNone(w.verifyManifest(ctx, r, d, 0)))
		}
	}

	// Liveness: wait out every window, then collect to a fixed point.
	wait := max(cfg.Grace, cfg.UploadExpiry, cfg.Retention+3*time.Second) + 2*time.Second
	rn.logf("waiting %s for every window to pass", wait)
	select {
	case <-ctx.Done():
	case <-time.After(wait):
	}
	lv := liveness{Rows: map[string]int{}, Reachable: map[string]int{}, UsageNamespaces: -1}
	t0 := time.Now()
	rn.fixedPoint(ctx, &lv)
	lv.FixedPointAfter = time.Since(t0)
	rn.verifyUsage(ctx, &lv)
	cl.stopAll()
	// Sweep's cutoff is taken when it starts: a file younger than a minute
	// then is legitimately left, even if it is older by the inspection.
	lv.sweptAt = time.Now()
	if cl.hasSweep {
		// Every berth process is stopped, so no commit is in flight: the
		// shortest wait before sweep re-checks its candidates is enough.
		out, _, err := cl.cli(ctx, 0, "sweep", "--older-than", "1m", "--settle", "1s", "--json")
		if err != nil {
			lv.Problems = append(lv.Problems, "berth sweep failed: "+err.Error())
		} else {
			var s struct {
				Leaked        int `json:"objects_deleted"`
				LeakedUploads int `json:"staging_deleted"`
			}
			_ = jsonUnmarshal(out, &s)
			lv.SweepDeleted = s.Leaked + s.LeakedUploads
		}
	}
	rn.inspect(ctx, &lv)

	rep := &Report{Seed: cfg.Seed, Backend: cfg.Backend, Blob: cfg.Blob, Replicas: cfg.Replicas, Duration: cfg.Duration,
		Ops: rn.st.table(), Pushes: rn.st.get("put-manifest", "ok"), Kills: rn.kills(), S3Outages: rn.s3Outages, GCRuns: rn.gcRuns, GCKilled: rn.gcKilled,
		Deletions: deletionsFromLogs(dir), ServerErrs: rn.st.serverErrors, Liveness: lv}
	for _, p := range lv.Problems {
		rn.hist.violate("liveness", p, problemKeys(p)...)
	}
	rep.Violations = rn.hist.count()
	rn.report(rep)
	return rep
}

// finalRestores restores, for each tag of r, each past digest the model
// says must be restorable now, and pulls it.
func (rn *runner) finalRestores(ctx context.Context, w *worker, r *repoModel) {
	rn.m.mu.Lock()
	var tags []string
	for t := range r.tags {
		tags = append(tags, t)
	}
	rn.m.mu.Unlock()
	slices.Sort(tags)
	for _, t := range tags {
		for _, d := range rn.m.pastDigests(r, t) {
			// A request answered within a second must still be inside the
			// window; later ones are not the server's promise any more.
			if !rn.m.restorable(r, t, d, time.Now().Add(time.Second)) {
				continue
			}
			if !w.tagKnown(ctx, r, t) {
				rn.st.op("final-restore", "unknown")
				continue
			}
			rn.st.op("final-restore", orNone(w.restoreAndVerify(ctx, r, t, d, time.Time{}, "")))
		}
	}
}

// Objects a liveness problem names, in the history's key formats: manifests
// and links as repo@digest (mkey), blobs as blob:digest (bkey).
var (
	repoObjectRE = regexp.MustCompile(`[a-z0-9][a-z0-9._/-]*@sha256:[0-9a-f]{64}`)
	blobRE       = regexp.MustCompile(`blob (sha256:[0-9a-f]{64})`)
)

// problemKeys lists the history keys of the objects problem names, so the
// report shows every operation that touched them, not only the harness's
// kills and restarts.
func problemKeys(problem string) []string {
	keys := []string{"final"}
	keys = append(keys, repoObjectRE.FindAllString(problem, -1)...)
	for _, m := range blobRE.FindAllStringSubmatch(problem, -1) {
		keys = append(keys, bkey(m[1]))
	}
	return keys
}

func orNone(s string) string {
	if s == "" {
		return "skipped"
	}
	return s
}

// fixedPoint runs "berth gc" until a run deletes nothing (or, without the
// command, waits for the workers until no review is due).
func (rn *runner) fixedPoint(ctx context.Context, lv *liveness) {
	quiet := 0
	for round := 0; round < 60 && quiet < 2 && ctx.Err() == nil; round++ {
		lv.GCRounds++
		if rn.cl.hasGC {
			n, err := rn.runGC(ctx, 0)
			if err != nil {
				rn.logf("berth gc: %v", err)
			}
			if n == 0 {
				quiet++
			} else {
				quiet = 0
			}
			continue
		}
		time.Sleep(3 * rn.cfg.GCInterval)
		due, err := rn.dueReviews(ctx)
		if err != nil {
			rn.logf("counting due reviews: %v", err)
		}
		if due == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	// Let the workers finish what they claimed.
	time.Sleep(2 * rn.cfg.GCInterval)
}

func (rn *runner) openDB() (*sql.DB, error) {
	if rn.cl.dsn != "" {
		return openPG(rn.cl.dsn)
	}
	c, err := sqlite.NewConnector("file:" + filepath.Join(rn.cl.data, "berth.db") + "?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

func (rn *runner) dueReviews(ctx context.Context) (int, error) {
	db, err := rn.openDB()
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM review WHERE review_after <= %d`, time.Now().UnixMicro())).Scan(&n)
	return n, err
}

// inspect opens the database read-only (berth is stopped), lists the
// storage (<data>/storage, or the bucket itself), and hands both to the
// fixed-point oracle (gcoracle): the metadata must hold exactly the
// reachable set and storage exactly the bytes of the blob rows, each
// hashing to its digest. Leftovers younger than the final sweep's cutoff
// are excused (counted as sweepable later).
func (rn *runner) inspect(ctx context.Context, lv *liveness) {
	problem := func(format string, args ...any) {
		if len(lv.Problems) < 200 {
			lv.Problems = append(lv.Problems, fmt.Sprintf(format, args...))
		}
	}
	db, err := rn.openDB()
	if err != nil {
		problem("opening the database: %v", err)
		return
	}
	defer db.Close()
	var bytes gcoracle.Bytes
	if rn.cl.s3 != nil {
		bytes, err = rn.s3Bytes(ctx, lv)
	} else {
		bytes, err = rn.fsBytes(lv)
	}
	if err != nil {
		problem("listing storage: %v", err)
		return
	}
	rep, err := gcoracle.Check(ctx, gcoracle.Input{
		DB: db, Bytes: bytes, Now: time.Now(),
		Windows:     review.Policy{Grace: rn.cfg.Grace, UploadExpiry: rn.cfg.UploadExpiry, TagRetention: rn.cfg.Retention, CollectUntagged: true},
		SweepCutoff: lv.sweptAt.Add(-time.Minute),
	})
	if err != nil {
		problem("fixed-point oracle: %v", err)
		return
	}
	for k, n := range rep.Rows {
		lv.Rows[k] = n
	}
	lv.Reachable = rep.Reachable
	lv.PendingReviews = rep.Pending
	lv.SweepableLater += rep.Excused
	for _, f := range rep.Findings {
		problem("%s", f)
	}
}

// fsBytes lists <data>/storage/blobs/<key> (committed bytes) and
// uploads/<id> (staging) for the oracle, which reads the bytes to check
// them.
func (rn *runner) fsBytes(lv *liveness) (gcoracle.Bytes, error) {
	root := filepath.Join(rn.cl.data, "storage")
	var b gcoracle.Bytes
	walk := func(dir string, add func(rel string, o gcoracle.Object)) error {
		return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				return nil
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			add(filepath.ToSlash(rel), gcoracle.Object{Name: p, Size: info.Size(), ModTime: info.ModTime()})
			return nil
		})
	}
	blobs := filepath.Join(root, "blobs")
	if err := walk(blobs, func(rel string, o gcoracle.Object) {
		lv.Rows["file"]++
		o.Key = rel
		b.Blobs = append(b.Blobs, o)
	}); err != nil {
		return b, err
	}
	if err := walk(filepath.Join(root, "uploads"), func(rel string, o gcoracle.Object) {
		o.Key = filepath.Base(rel)
		b.Staging = append(b.Staging, o)
	}); err != nil {
		return b, err
	}
	b.Open = func(_ context.Context, key string) (io.ReadCloser, error) {
		return os.Open(filepath.Join(blobs, filepath.FromSlash(key)))
	}
	return b, nil
}

// report prints the summary.
func (rn *runner) report(rep *Report) {
	w := rn.cfg.Out
	lv := rep.Liveness
	fmt.Fprintf(w, "\n=== berth torture summary (seed %d, backend %s, blobs on %s, %d replica(s), %s, %d clients)\n", rep.Seed, rep.Backend, rep.Blob, rep.Replicas, rep.Duration, rn.cfg.Clients)
	fmt.Fprintf(w, "operations by kind (outcome counts):\n%s", rep.Ops)
	fmt.Fprintf(w, "acknowledged manifest PUTs: %d\n", rep.Pushes)
	fmt.Fprintf(w, "crashes injected (SIGKILL of berth serve): %d\n", rep.Kills)
	if rep.Blob == "s3" {
		fmt.Fprintf(w, "object store outages injected (SIGKILL of versitygw): %d\n", rep.S3Outages)
	}
	fmt.Fprintf(w, "berth gc runs: %d (%d killed mid-run); deleted by those runs: %s\n", rep.GCRuns, rep.GCKilled, formatCounts(rn.gcDel))
	fmt.Fprintf(w, "deletions by kind (all collectors, from the logs): %s\n", formatCounts(rep.Deletions))
	fmt.Fprintf(w, "server errors (5xx): %d\n", rep.ServerErrs)
	for _, s := range rn.st.samples {
		fmt.Fprintf(w, "  e.g. %s\n", s)
	}
	fmt.Fprintf(w, "fixed point: %d gc rounds in %s; rows left %s; reachable %s; reviews pending (not due) %d; sweep deleted %d; leaked files sweep will reclaim later %d\n",
		lv.GCRounds, lv.FixedPointAfter.Round(time.Millisecond), formatCounts(lv.Rows), formatCounts(lv.Reachable), lv.PendingReviews, lv.SweepDeleted, lv.SweepableLater)
	if lv.UsageNamespaces >= 0 {
		fmt.Fprintf(w, "usage counters verified at the fixed point (berth usage verify): %d namespaces\n", lv.UsageNamespaces)
	}
	fmt.Fprintf(w, "violations: %d\n", rep.Violations)
	rn.hist.printViolations(w, rep.Seed, 20)
	if rep.Violations > 0 {
		fmt.Fprintf(w, "\nreproduce: berth-torture -seed %d -backend %s -blob %s -replicas %d -duration %s -clients %d -kill-every %s -keep\n",
			rep.Seed, rep.Backend, rep.Blob, rep.Replicas, rep.Duration, rn.cfg.Clients, rn.cfg.KillEvery)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
