package main

import (
	"bufio"
	"fmt"
	"image/color"
	"os"
	"os/exec"
	"runtime"
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
		row := func(name string, dv, bv float64, format string) {
			p("| %s | "+format+" | "+format+" | %s |\n", name, dv, bv, ratio(bv, dv))
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

// targets evaluates berth against the goals of issue 5.
func targets(o options, res *results) string {
	if len(res.Scales) == 0 {
		return ""
	}
	first, last := res.Scales[0], res.Scales[len(res.Scales)-1]
	bl, dl, bf := last[kindBerth], last[kindDist], first[kindBerth]
	if bl == nil || bf == nil {
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
	if dl != nil {
		r := dl.Reclaim.Process.Seconds() / bl.Reclaim.Wall.Seconds()
		p("| collection ≥10× faster than distribution at %d manifests | distribution gc %.2fs (stop+gc+restart %.2fs) vs berth %.2fs: %.1f× (%.1f× vs stop+gc+restart) | %s |\n",
			bl.Manifests, dl.Reclaim.Process.Seconds(), dl.Reclaim.Wall.Seconds(), bl.Reclaim.Wall.Seconds(), r, dl.Reclaim.Wall.Seconds()/bl.Reclaim.Wall.Seconds(), mark(r >= 10))
	}
	if len(res.Scales) > 1 {
		r := bl.Fixed.Process.Seconds() / bf.Fixed.Process.Seconds()
		p("| collection time flat as live data grows %.0f× with the same garbage (%d manifests) | %.2fs at %d → %.2fs at %d: %.2f× | %s |\n",
			float64(bl.Manifests)/float64(bf.Manifests), o.fixed, bf.Fixed.Process.Seconds(), bf.Manifests, bl.Fixed.Process.Seconds(), bl.Manifests, r, mark(r <= 1.5))
	}
	worst := 0.0
	var noops []string
	for _, m := range res.Scales {
		if x := m[kindBerth]; x != nil {
			worst = max(worst, x.Noop.Process.Seconds())
			noops = append(noops, fmt.Sprintf("%.2fs at %d", x.Noop.Process.Seconds(), x.Manifests))
		}
	}
	p("| no-op collection under 1 s at every scale | %s | %s |\n", strings.Join(noops, ", "), mark(worst < 1))
	if len(res.Scales) > 1 {
		r := float64(bl.Reclaim.MaxRSSKB) / float64(bf.Reclaim.MaxRSSKB)
		p("| collector RSS flat | reclaim %.0f → %.0f MiB (%.2f×), no-op %.0f → %.0f MiB | %s |\n",
			mib(bf.Reclaim.MaxRSSKB), mib(bl.Reclaim.MaxRSSKB), r, mib(bf.Noop.MaxRSSKB), mib(bl.Noop.MaxRSSKB), mark(r <= 1.5))
	}
	fails, n := 0, 0
	worstP99 := 0.0
	var p99s []string
	for _, m := range res.Scales {
		if x := m[kindBerth]; x != nil {
			fails += x.ProbeGC.Failures
			n += x.ProbeGC.N
			if x.ProbeIdle.P99ms > 0 {
				worstP99 = max(worstP99, x.ProbeGC.P99ms/x.ProbeIdle.P99ms)
			}
			p99s = append(p99s, fmt.Sprintf("%.1f/%.1f ms (n=%d) at %d", x.ProbeGC.P99ms, x.ProbeIdle.P99ms, x.ProbeGC.N, x.Manifests))
		}
	}
	p("| zero unavailability | %d of %d probe pushes during collection failed; registry never stopped | %s |\n", fails, n+fails, mark(fails == 0 && n > 0))
	p("| manifest PUT p99 while collecting ≤ 1.25× idle | collecting/idle: %s; worst %.2f× | %s |\n", strings.Join(p99s, ", "), worstP99, mark(worstP99 <= 1.25))
	if dl != nil {
		pr := bl.pushIPS() / dl.pushIPS()
		lr := bl.pullIPS() / dl.pullIPS()
		p("| push throughput ≥1.5× distribution | %.0f vs %.0f images/s at %d: %.2f× | %s |\n", bl.pushIPS(), dl.pushIPS(), bl.Manifests, pr, mark(pr >= 1.5))
		p("| pull throughput ≥1.5× distribution | %.0f vs %.0f images/s at %d: %.2f× | %s |\n", bl.pullIPS(), dl.pullIPS(), bl.Manifests, lr, mark(lr >= 1.5))
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
			p("| big-blob pull ≥1.5× distribution | %.0f vs %.0f MB/s: %.2f× | %s |\n", bb.PullMBps, db.PullMBps, r, mark(r >= 1.5))
		}
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
		{"berth: reclaim online (30% garbage)", kindBerth, func(r *regResult) float64 { return r.Reclaim.Wall.Seconds() }, color.RGBA{30, 90, 200, 255}, false},
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
			if r := m[s.kind]; r != nil && len(r.Errors) == 0 {
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
	pl.Legend.Top = true
	pl.Legend.Left = true
	return pl.Save(8*vg.Inch, 5*vg.Inch, path)
}
