package torture

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
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
	lv := liveness{Rows: map[string]int{}, Reachable: map[string]int{}}
	t0 := time.Now()
	rn.fixedPoint(ctx, &lv)
	lv.FixedPointAfter = time.Since(t0)
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
			rn.st.op("final-restore", orNone(w.restoreAndVerify(ctx, r, t, d)))
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

type linkKey struct {
	repo   int64
	digest string
}

// inspect opens the database read-only (berth is stopped) and walks
// <data>/storage, and checks that the metadata holds exactly the reachable
// set and storage exactly the bytes of the blob rows.
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
	now := time.Now().UnixMicro()
	graceUS, retUS, upUS := rn.cfg.Grace.Microseconds(), rn.cfg.Retention.Microseconds(), rn.cfg.UploadExpiry.Microseconds()

	q := func(query string, scan func(*sql.Rows) error) {
		rows, err := db.QueryContext(ctx, query)
		if err != nil {
			problem("query %q: %v", query, err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				problem("scanning %q: %v", query, err)
				return
			}
		}
		if err := rows.Err(); err != nil {
			problem("query %q: %v", query, err)
		}
	}

	// Namespaces and repositories.
	nsRet := map[int64]int64{}
	q(`SELECT id, name, state, tag_retention_us FROM namespace`, func(r *sql.Rows) error {
		var id int64
		var name, state string
		var ret sql.NullInt64
		if err := r.Scan(&id, &name, &state, &ret); err != nil {
			return err
		}
		lv.Rows["namespace"]++
		nsRet[id] = retUS
		if ret.Valid {
			nsRet[id] = ret.Int64
		}
		if state != "active" {
			problem("namespace %s is left in state %s", name, state)
		}
		return nil
	})
	repoNS := map[int64]int64{}
	repoName := map[int64]string{}
	q(`SELECT id, namespace_id, name, state FROM repository`, func(r *sql.Rows) error {
		var id, ns int64
		var name, state string
		if err := r.Scan(&id, &ns, &name, &state); err != nil {
			return err
		}
		lv.Rows["repository"]++
		repoNS[id], repoName[id] = ns, name
		if state != "active" {
			problem("repository %s is left in state %s", name, state)
		}
		return nil
	})
	mname := func(repo int64, d string) string { return repoName[repo] + "@" + d }

	// Manifests and their edges.
	type mrow struct {
		subject   string
		pushed    int64
		withdrawn bool // deleted by digest: kept only by tag rows and parents
	}
	manifests := map[linkKey]mrow{}
	q(`SELECT repository_id, digest, subject_digest, pushed_at, deleted_at FROM manifest`, func(r *sql.Rows) error {
		var k linkKey
		var m mrow
		var deleted sql.NullInt64
		if err := r.Scan(&k.repo, &k.digest, &m.subject, &m.pushed, &deleted); err != nil {
			return err
		}
		m.withdrawn = deleted.Valid
		manifests[k] = m
		return nil
	})
	lv.Rows["manifest"] = len(manifests)
	children := map[linkKey][]string{}
	q(`SELECT repository_id, parent_digest, child_digest FROM manifest_child`, func(r *sql.Rows) error {
		var k linkKey
		var c string
		if err := r.Scan(&k.repo, &k.digest, &c); err != nil {
			return err
		}
		children[k] = append(children[k], c)
		return nil
	})
	mblobs := map[linkKey][]string{}
	q(`SELECT repository_id, manifest_digest, blob_digest FROM manifest_blob`, func(r *sql.Rows) error {
		var k linkKey
		var b string
		if err := r.Scan(&k.repo, &k.digest, &b); err != nil {
			return err
		}
		mblobs[k] = append(mblobs[k], b)
		return nil
	})
	mlabels := map[linkKey][]int64{}
	q(`SELECT repository_id, manifest_digest, label_id FROM manifest_label`, func(r *sql.Rows) error {
		var k linkKey
		var id int64
		if err := r.Scan(&k.repo, &k.digest, &id); err != nil {
			return err
		}
		mlabels[k] = append(mlabels[k], id)
		return nil
	})

	// Roots.
	reach := map[linkKey]bool{}
	var frontier []linkKey
	mark := func(k linkKey) {
		if _, ok := manifests[k]; ok && !reach[k] {
			reach[k] = true
			frontier = append(frontier, k)
		}
	}
	q(`SELECT id, repository_id, name, manifest_digest, lifetime_end, expires_at FROM tag`, func(r *sql.Rows) error {
		var id, repo int64
		var name, d string
		var end, exp sql.NullInt64
		if err := r.Scan(&id, &repo, &name, &d, &end, &exp); err != nil {
			return err
		}
		lv.Rows["tag"]++
		eff := int64(-1)
		if end.Valid {
			eff = end.Int64
		}
		if exp.Valid && (eff < 0 || exp.Int64 < eff) {
			eff = exp.Int64
		}
		switch {
		case eff < 0 || eff > now:
			mark(linkKey{repo, d})
		case eff+nsRet[repoNS[repo]] > now:
			mark(linkKey{repo, d})
		default:
			if !end.Valid {
				problem("tag %s:%s (row %d) expired at %s but was never ended", repoName[repo], name, id, time.UnixMicro(exp.Int64).Format(time.RFC3339Nano))
			} else {
				problem("tag row %d (%s:%s -> %s) ended %s, outside the %s window, is still there", id, repoName[repo], name, d,
					time.UnixMicro(eff).Format(time.RFC3339Nano), time.Duration(nsRet[repoNS[repo]])*time.Microsecond)
			}
		}
		return nil
	})
	for k, m := range manifests {
		if m.pushed+graceUS > now && !m.withdrawn {
			mark(k)
		}
	}
	// Closure: children of reachable indexes; referrers of reachable subjects.
	for len(frontier) > 0 {
		k := frontier[len(frontier)-1]
		frontier = frontier[:len(frontier)-1]
		for _, c := range children[k] {
			mark(linkKey{k.repo, c})
		}
		for k2, m := range manifests {
			if m.subject == k.digest && k2.repo == k.repo && !m.withdrawn {
				mark(k2)
			}
		}
	}
	lv.Reachable["manifest"] = len(reach)
	for k := range manifests {
		if !reach[k] {
			problem("manifest %s is not reachable but still stored", mname(k.repo, k.digest))
		}
	}

	// Links, uploaded-blob markers, blobs, labels.
	usedLinks := map[linkKey]bool{}
	usedLabels := map[int64]bool{}
	for k := range reach {
		for _, b := range mblobs[k] {
			usedLinks[linkKey{k.repo, b}] = true
		}
		for _, l := range mlabels[k] {
			usedLabels[l] = true
		}
	}
	q(`SELECT repository_id, blob_digest, expires_at FROM uploaded_blob`, func(r *sql.Rows) error {
		var k linkKey
		var exp int64
		if err := r.Scan(&k.repo, &k.digest, &exp); err != nil {
			return err
		}
		lv.Rows["uploaded_blob"]++
		if exp > now {
			usedLinks[k] = true
		} else {
			problem("upload marker %s expired at %s and is still there", mname(k.repo, k.digest), time.UnixMicro(exp).Format(time.RFC3339Nano))
		}
		return nil
	})
	liveBlobs := map[string]bool{}
	q(`SELECT repository_id, blob_digest FROM repository_blob`, func(r *sql.Rows) error {
		var k linkKey
		if err := r.Scan(&k.repo, &k.digest); err != nil {
			return err
		}
		lv.Rows["repository_blob"]++
		if usedLinks[k] {
			liveBlobs[k.digest] = true
		} else {
			problem("link %s is used by no reachable manifest and no upload marker", mname(k.repo, k.digest))
		}
		return nil
	})
	lv.Reachable["link"] = len(usedLinks)
	type brow struct {
		size int64
		key  string
	}
	blobs := map[string]brow{}
	q(`SELECT digest, size, storage_key FROM blob`, func(r *sql.Rows) error {
		var d string
		var b brow
		if err := r.Scan(&d, &b.size, &b.key); err != nil {
			return err
		}
		blobs[d] = b
		return nil
	})
	lv.Rows["blob"] = len(blobs)
	lv.Reachable["blob"] = len(liveBlobs)
	for d := range blobs {
		if !liveBlobs[d] {
			problem("blob %s has no live link but its row is still there", d)
		}
	}
	q(`SELECT id, key, value FROM label`, func(r *sql.Rows) error {
		var id int64
		var k, v string
		if err := r.Scan(&id, &k, &v); err != nil {
			return err
		}
		lv.Rows["label"]++
		if !usedLabels[id] {
			problem("label %d (%s=%s) is used by no reachable manifest", id, k, v)
		}
		return nil
	})
	uploads := map[string]bool{}
	q(`SELECT id, repository_id, updated_at FROM upload`, func(r *sql.Rows) error {
		var id string
		var repo, upd int64
		if err := r.Scan(&id, &repo, &upd); err != nil {
			return err
		}
		lv.Rows["upload"]++
		uploads[id] = true
		if upd+upUS <= now {
			problem("upload session %s of %s idle since %s is still there", id, repoName[repo], time.UnixMicro(upd).Format(time.RFC3339Nano))
		}
		return nil
	})
	tombs := map[string]bool{}
	q(`SELECT storage_key, since FROM tombstone`, func(r *sql.Rows) error {
		var k string
		var since int64
		if err := r.Scan(&k, &since); err != nil {
			return err
		}
		lv.Rows["tombstone"]++
		tombs[k] = true
		problem("tombstone %s (since %s) is left", k, time.UnixMicro(since).Format(time.RFC3339Nano))
		return nil
	})
	q(`SELECT kind, object, review_after, attempts, cause, reason FROM review`, func(r *sql.Rows) error {
		var kind, obj, cause, reason string
		var after int64
		var attempts int
		if err := r.Scan(&kind, &obj, &after, &attempts, &cause, &reason); err != nil {
			return err
		}
		lv.Rows["review"]++
		if after <= now {
			problem("review %s %s (due %s, %d attempts, cause %q, %q) was never decided", kind, obj, time.UnixMicro(after).Format(time.RFC3339Nano), attempts, cause, reason)
		} else {
			lv.PendingReviews++
		}
		return nil
	})

	byKey := map[string]string{}
	for d, b := range blobs {
		byKey[b.key] = d
	}
	st := storageView{byKey: byKey, sizes: map[string]int64{}, tombs: tombs, uploads: uploads, sweepCutoff: lv.sweptAt.Add(-time.Minute), problem: problem}
	for d, b := range blobs {
		st.sizes[d] = b.size
	}
	if rn.cl.s3 != nil {
		rn.inspectS3(ctx, lv, st)
	} else {
		rn.inspectFS(lv, st)
	}
}

