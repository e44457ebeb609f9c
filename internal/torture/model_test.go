package torture

import (
	"testing"
	"time"
)

func TestPromisedSegments(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name string
		in   []interval
		want []interval
	}{
		{"grace alone", []interval{{at(1), at(4), true}}, []interval{{at(1), at(4), true}}},
		{"no anchor, no promise", []interval{{at(1), at(4), false}}, nil},
		{"subject before referrer: promised from the referrer's anchor",
			[]interval{{at(0), at(10), false}, {at(3), at(6), true}}, []interval{{at(3), at(10), true}}},
		{"gap breaks the chain", []interval{{at(0), at(2), true}, {at(3), at(5), false}}, []interval{{at(0), at(2), true}}},
		{"touching intervals merge", []interval{{at(0), at(2), true}, {at(2), at(5), false}}, []interval{{at(0), at(5), true}}},
		{"empty interval dropped", []interval{{at(2), at(2), true}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := promisedSegments(tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if !got[i].a.Equal(tt.want[i].a) || !got[i].b.Equal(tt.want[i].b) {
					t.Fatalf("segment %d: got %v..%v, want %v..%v", i, got[i].a, got[i].b, tt.want[i].a, tt.want[i].b)
				}
			}
		})
	}
}

// The model promises a manifest only from an acknowledged anchor, keeps it
// for the grace and the tag's window, and drops it at a kill.
func TestModelPromises(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	m := newModel(3*time.Second, 4*time.Second, 0)
	r := m.repo("ns/r")
	rec := m.addManifest(r, &manifestRec{digest: "sha256:a", kind: "image"})
	m.ackPut(r, rec.digest, span{at(1), at(1.1)})
	snap := m.beginTagOp(r, "t", at(1))
	m.ackTagPut(r, snap, rec.digest, span{at(1), at(1.1)}, 0)
	check := func(s float64, want bool) {
		t.Helper()
		m.mu.Lock()
		got := m.promisedOver(r, rec.digest, at(s), at(s))
		m.mu.Unlock()
		if got != want {
			t.Errorf("promised at %.1fs: got %v, want %v", s, got, want)
		}
	}
	check(1.05, false) // not answered yet
	check(2, true)
	check(100, true) // tagged
	// Delete the tag at 50: recoverable until 54.
	snap = m.beginTagOp(r, "t", at(50))
	m.ackTagGone(r, snap)
	check(53.9, true)
	check(54.1, false)
	if !m.restorable(r, "t", rec.digest, at(53)) {
		t.Error("restore at 53s: got not restorable, want restorable")
	}
	if m.restorable(r, "t", rec.digest, at(55)) {
		t.Error("restore at 55s: got restorable, want not")
	}
	// Re-push at 60 then DELETE by digest at 61: gone from 61.
	m.ackPut(r, rec.digest, span{at(60), at(60.1)})
	check(60.5, true)
	u := m.beginKill(r, rec.digest, at(61))
	m.ackKill(r, u)
	check(61.5, false)
}
