package main

import (
	"bufio"
	"fmt"
	"image/color"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
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

func secs(g gcRun) string {
	if g.TimedOut {
		return fmt.Sprintf("> %.0f (timed out)", g.Wall.Seconds())
	}
	return fmt.Sprintf("%.2f", g.Wall.Seconds())
}

func ratio(b, d float64) string {
	if d == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", b/d)
}

func mib(kb int64) float64 { return float64(kb) / 1024 }

// report renders the figures as Markdown: one table per scale with
// berth/distribution ratios, the big blob, and the targets.
func report(o options, res *results) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	e := res.Env
	p("Run %s — %s CPUs (%s), %s RAM, kernel %s, load average at start %s\n\n", res.Date, e["nproc"], e["cpu"], e["mem"], e["kernel"], e["loadavg"])
	p("- %s\n- distribution: %s\n- berth commit: %s\n- berth collector process: `%s`\n- command: `%s`\n\n",
		e["go"], e["distribution"], e["berth_commit"], strings.Join(res.BerthGCCmd, " "), e["command"])
	for _, m := range res.Scales {
		d, bt := m[kindDist], m[kindBerth]
		var any *regResult
		for _, k := range o.registries {
			if m[k] != nil {
				any = m[k]
				break
			}
		}
		if any == nil {
			continue
		}
		if d == nil {
			d = &regResult{}
		}
		if bt == nil {
			bt = &regResult{}
		}
		p("### %d manifests (%d garbage operations, then %d more manifests deleted for the fixed-garbage step)\n\n", any.Manifests, any.GarbageOps, o.fixed)
		p("| metric | distribution | berth | berth/distribution |\n|---|---:|---:|---:|\n")
		cell := func(r *regResult, v float64, format string) string {
			if (v == 0 || math.IsNaN(v)) && len(r.Errors) > 0 {
				return "not measured"
			}
			return fmt.Sprintf(format, v)
		}
		row := func(name string, dv, bv float64, format string) {
			rt := ratio(bv, dv)
			if math.IsNaN(bv) || math.IsNaN(dv) {
				rt = "–"
			}
			p("| %s | %s | %s | %s |\n", name, cell(d, dv, format), cell(bt, bv, format), rt)
		}
		row("push throughput, images/s (8 clients)", d.pushIPS(), bt.pushIPS(), "%.0f")
		row("server CPU per pushed image, ms", d.PushCPUms, bt.PushCPUms, "%.1f")
		if bt.Reclaim.TimedOut {
			p("| time to reclaim, s (dist: stop+gc+restart; berth: gc start → 0 due) | %s | %s (%d reviews still due) | > %.2f |\n", secs(d.Reclaim), secs(bt.Reclaim), bt.Reclaim.DueAfter, bt.Reclaim.Wall.Seconds()/d.Reclaim.Wall.Seconds())
		} else {
			row("time to reclaim, s (dist: stop+gc+restart; berth: gc start → 0 due)", d.Reclaim.Wall.Seconds(), bt.Reclaim.Wall.Seconds(), "%.2f")
		}
		row("collector process alone, s", d.Reclaim.Process.Seconds(), bt.Reclaim.Process.Seconds(), "%.2f")
		row("no-op collection, s (collector process)", d.Noop.Process.Seconds(), bt.Noop.Process.Seconds(), "%.2f")
		row(fmt.Sprintf("fixed garbage (%d manifests) collection, s (collector process)", o.fixed), d.Fixed.Process.Seconds(), bt.Fixed.Process.Seconds(), "%.2f")
		row("collector peak RSS, MiB (reclaim)", mib(d.Reclaim.MaxRSSKB), mib(bt.Reclaim.MaxRSSKB), "%.0f")
		row("collector peak RSS, MiB (no-op)", mib(d.Noop.MaxRSSKB), mib(bt.Noop.MaxRSSKB), "%.0f")
		row("collector peak RSS, MiB (fixed garbage)", mib(d.Fixed.MaxRSSKB), mib(bt.Fixed.MaxRSSKB), "%.0f")
		row(fmt.Sprintf("collection of %d manifests under probe load, s", o.fixed), d.Online.Wall.Seconds(), bt.Online.Wall.Seconds(), "%.2f")
		row("unavailability, s (registry stopped)", d.Reclaim.Unavail.Seconds(), bt.Reclaim.Unavail.Seconds(), "%.2f")
		p("| probe manifest PUTs during that collection: ok / failed | %d / %d | %d / %d | |\n",
			d.ProbeGC.N, d.ProbeGC.Failures, bt.ProbeGC.N, bt.ProbeGC.Failures)
		row("longest gap between successful probe pushes, s", d.ProbeGC.MaxGapS, bt.ProbeGC.MaxGapS, "%.2f")
		row("manifest PUT p50 idle, ms", d.ProbeIdle.P50ms, bt.ProbeIdle.P50ms, "%.1f")
		row("manifest PUT p99 idle, ms", d.ProbeIdle.P99ms, bt.ProbeIdle.P99ms, "%.1f")
		row("manifest PUT p50 while collecting, ms", d.ProbeGC.P50ms, bt.ProbeGC.P50ms, "%.1f")
		row("manifest PUT p99 while collecting, ms", d.ProbeGC.P99ms, bt.ProbeGC.P99ms, "%.1f")
		row("pull throughput, images/s (8 clients, verified)", d.pullIPS(), bt.pullIPS(), "%.0f")
		row("server CPU per pulled image, ms", d.PullCPUms, bt.PullCPUms, "%.1f")
		row("pull throughput, MB/s (small images)", float64(d.PullBytes)/1e6/d.PullSeconds, float64(bt.PullBytes)/1e6/bt.PullSeconds, "%.1f")
		row("storage before gc, MB", float64(d.BytesBefore)/1e6, float64(bt.BytesBefore)/1e6, "%.1f")
		row("storage after gc, MB", float64(d.BytesAfter)/1e6, float64(bt.BytesAfter)/1e6, "%.1f")
		row("blob requests retried after a 5xx (client)", float64(d.Transient), float64(bt.Transient), "%.0f")
		row("server peak RSS, MiB", mib(d.ServerHWMKB), mib(bt.ServerHWMKB), "%.0f")
		p("\nberth collector: %d reviews decided in the reclaim run, deleted %v, %d bytes freed; %d in the fixed-garbage run.\n", bt.Reclaim.Reviews, bt.Reclaim.Deleted, bt.Reclaim.Freed, bt.Fixed.Reviews)
		for _, r := range []*regResult{d, bt} {
			for _, e := range r.Errors {
				p("\n**%s error:** %s\n", r.Registry, e)
			}
		}
		p("\n")
	}
	if len(res.Big) > 0 {
		p("### Big blob (%d MiB, one push, then %d clients pull it at once)\n\n| registry | push MB/s | pull MB/s (aggregate) |\n|---|---:|---:|\n", o.bigMiB, o.clients)
		for _, x := range res.Big {
			p("| %s | %.0f | %.0f |\n", x.Registry, x.PushMBps, x.PullMBps)
		}
		p("\n")
	}
	p("%s", targets(o, res))
	return b.String()
}

