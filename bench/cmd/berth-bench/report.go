package main

import (
	"bufio"
	"cmp"
	"fmt"
	"image/color"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

func cmdOut(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "unavailable (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func environment() map[string]string {
	commit := cmdOut("git", "rev-parse", "HEAD")
	if st := cmdOut("git", "status", "--porcelain", "--untracked-files=no", "--", "cmd", "internal"); st != "" && !strings.HasPrefix(st, "unavailable") {
		commit += " (plus uncommitted changes in cmd/ or internal/)"
	}
	load, _ := os.ReadFile("/proc/loadavg")
	return map[string]string{
		"nproc":        fmt.Sprint(runtime.NumCPU()),
		"cpu":          procField("/proc/cpuinfo", "model name"),
		"mem":          procField("/proc/meminfo", "MemTotal"),
		"kernel":       cmdOut("uname", "-r"),
		"go":           cmdOut("go", "version"),
		"distribution": cmdOut("docker-registry", "--version"),
		"berth_commit": commit,
		"loadavg":      strings.TrimSpace(string(load)),
		"command":      strings.Join(os.Args, " "),
	}
}

func mib(kb int64) float64 { return float64(kb) / 1024 }

// report renders the figures as Markdown: one table per scale with
// berth/distribution ratios, the big blob, and the targets.
// columns are the variants of res in order; results.json files written
// before the variants existed name their registries in the options.
func columns(o options, res *results) []variant {
	if len(res.Variants) > 0 {
		return res.Variants
	}
	var vs []variant
	for _, k := range o.registries {
		vs = append(vs, variant{Name: k, Kind: k})
	}
	return vs
}

// report renders the figures as Markdown: one table per scale with a
// column per variant, throughput against the physical limits, the big
// blob, the time each run took, and the targets.
func report(o options, res *results) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	e := res.Env
	p("Run %s — %s CPUs (%s), %s RAM, kernel %s, load average at start %s\n\n", res.Date, e["nproc"], e["cpu"], e["mem"], e["kernel"], e["loadavg"])
	p("- %s\n- distribution: %s\n- berth commit: %s\n- berth collector process: `%s`\n- command: `%s`\n\n",
		e["go"], e["distribution"], e["berth_commit"], strings.Join(res.BerthGCCmd, " "), e["command"])
	p("Columns: distribution's collection is stop + `garbage-collect --delete-untagged` + restart. " +
		"\"berth gc process\" runs `berth gc --json` beside `berth serve` (whose workers are off); its reclaim runs from the process's start " +
		"until it has exited and serve reports 0 reviews due. \"berth serve workers\" restarts serve (which took the pushes with its workers off) " +
		"with its workers on; its reclaim runs from that start (exec, start-up included) until a worker has finished a whole run, 0 reviews are " +
		"due and no tombstone is left. Every column pushed its own copy of the dataset into fresh storage.\n\n")
	vs := columns(o, res)
	for _, m := range res.Scales {
		var cols []variant
		var rs []*regResult
		for _, v := range vs {
			if r := m[v.Name]; r != nil {
				cols, rs = append(cols, v), append(rs, r)
			}
		}
		if len(rs) == 0 {
			continue
		}
		dist := m[kindDist]
		p("### %d manifests (%d garbage operations, then %d more manifests deleted for the fixed-garbage step)\n\n", rs[0].Manifests, rs[0].GarbageOps, o.fixed)
		p("| metric |")
		for _, v := range cols {
			p(" %s |", v.label())
		}
		p("\n|---|%s\n", strings.Repeat("---:|", len(cols)))
		// row prints one metric; f returns the value and whether it applies.
		row := func(name, format string, f func(r *regResult) (float64, bool)) {
			p("| %s |", name)
			for _, r := range rs {
				v, ok := f(r)
				switch {
				case !ok:
					p(" – |")
				case (v == 0 || math.IsNaN(v) || math.IsInf(v, 0)) && len(r.Errors) > 0:
					p(" not measured |")
				case math.IsNaN(v) || math.IsInf(v, 0):
					p(" – |")
				default:
					p(" "+format+" |", v)
				}
			}
			p("\n")
		}
		all := func(g func(r *regResult) float64) func(r *regResult) (float64, bool) {
			return func(r *regResult) (float64, bool) { return g(r), true }
		}
		berth := func(g func(r *regResult) float64) func(r *regResult) (float64, bool) {
			return func(r *regResult) (float64, bool) { return g(r), r.Registry == kindBerth }
		}
		serve := func(g func(r *regResult) float64) func(r *regResult) (float64, bool) {
			return func(r *regResult) (float64, bool) { return g(r), r.Mode == modeServe }
		}
		process := func(g func(r *regResult) float64) func(r *regResult) (float64, bool) {
			return func(r *regResult) (float64, bool) {
				return g(r), r.Registry == kindBerth && r.Mode != modeServe && r.Reclaim.Own > 0
			}
		}
		// probed: the reclaim was probed (older results.json files probed
		// only a later, smaller collection).
		probed := func(g func(r *regResult) float64) func(r *regResult) (float64, bool) {
			return func(r *regResult) (float64, bool) {
				return g(r), r.ProbeReclaim.N+r.ProbeReclaim.Failures > 0
			}
		}
		text := func(name string, f func(r *regResult) string) {
			p("| %s |", name)
			for _, r := range rs {
				p(" %s |", f(r))
			}
			p("\n")
		}
		row("push throughput, images/s (8 clients)", "%.0f", all(func(r *regResult) float64 { return r.pushIPS() }))
		row("server CPU per pushed image, ms", "%.1f", all(func(r *regResult) float64 { return r.PushCPUms }))
		text("**time to reclaim 30 % garbage, s**", func(r *regResult) string {
			if r.Reclaim.TimedOut {
				return fmt.Sprintf("> %.2f (timed out, %d due)", r.Reclaim.Wall.Seconds(), r.Reclaim.DueAfter)
			}
			if r.Reclaim.Wall == 0 && len(r.Errors) > 0 {
				return "not measured"
			}
			return fmt.Sprintf("**%.2f**", r.Reclaim.Wall.Seconds())
		})
		if dist != nil {
			row("**reclaim speed-up over distribution** (its time ÷ this)", "**%.2f×**", berth(func(r *regResult) float64 {
				return dist.Reclaim.Wall.Seconds() / r.Reclaim.Wall.Seconds()
			}))
		}
		row("of which serve's start-up (exec → /v2/ answers), s", "%.2f", serve(func(r *regResult) float64 { return r.Reclaim.Start.Seconds() }))
		row("collector process alone, s", "%.2f", func(r *regResult) (float64, bool) {
			return r.Reclaim.Process.Seconds(), r.Mode != modeServe
		})
		row("collector's own time (`berth gc --json` duration), s", "%.2f", process(func(r *regResult) float64 { return r.Reclaim.Own.Seconds() }))
		row("reviews decided (serve mode: reviews claimed, its decision_seconds_count; process: with cascades)", "%.0f", berth(func(r *regResult) float64 { return float64(r.Reclaim.Reviews) }))
		row("objects deleted (tags, manifests, links, blobs, labels, markers…)", "%.0f", berth(func(r *regResult) float64 { return float64(r.Reclaim.objects()) }))
		row("**reclaim throughput, objects/s**", "**%.0f**", berth(func(r *regResult) float64 {
			return float64(r.Reclaim.objects()) / r.Reclaim.Wall.Seconds()
		}))
		row("manifest PUT p50 idle, ms", "%.1f", all(func(r *regResult) float64 { return r.ProbeIdle.P50ms }))
		row("manifest PUT p99 idle, ms", "%.1f", all(func(r *regResult) float64 { return r.ProbeIdle.P99ms }))
		row("manifest PUT p50 during the reclaim, ms", "%.1f", probed(func(r *regResult) float64 { return r.ProbeReclaim.P50ms }))
		row("**manifest PUT p99 during the reclaim, ms**", "**%.1f**", probed(func(r *regResult) float64 { return r.ProbeReclaim.P99ms }))
		row("**PUT p99 during the reclaim ÷ idle**", "**%.2f**", func(r *regResult) (float64, bool) {
			v, ok := probed(func(r *regResult) float64 { return r.ProbeReclaim.P99ms / r.ProbeIdle.P99ms })(r)
			return v, ok && r.Registry == kindBerth
		})
		text("probe PUTs during the reclaim: ok / **failed**", func(r *regResult) string {
			if r.ProbeReclaim.N+r.ProbeReclaim.Failures == 0 {
				return "–"
			}
			return fmt.Sprintf("%d / **%d**", r.ProbeReclaim.N, r.ProbeReclaim.Failures)
		})
		row("longest gap between successful probe PUTs during the reclaim, s", "%.2f", probed(func(r *regResult) float64 { return r.ProbeReclaim.MaxGapS }))
		row("unavailability, s (registry stopped)", "%.2f", all(func(r *regResult) float64 { return r.Reclaim.Unavail.Seconds() }))
		row("no-op collection, s (dist: gc alone; berth: as the reclaim)", "%.3f", all(func(r *regResult) float64 {
			if r.Registry == kindDist {
				return r.Noop.Process.Seconds()
			}
			return r.Noop.Wall.Seconds()
		}))
		row("no-op, collector's own time (`berth gc --json`), ms", "%.1f", process(func(r *regResult) float64 { return float64(r.Noop.Own.Microseconds()) / 1000 }))
		row(fmt.Sprintf("fixed garbage (%d manifests) collection, s (dist: gc alone; berth: as the reclaim)", o.fixed), "%.2f", all(func(r *regResult) float64 {
			if r.Registry == kindDist {
				return r.Fixed.Process.Seconds()
			}
			return r.Fixed.Wall.Seconds()
		}))
		row("collector peak RSS, MiB (reclaim; serve mode: serve's peak)", "%.0f", all(func(r *regResult) float64 { return mib(r.Reclaim.MaxRSSKB) }))
		row("collector peak RSS, MiB (no-op)", "%.0f", all(func(r *regResult) float64 { return mib(r.Noop.MaxRSSKB) }))
		row("collector peak RSS, MiB (fixed garbage)", "%.0f", all(func(r *regResult) float64 { return mib(r.Fixed.MaxRSSKB) }))
		text("serve RSS before / peak / after the reclaim, MiB", func(r *regResult) string {
			if r.Mode != modeServe {
				return "–"
			}
			return fmt.Sprintf("%.0f / %.0f / %.0f", mib(r.Reclaim.RSSBeforeKB), mib(r.Reclaim.MaxRSSKB), mib(r.Reclaim.RSSAfterKB))
		})
		row(fmt.Sprintf("collection of %d manifests under probe load, s", o.fixed), "%.2f", all(func(r *regResult) float64 { return r.Online.Wall.Seconds() }))
		text("probe PUTs during that collection: ok / failed; p99 ms", func(r *regResult) string {
			return fmt.Sprintf("%d / %d; %.1f", r.ProbeGC.N, r.ProbeGC.Failures, r.ProbeGC.P99ms)
		})
		row("pull throughput, images/s (8 clients, verified)", "%.0f", all(func(r *regResult) float64 { return r.pullIPS() }))
		row("server CPU per pulled image, ms", "%.1f", all(func(r *regResult) float64 { return r.PullCPUms }))
		row("storage before gc, MB", "%.1f", all(func(r *regResult) float64 { return float64(r.BytesBefore) / 1e6 }))
		row("storage after gc, MB", "%.1f", all(func(r *regResult) float64 { return float64(r.BytesAfter) / 1e6 }))
		row("blob requests retried after a 5xx (client)", "%.0f", all(func(r *regResult) float64 { return float64(r.Transient) }))
		row("server peak RSS, MiB", "%.0f", all(func(r *regResult) float64 { return mib(r.ServerHWMKB) }))
		row("this column's run, end to end, s", "%.0f", func(r *regResult) (float64, bool) { return r.TotalSeconds, r.TotalSeconds > 0 })
		for _, r := range rs {
			if r.Registry == kindBerth {
				p("\n%s: deleted %v in the reclaim, %d bytes freed; %d reviews in the fixed-garbage run.\n", cmp.Or(r.Variant, r.Registry), r.Reclaim.Deleted, r.Reclaim.Freed, r.Fixed.Reviews)
			}
			for _, e := range r.Errors {
				p("\n**%s error:** %s\n", cmp.Or(r.Variant, r.Registry), e)
			}
		}
		p("\n")
	}
	p("%s", throughput(res, vs))
	if len(res.Big) > 0 {
		p("### Big blob (%d MiB, one push, then %d clients pull it at once)\n\n| registry | push MB/s | pull MB/s (aggregate) |\n|---|---:|---:|\n", o.bigMiB, o.clients)
		for _, x := range res.Big {
			p("| %s | %.0f | %.0f |\n", x.Registry, x.PushMBps, x.PullMBps)
		}
		p("\n")
	}
	p("%s", durations(res, vs))
	p("%s", targets(o, res, vs))
	if len(res.Scales) > 0 {
		p("![reclaim time vs registry size](gc-time.png)\n")
	}
	return b.String()
}

