package torture

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth/internal/gc/gcoracle"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/review"
)

// TestCheckMultipartNamesItsSession: a multipart upload is excused only by
// the session its key names, so a leaked one cannot hide behind another
// upload that is still open.
func TestCheckMultipartNamesItsSession(t *testing.T) {
	cutoff := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	open, gone := "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	key := func(id string) string { return s3Prefix + "blobs/" + id + "/00112233445566778899aabbccddeeff" }
	// A registry whose only row of interest is the open upload session.
	dsn := filepath.Join(t.TempDir(), "berth.db")
	store := sqltest.Open(t, dsn)
	at := cutoff.UnixMicro()
	for _, q := range []string{
		`INSERT INTO namespace (id, name) VALUES (1, 'ns')`,
		`INSERT INTO repository (id, namespace_id, name, created_at) VALUES (1, 1, 'ns/app', 0)`,
		`INSERT INTO upload (id, repository_id, started_at, updated_at) VALUES ('` + open + `', 1, ` + strconv.FormatInt(at, 10) + `, ` + strconv.FormatInt(at, 10) + `)`,
	} {
		sqltest.Exec(t, dsn, q)
	}
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
			var b gcoracle.Bytes
			if o, ok := multipartObject(tc.u); ok {
				b.Multipart = append(b.Multipart, o)
			} else {
				b.Foreign = append(b.Foreign, o)
			}
			rep, err := gcoracle.Check(context.Background(), gcoracle.Input{DB: store.DB(), Bytes: b, Now: cutoff,
				Windows: review.Policy{UploadExpiry: time.Hour}, SweepCutoff: cutoff})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Findings) != tc.problems || rep.Excused != tc.sweepable {
				t.Errorf("got problems %v and %d sweepable later, want %d problems and %d sweepable later", rep.Findings, rep.Excused, tc.problems, tc.sweepable)
			}
			for _, f := range rep.Findings {
				if !strings.Contains(f.String(), tc.u.Key) {
					t.Errorf("finding %q does not name the upload's key %s", f, tc.u.Key)
				}
			}
		})
	}
}