// targets evaluates berth against the goals of issue 5. A scale where a
// registry's run failed (e.g. its collector timed out) has no figures
// beyond that point: targets needing them say so instead of passing.
func targets(o options, res *results) string {
	type pair struct{ b, d *regResult }
	var all, done []pair
	for _, m := range res.Scales {
		x := pair{m[kindBerth], m[kindDist]}
		if x.b == nil {
			continue
		}
		all = append(all, x)
		if len(x.b.Errors) == 0 && (x.d == nil || len(x.d.Errors) == 0) {
			done = append(done, x)
		}
	}
	if len(all) == 0 {
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
	p("### Targets (berth)\n\n| target | measured | verdict |\n|---|---|---|\n")
	last := all[len(all)-1]
	if d := last.d; d != nil {
		bw := last.b.Reclaim.Wall.Seconds()
		gt := ""
		if last.b.Reclaim.TimedOut {
			gt = "> "
		}
		r := d.Reclaim.Process.Seconds() / bw
		p("| collection ≥10× faster than distribution at %d manifests | distribution gc %.1fs (stop+gc+restart %.1fs) vs berth %s%.1fs: berth %s%.2f× distribution's time | %s |\n",
			last.b.Manifests, d.Reclaim.Process.Seconds(), d.Reclaim.Wall.Seconds(), gt, bw, gt, 1/r, mark(r >= 10 && gt == ""))
	}
	notMeasured := func(name string, x pair) {
		p("| %s | not measured at %d: berth's reclaim there did not finish (%s) | **missed** (not reached) |\n", name, x.b.Manifests, strings.Join(x.b.Errors, "; "))
	}
	if len(all) > 1 {
		f, l := all[0], last
		if len(l.b.Errors) > 0 {
			notMeasured(fmt.Sprintf("collection time flat as live data grows %.0f× with the same garbage (%d manifests)", float64(l.b.Manifests)/float64(f.b.Manifests), o.fixed), l)
		} else {
			r := l.b.Fixed.Process.Seconds() / f.b.Fixed.Process.Seconds()
			p("| collection time flat as live data grows %.0f× with the same garbage (%d manifests) | %.2fs at %d → %.2fs at %d: %.2f× | %s |\n",
				float64(l.b.Manifests)/float64(f.b.Manifests), o.fixed, f.b.Fixed.Process.Seconds(), f.b.Manifests, l.b.Fixed.Process.Seconds(), l.b.Manifests, r, mark(r <= 1.5))
		}
	}
	worst, complete := 0.0, true
	var noops []string
	for _, x := range all {
		if len(x.b.Errors) > 0 {
			complete = false
			noops = append(noops, fmt.Sprintf("not measured at %d", x.b.Manifests))
			continue
		}
		worst = max(worst, x.b.Noop.Process.Seconds())
		noops = append(noops, fmt.Sprintf("%.2fs at %d", x.b.Noop.Process.Seconds(), x.b.Manifests))
	}
	verdict := mark(worst < 1)
	if worst < 1 && !complete {
		verdict = "met where measured"
	}
	p("| no-op collection under 1 s at every scale | %s | %s |\n", strings.Join(noops, ", "), verdict)
	if len(all) > 1 {
		f, l := all[0], last
		r := float64(l.b.Reclaim.MaxRSSKB) / float64(f.b.Reclaim.MaxRSSKB)
		note := ""
		if l.b.Reclaim.TimedOut {
			note = " (at the larger scale until the timeout)"
		}
		p("| collector RSS flat | reclaim %.0f MiB at %d → %.0f MiB at %d%s: %.2f× | %s |\n",
			mib(f.b.Reclaim.MaxRSSKB), f.b.Manifests, mib(l.b.Reclaim.MaxRSSKB), l.b.Manifests, note, r, mark(r <= 1.5))
	}
	fails, n := 0, 0
	worstP99 := 0.0
	var p99s []string
	for _, x := range all {
		if x.b.ProbeGC.N == 0 {
			continue
		}
		fails += x.b.ProbeGC.Failures
		n += x.b.ProbeGC.N
		worstP99 = max(worstP99, x.b.ProbeGC.P99ms/x.b.ProbeIdle.P99ms)
		p99s = append(p99s, fmt.Sprintf("%.1f ms collecting vs %.1f ms idle (n=%d) at %d", x.b.ProbeGC.P99ms, x.b.ProbeIdle.P99ms, x.b.ProbeGC.N, x.b.Manifests))
	}
	if n > 0 {
		p("| zero unavailability | %d of %d probe manifest PUTs during collection failed; the registry never stopped | %s |\n", fails, n+fails, mark(fails == 0))
		p("| manifest PUT p99 while collecting ≤ 1.25× idle | %s: %.1f× | %s |\n", strings.Join(p99s, ", "), worstP99, mark(worstP99 <= 1.25))
	}
	for _, x := range slices.Backward(all) {
		if x.d == nil {
			continue
		}
		pr := x.b.pushIPS() / x.d.pushIPS()
		p("| push throughput ≥1.5× distribution | %.1f vs %.1f images/s at %d: %.2f× | %s |\n", x.b.pushIPS(), x.d.pushIPS(), x.b.Manifests, pr, mark(pr >= 1.5))
		break
	}
	for _, x := range slices.Backward(done) {
		if x.d == nil {
			continue
		}
		lr := x.b.pullIPS() / x.d.pullIPS()
		p("| pull throughput ≥1.5× distribution (small images) | %.0f vs %.0f images/s at %d: %.2f× | %s |\n", x.b.pullIPS(), x.d.pullIPS(), x.b.Manifests, lr, mark(lr >= 1.5))
		break
	}
	var bb, db *bigResult
	for i := range res.Big {
		switch res.Big[i].Registry {
		case kindBerth:
			bb = &res.Big[i]
		case kindDist:
			db = &res.Big[i]
		}
	}
	if bb != nil && db != nil {
		r := bb.PullMBps / db.PullMBps
		p("| pull throughput ≥1.5× distribution (%d MiB blob, MB/s) | %.0f vs %.0f MB/s: %.2f× | %s |\n", o.bigMiB, bb.PullMBps, db.PullMBps, r, mark(r >= 1.5))
	}
	p("\n")
	return b.String()
}

// plotGC draws collection time against registry size for both registries.
func plotGC(res *results, fixed int, path string) error {
	pl := plot.New()
	pl.Title.Text = "Garbage collection time vs registry size"
	pl.X.Label.Text = "manifests in the registry"
	pl.Y.Label.Text = "seconds"
	series := []struct {
		name string
		kind string
		val  func(r *regResult) float64
		col  color.RGBA
		dash bool
	}{
		{"distribution: stop + gc + restart (30% garbage)", kindDist, func(r *regResult) float64 { return r.Reclaim.Wall.Seconds() }, color.RGBA{200, 40, 40, 255}, false},
		{fmt.Sprintf("distribution: gc (%d manifests of garbage)", fixed), kindDist, func(r *regResult) float64 { return r.Fixed.Process.Seconds() }, color.RGBA{200, 40, 40, 255}, true},
		{"berth: reclaim online (30% garbage; a timed-out run is plotted at its timeout, a lower bound)", kindBerth, func(r *regResult) float64 { return r.Reclaim.Wall.Seconds() }, color.RGBA{30, 90, 200, 255}, false},
		{fmt.Sprintf("berth: gc (%d manifests of garbage)", fixed), kindBerth, func(r *regResult) float64 { return r.Fixed.Process.Seconds() }, color.RGBA{30, 90, 200, 255}, true},
		{"berth: no-op gc", kindBerth, func(r *regResult) float64 { return r.Noop.Process.Seconds() }, color.RGBA{30, 160, 80, 255}, true},
	}
	if len(res.Scales) > 1 {
		pl.X.Scale = plot.LogScale{}
		pl.X.Tick.Marker = plot.LogTicks{Prec: -1}
		pl.Y.Scale = plot.LogScale{}
		pl.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	for _, s := range series {
		var xy plotter.XYs
		for _, m := range res.Scales {
			if r := m[s.kind]; r != nil && (len(r.Errors) == 0 || (s.kind == kindBerth && strings.HasPrefix(s.name, "berth: reclaim") && r.Reclaim.TimedOut)) {
				xy = append(xy, plotter.XY{X: float64(r.Manifests), Y: max(s.val(r), 0.001)})
			}
		}
		if len(xy) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		l.Color, pts.Color = s.col, s.col
		if s.dash {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		pl.Add(l, pts)
		pl.Legend.Add(s.name, l, pts)
	}
	pl.Legend.Top = false
	pl.Legend.Left = false
	return pl.Save(8*vg.Inch, 5*vg.Inch, path)
}