// storageView is what the storage inspection compares the bytes with: the
// rows left in the database once the collector reached its fixed point.
type storageView struct {
	byKey       map[string]string // storage key -> blob digest
	sizes       map[string]int64  // blob digest -> size
	tombs       map[string]bool   // storage keys of tombstones
	uploads     map[string]bool   // upload session ids
	sweepCutoff time.Time         // younger leftovers are legitimately left by the final sweep
	problem     func(format string, args ...any)
}

// inspectFS checks <data>/storage/blobs/<key> and uploads/<id>: every blob
// row's bytes are there and hash to its digest, and nothing else is left
// that the final sweep should have reclaimed.
func (rn *runner) inspectFS(lv *liveness, st storageView) {
	root := filepath.Join(rn.cl.data, "storage")
	byKey, tombs, uploads, sweepCutoff, problem := st.byKey, st.tombs, st.uploads, st.sweepCutoff, st.problem
	seenKeys := map[string]bool{}
	_ = filepath.WalkDir(filepath.Join(root, "blobs"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		rel, _ := filepath.Rel(filepath.Join(root, "blobs"), p)
		key := filepath.ToSlash(rel)
		lv.Rows["file"]++
		d, ok := byKey[key]
		if ok {
			seenKeys[key] = true
			got, n, err := hashFile(p)
			if err != nil || got != d || n != st.sizes[d] {
				problem("SAFETY: bytes of blob %s under %s are corrupt (%d bytes hashing to %s, %v)", d, key, n, got, err)
			}
			return nil
		}
		if tombs[key] {
			return nil
		}
		info, err := e.Info()
		if err == nil && info.ModTime().After(sweepCutoff) {
			lv.SweepableLater++
			return nil
		}
		problem("leaked file %s: no blob row, no tombstone, older than sweep's minimum age", key)
		return nil
	})
	for k, d := range byKey {
		if !seenKeys[k] {
			problem("SAFETY: blob %s has a row but its bytes %s are missing", d, k)
		}
	}
	_ = filepath.WalkDir(filepath.Join(root, "uploads"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		if uploads[e.Name()] {
			return nil
		}
		info, err := e.Info()
		if err == nil && info.ModTime().After(sweepCutoff) {
			lv.SweepableLater++
			return nil
		}
		problem("leaked upload staging file %s: no session, older than sweep's minimum age", e.Name())
		return nil
	})
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, err
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
	fmt.Fprintf(w, "violations: %d\n", rep.Violations)
	rn.hist.printViolations(w, rep.Seed, 20)
	if rep.Violations > 0 {
		fmt.Fprintf(w, "\nreproduce: berth-torture -seed %d -backend %s -blob %s -replicas %d -duration %s -clients %d -kill-every %s -keep\n",
			rep.Seed, rep.Backend, rep.Blob, rep.Replicas, rep.Duration, rn.cfg.Clients, rn.cfg.KillEvery)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
