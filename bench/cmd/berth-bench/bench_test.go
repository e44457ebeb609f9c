package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestVariants(t *testing.T) {
	got, err := variants([]string{kindDist, kindBerth}, []string{modeProcess, modeServe}, []string{dbSQLite, dbPGS3})
	if err != nil {
		t.Fatal(err)
	}
	want := []variant{
		{Name: "distribution", Kind: kindDist},
		{Name: "berth/process/sqlite", Kind: kindBerth, Mode: modeProcess, DB: dbSQLite},
		{Name: "berth/serve/sqlite", Kind: kindBerth, Mode: modeServe, DB: dbSQLite},
		{Name: "berth/process/postgres-s3", Kind: kindBerth, Mode: modeProcess, DB: dbPGS3},
		{Name: "berth/serve/postgres-s3", Kind: kindBerth, Mode: modeServe, DB: dbPGS3},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("variants (-want +got):\n%s", diff)
	}
	for _, bad := range [][3][]string{
		{{kindBerth}, {"inline"}, {dbSQLite}},
		{{kindBerth}, {modeServe}, {"mysql"}},
		{{"zot"}, {modeServe}, {dbSQLite}},
	} {
		if _, err := variants(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("variants(%v): got no error", bad)
		}
	}
}

func TestParseGCMetrics(t *testing.T) {
	text := `# HELP berth_gc_deletions_total Objects deleted by the collector, by kind.
# TYPE berth_gc_deletions_total counter
berth_gc_deletions_total{kind="blob"} 33
berth_gc_deletions_total{kind="tag"} 6
berth_gc_bytes_freed_total 78493
berth_gc_decision_seconds_bucket{kind="tag",le="0.0001"} 0
berth_gc_decision_seconds_count{kind="tag"} 6
berth_gc_decision_seconds_count{kind="manifest"} 3
berth_gc_reviews_due 2
berth_gc_runs_total 1
berth_http_requests_total{code="201"} 40
`
	got, err := parseGCMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := serveGC{runs: 1, due: 2, reviews: 9, deleted: map[string]int{"blob": 33, "tag": 6}, freed: 78493}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(serveGC{})); diff != "" {
		t.Errorf("parseGCMetrics (-want +got):\n%s", diff)
	}
	if _, err := parseGCMetrics(strings.NewReader("berth_gc_runs_total 1\n")); err == nil {
		t.Error("without berth_gc_reviews_due: got no error")
	}
}
