package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/berth/berth/internal/bytesize"
)

// isTerminal reports whether w is a terminal, so progress lines and
// confirmations are only used with a human watching. Without
// golang.org/x/term it checks for a character device other than
// /dev/null (the stdin of cron jobs, CI and go test).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}

// progressLine rewrites one status line on a terminal; on anything else it
// writes nothing.
type progressLine struct {
	w    io.Writer
	on   bool
	last time.Time
	used bool
}

func newProgress(w io.Writer) *progressLine { return &progressLine{w: w, on: isTerminal(w)} }

// show replaces the line, at most ten times a second.
func (p *progressLine) show(format string, args ...any) {
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.used = time.Now(), true
	fmt.Fprintf(p.w, "\r\033[K"+format, args...)
}

// done clears the line.
func (p *progressLine) done() {
	if p.used {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// printJSON writes v indented, for scripts.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns; rows are tab-separated.
func table(w io.Writer, rows ...string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, r)
	}
	return tw.Flush()
}

// humanBytes formats n in IEC units ("1.5 MiB"), as every part of berth does.
func humanBytes(n int64) string { return bytesize.Format(n) }

// humanTime formats t in UTC, or "-" for nil.
func humanTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// roundDuration keeps a duration readable.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	default:
		return d.Round(time.Microsecond)
	}
}
