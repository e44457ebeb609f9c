package api_test

import (
	"testing"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/review"
)

// TestMgmtGCStatusActivity: GET /berth/v1/gc/status?activity=true adds
// what this server's collector did (here, a purge's deletions, with their
// event and cause) to the queue's status; without it the answer has no
// activity.
func TestMgmtGCStatusActivity(t *testing.T) {
	e := newMgmtEnv(t, true)
	e.push("acme/app", "v1", "one")
	var s gc.Summary
	e.call("POST", "/berth/v1/purge/acme/app", "", 200, &s)
	purged := 0
	for _, n := range s.Deleted {
		purged += n
	}

	var st struct {
		gc.Status
		Activity *gc.Activity `json:"activity"`
	}
	e.call("GET", "/berth/v1/gc/status?activity=true", "", 200, &st)
	a := st.Activity
	if a == nil {
		t.Fatal("status?activity=true: no activity")
	}
	if a.Totals.ObjectsDeleted != int64(purged) || len(a.Deletions) != purged || a.Totals.BytesFreed != s.BytesFreed {
		t.Fatalf("activity after the purge: totals %+v, %d deletions listed; want the purge's %d objects, %d bytes",
			a.Totals, len(a.Deletions), purged, s.BytesFreed)
	}
	if d := a.Deletions[0]; d.Kind != review.KindRepository || d.Event != event.RepositoryPurged || d.Repository != "acme/app" ||
		d.Cause != review.CausePurge || d.Reason != "repository purged" {
		t.Errorf("newest deletion: got %+v, want acme/app's repository.purged, cause purge", d)
	}
	if a.Throughput.Objects <= 0 {
		t.Errorf("throughput %+v just after the purge, want some", a.Throughput)
	}

	var plain map[string]any
	e.call("GET", "/berth/v1/gc/status", "", 200, &plain)
	if _, ok := plain["activity"]; ok || plain["reviews_pending"] == nil {
		t.Errorf("status without activity: got %v, want the queue only", plain)
	}
	if code := e.call("GET", "/berth/v1/gc/status?activity=maybe", "", 400, nil); code != "INVALID_ARGUMENT" {
		t.Errorf("status?activity=maybe: got code %s, want INVALID_ARGUMENT", code)
	}
}