// throughput sets each berth reclaim's objects per second beside the
// physical limits measured on the same machine in the same run.
func throughput(res *results, vs []variant) string {
	if len(res.Limits) == 0 {
		return ""
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("### Collection throughput against this machine's physical limits\n\n")
	p("Limits (`berth-bench limits`, same run): a SQL row is a row of a table shaped like berth's (text primary key, one secondary index); "+
		"files are 2 KiB, laid out like berth's blobs.\n\n%s\n", limitsTable(res.Limits))
	p("The floor is what the same deletions cost at the fastest rates measured: every object a SQL row deleted at the SQL limit, " +
		"plus every blob's bytes deleted at the byte-store limit.\n\n")
	p("| berth | manifests | objects deleted | of which blobs | reclaim s | objects/s | fastest SQL deletes, rows/s | fastest byte deletes, objects/s | floor, s | reclaim ÷ floor |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range res.Scales {
		for _, v := range vs {
			r := m[v.Name]
			if r == nil || v.Kind != kindBerth || r.Reclaim.Wall == 0 {
				continue
			}
			sqlBackend, byteBackend := dbSQLite, "fs"
			switch v.DB {
			case dbPostgres:
				sqlBackend = dbPostgres
			case dbPGS3:
				sqlBackend, byteBackend = dbPostgres, "s3"
			}
			cell := func(backend string) (string, float64) {
				l, ok := bestLimit(res.Limits, backend)
				if !ok {
					return "not measured", math.NaN()
				}
				return fmt.Sprintf("%.0f (%s: %s, batch %d)", l.perSecond(), backend, l.What, l.Batch), l.perSecond()
			}
			sl, sr := cell(sqlBackend)
			bl, br := cell(byteBackend)
			objs, blobs := r.Reclaim.objects(), r.Reclaim.Deleted["blob"]
			floor := float64(objs)/sr + float64(blobs)/br
			p("| %s | %d | %d | %d | %.2f | %.0f | %s | %s | %.3f | %.0f× |\n", v.label(), r.Manifests, objs, blobs,
				r.Reclaim.Wall.Seconds(), float64(objs)/r.Reclaim.Wall.Seconds(), sl, bl, floor, r.Reclaim.Wall.Seconds()/floor)
		}
	}
	p("\n")
	return b.String()
}

// durations is how long each run took end to end, and what that makes of
// larger scales: pushes dominate, and they are linear in the manifests.
func durations(res *results, vs []variant) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("### How long the runs took\n\n| column | manifests | push, s | whole run, s | whole run at 10k (linear), min | at 50k (linear), min |\n|---|---:|---:|---:|---:|---:|\n")
	total := 0.0
	for _, m := range res.Scales {
		for _, v := range vs {
			r := m[v.Name]
			if r == nil {
				continue
			}
			total += r.TotalSeconds
			k := func(n int) float64 { return r.TotalSeconds * float64(n) / float64(r.Manifests) / 60 }
			p("| %s | %d | %.0f | %.0f | %.0f | %.0f |\n", v.label(), r.Manifests, r.PushSeconds, r.TotalSeconds, k(10000), k(50000))
		}
	}
	p("\nAll runs: %.0f s. The extrapolation scales each run linearly with the manifests it pushed; collections that grow with the registry (distribution's) make the real figure larger.\n\n", total)
	return b.String()
}

