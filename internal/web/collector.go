package web

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/bytesize"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/review"
)

// The collector page (GET /-/collector[?reclaimable=1]), for registry
// administrators: the review queue (gc.Status: a few counting reads), the
// bytes reclaimable now only when asked (a dry run in a read-only
// transaction), and what this process's collector did lately
// (gc.Collector.Activity, kept in memory: a replica shows its own).

// collectorView is the collector page's data.
type collectorView struct {
	// None: this server was built without a collector.
	None bool
	// Workers is the background collector's workers in this process; 0:
	// it runs none.
	Workers int
	Status  gc.Status
	// ReclaimableHref asks for the bytes reclaimable now.
	ReclaimableHref string
	Since           time.Time
	Totals          gc.ActivityTotals
	Throughput      throughputView
	Runs            []runRow
	Deletions       []deletionRow
	Errors          []gc.ErrorRecord
	MaxDeletions    int
	MaxRuns         int
	MaxErrors       int
}

type throughputView struct {
	Window  string
	Objects string
	Bytes   string
}

// runRow is one run of the collector.
type runRow struct {
	Start      time.Time
	Duration   string
	Reviews    int
	Deleted    string
	BytesFreed int64
	TagsEnded  int
	Errors     int
	Error      string
}

// deletionRow is one deletion.
type deletionRow struct {
	At   time.Time
	Kind review.Kind
	// Object names what was deleted; Digest is its full digest, if any.
	Object string
	Digest string
	Reason string
	Cause  string
	Bytes  int64
}

// collector serves GET /-/collector. With ?reclaimable=1 it also runs the
// dry run that computes the bytes a collection would free now; the page
// never runs it unasked.
func (h *Handler) collector(w http.ResponseWriter, r *http.Request) error {
	if err := h.authorize(r, auth.RegistryNeed(auth.RegistryAdmin)); err != nil {
		return err
	}
	reclaimable := false
	if s := r.URL.Query().Get("reclaimable"); s != "" {
		var err error
		if reclaimable, err = strconv.ParseBool(s); err != nil {
			return fmt.Errorf("?reclaimable=%q: want 1 or 0: %w", s, errBadForm)
		}
	}
	c := h.opts.Collector
	view := collectorView{None: c == nil, Workers: h.opts.CollectorWorkers, ReclaimableHref: "/-/collector?reclaimable=1",
		MaxDeletions: gc.ActivityDeletions, MaxRuns: gc.ActivityRuns, MaxErrors: gc.ActivityErrors}
	if c == nil {
		return h.render(w, r, http.StatusOK, "collector", view)
	}
	st, err := c.Status(r.Context(), reclaimable)
	if err != nil {
		return fmt.Errorf("reading the collector's status: %w", err)
	}
	a := c.Activity()
	view.Status, view.Since, view.Totals, view.Errors = st, a.Since, a.Totals, a.Errors
	view.Throughput = throughputView{Window: a.Throughput.Window.Round(time.Second).String(),
		Objects: strconv.FormatFloat(a.Throughput.Objects, 'f', 2, 64),
		Bytes:   bytesize.Format(int64(a.Throughput.Bytes)) + "/s"}
	for _, run := range a.Runs {
		view.Runs = append(view.Runs, runRow{Start: run.Start, Duration: run.Duration.Round(time.Millisecond).String(),
			Reviews: run.Reviews, Deleted: deletedWords(run.Deleted), BytesFreed: run.BytesFreed, TagsEnded: run.TagsEnded,
			Errors: run.Errors, Error: run.Error})
	}
	for _, d := range a.Deletions {
		view.Deletions = append(view.Deletions, deletionRowOf(d))
	}
	return h.render(w, r, http.StatusOK, "collector", view)
}

// deletedWords says what a run deleted: "2 blob, 1 manifest, 1 tag", by
// kind name.
func deletedWords(n map[review.Kind]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		if n[k] > 0 {
			parts = append(parts, strconv.Itoa(n[k])+" "+strings.ReplaceAll(string(k), "_", " "))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// deletionRowOf names a deletion's object as people read it: a tag as
// repo:tag, a manifest as repo@digest, a blob by its digest, and so on.
func deletionRowOf(d gc.DeletionRecord) deletionRow {
	row := deletionRow{At: d.At, Kind: d.Kind, Digest: d.Digest.String(), Reason: d.Reason,
		Cause: strings.ReplaceAll(string(d.Cause), "_", " "), Bytes: d.Size}
	short := shortDigest(d.Digest)
	switch {
	case d.Kind == review.KindTag:
		row.Object = d.Repository + ":" + d.Tag
	case d.Kind == review.KindBlob:
		row.Object = short
	case d.Repository != "" && d.Digest != "":
		row.Object = d.Repository + "@" + short
	case d.Repository != "":
		row.Object = d.Repository
	default:
		row.Object = short
	}
	return row
}
