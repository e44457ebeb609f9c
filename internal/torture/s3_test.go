package torture

import (
	"fmt"
	"testing"
	"time"
)

// TestCheckMultipartNamesItsSession: a multipart upload is excused only by
// the session its key names, so a leaked one cannot hide behind another
// upload that is still open.
func TestCheckMultipartNamesItsSession(t *testing.T) {
	cutoff := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	open, gone := "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	key := func(id string) string { return s3Prefix + "blobs/" + id + "/00112233445566778899aabbccddeeff" }
	for _, tc := range []struct {
		name      string
		u         s3Upload
		problems  int
		sweepable int
	}{
		{"its session is open", s3Upload{Key: key(open), Initiated: cutoff.Add(-time.Hour)}, 0, 0},
		{"its session is gone, another is open", s3Upload{Key: key(gone), Initiated: cutoff.Add(-time.Hour)}, 1, 0},
		{"its session is gone, younger than the cutoff", s3Upload{Key: key(gone), Initiated: cutoff.Add(time.Second)}, 0, 1},
		{"outside the layout", s3Upload{Key: s3Prefix + "uploads/" + open + "/state", Initiated: cutoff.Add(-time.Hour)}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var problems []string
			st := storageView{uploads: map[string]bool{open: true}, sweepCutoff: cutoff, problem: func(format string, args ...any) {
				problems = append(problems, fmt.Sprintf(format, args...))
			}}
			lv := liveness{Rows: map[string]int{}}
			st.checkMultipart(&lv, tc.u)
			if len(problems) != tc.problems || lv.SweepableLater != tc.sweepable {
				t.Errorf("got problems %q and %d sweepable later, want %d problems and %d sweepable later", problems, lv.SweepableLater, tc.problems, tc.sweepable)
			}
		})
	}
}