// targets evaluates each berth column against the goals of issue 12. A
// scale where a run failed has no figures beyond that point: targets
// needing them say so instead of passing.
func targets(o options, res *results, vs []variant) string {
	if len(res.Scales) == 0 {
		return ""
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	p("### Targets (issue 12)\n\n| berth | target | measured | verdict |\n|---|---|---|---|\n")
	first, last := res.Scales[0], res.Scales[len(res.Scales)-1]
	for _, v := range vs {
		if v.Kind != kindBerth {
			continue
		}
		var speed []string
		okSpeed, anySpeed := true, false
		var put []string
		okPut, anyPut := true, false
		for _, m := range res.Scales {
			r, d := m[v.Name], m[kindDist]
			if r == nil {
				continue
			}
			if d != nil {
				anySpeed = true
				if len(r.Errors) > 0 || r.Reclaim.Wall == 0 || len(d.Errors) > 0 {
					okSpeed = false
					speed = append(speed, fmt.Sprintf("not measured at %d", r.Manifests))
				} else {
					x := d.Reclaim.Wall.Seconds() / r.Reclaim.Wall.Seconds()
					okSpeed = okSpeed && x >= 10
					speed = append(speed, fmt.Sprintf("%.2f× at %d (%.2f s vs %.2f s)", x, r.Manifests, r.Reclaim.Wall.Seconds(), d.Reclaim.Wall.Seconds()))
				}
			}
			if r.ProbeReclaim.N > 0 {
				anyPut = true
				x := r.ProbeReclaim.P99ms / r.ProbeIdle.P99ms
				okPut = okPut && x <= 1.25 && r.ProbeReclaim.Failures == 0
				put = append(put, fmt.Sprintf("%.2f× at %d (%.1f vs %.1f ms idle), %d of %d failed", x, r.Manifests,
					r.ProbeReclaim.P99ms, r.ProbeIdle.P99ms, r.ProbeReclaim.Failures, r.ProbeReclaim.N+r.ProbeReclaim.Failures))
			}
		}
		if anySpeed {
			p("| %s | reclaim 30 %% ≥10× faster than distribution (stop + gc + restart) | %s | %s |\n", v.label(), strings.Join(speed, "; "), mark(okSpeed))
		}
		if anyPut {
			p("| %s | manifest PUT p99 during the reclaim ≤1.25× idle, no failed request | %s | %s |\n", v.label(), strings.Join(put, "; "), mark(okPut))
		}
		f, l := first[v.Name], last[v.Name]
		if f == nil || l == nil {
			continue
		}
		if len(res.Scales) > 1 {
			if len(l.Errors) > 0 || len(f.Errors) > 0 {
				p("| %s | fixed garbage flat against %.0f× live data (≤1.2×) | not measured: %s | **missed** (not reached) |\n",
					v.label(), float64(l.Manifests)/float64(f.Manifests), strings.Join(append(f.Errors, l.Errors...), "; "))
			} else {
				x := l.Fixed.Wall.Seconds() / f.Fixed.Wall.Seconds()
				p("| %s | fixed garbage (%d manifests) flat against %.0f× live data (≤1.2×) | %.2f s at %d → %.2f s at %d: %.2f× | %s |\n",
					v.label(), o.fixed, float64(l.Manifests)/float64(f.Manifests), f.Fixed.Wall.Seconds(), f.Manifests, l.Fixed.Wall.Seconds(), l.Manifests, x, mark(x <= 1.2))
				y := float64(l.Reclaim.MaxRSSKB) / float64(f.Reclaim.MaxRSSKB)
				p("| %s | collector RSS flat (≤1.2×) | reclaim peak %.0f MiB at %d → %.0f MiB at %d: %.2f× | %s |\n",
					v.label(), mib(f.Reclaim.MaxRSSKB), f.Manifests, mib(l.Reclaim.MaxRSSKB), l.Manifests, y, mark(y <= 1.2))
			}
		}
		if len(l.Errors) == 0 {
			if v.Mode == modeServe {
				p("| %s | no-op collection under 50 ms at %d | %.0f ms from serve's exec (start-up %.0f ms included; 50 ms polling) | %s |\n",
					v.label(), l.Manifests, float64(l.Noop.Wall.Milliseconds()), float64(l.Noop.Start.Milliseconds()), mark(l.Noop.Wall < 50*time.Millisecond))
			} else {
				p("| %s | no-op collection under 50 ms at %d | collector's own %.1f ms; process %.0f ms (start-up, opening the stores) | %s |\n",
					v.label(), l.Manifests, float64(l.Noop.Own.Microseconds())/1000, float64(l.Noop.Process.Milliseconds()), mark(l.Noop.Own > 0 && l.Noop.Own < 50*time.Millisecond))
			}
			if l.Reclaim.Wall > 0 {
				p("| %s | collection throughput at %d | %.0f objects/s | reported |\n", v.label(), l.Manifests, float64(l.Reclaim.objects())/l.Reclaim.Wall.Seconds())
			}
		}
	}
	p("\n")
	return b.String()
}

// plotGC draws the time to reclaim 30 % garbage against registry size, one
// line per column: distribution in black, berth's backends in colours,
// process mode solid, serve mode dashed.
func plotGC(res *results, vs []variant, path string) error {
	pl := plot.New()
	pl.Title.Text = "Time to reclaim 30 % garbage vs registry size"
	pl.X.Label.Text = "manifests in the registry"
	pl.Y.Label.Text = "seconds"
	if len(res.Scales) > 1 {
		pl.X.Scale = plot.LogScale{}
		pl.X.Tick.Marker = plot.LogTicks{Prec: -1}
		pl.Y.Scale = plot.LogScale{}
		pl.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	colours := map[string]color.RGBA{
		"":         {30, 90, 200, 255},
		dbSQLite:   {30, 90, 200, 255},
		dbPostgres: {30, 160, 80, 255},
		dbPGS3:     {220, 130, 20, 255},
	}
	for _, v := range vs {
		var xy plotter.XYs
		for _, m := range res.Scales {
			// A timed-out reclaim is plotted at its timeout: a lower bound.
			if r := m[v.Name]; r != nil && r.Reclaim.Wall > 0 && (len(r.Errors) == 0 || r.Reclaim.TimedOut) {
				xy = append(xy, plotter.XY{X: float64(r.Manifests), Y: max(r.Reclaim.Wall.Seconds(), 0.001)})
			}
		}
		if len(xy) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		c := colours[v.DB]
		name := v.label()
		if v.Kind == kindDist {
			c = color.RGBA{0, 0, 0, 255}
			name = "distribution: stop + gc + restart"
		}
		l.Color, pts.Color = c, c
		if v.Mode == modeServe {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			pts.Shape = draw.BoxGlyph{}
		}
		pl.Add(l, pts)
		pl.Legend.Add(name, l, pts)
	}
	pl.Legend.Top = true
	pl.Legend.Left = true
	return pl.Save(8*vg.Inch, 5*vg.Inch, path)
}
