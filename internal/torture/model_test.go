package torture

import (
	"slices"
	"strings"
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
		{"grace alone", []interval{{a: at(1), b: at(4), anchor: true}}, []interval{{a: at(1), b: at(4), anchor: true}}},
		{"no anchor, no promise", []interval{{a: at(1), b: at(4), anchor: false}}, nil},
		{"subject before referrer: promised from the referrer's anchor",
			[]interval{{a: at(0), b: at(10), anchor: false}, {a: at(3), b: at(6), anchor: true}}, []interval{{a: at(3), b: at(10), anchor: true}}},
		{"gap breaks the chain", []interval{{a: at(0), b: at(2), anchor: true}, {a: at(3), b: at(5), anchor: false}}, []interval{{a: at(0), b: at(2), anchor: true}}},
		{"touching intervals merge", []interval{{a: at(0), b: at(2), anchor: true}, {a: at(2), b: at(5), anchor: false}}, []interval{{a: at(0), b: at(5), anchor: true}}},
		{"empty interval dropped", []interval{{a: at(2), b: at(2), anchor: true}}, nil},
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
	m.ackTagPut(r, snap, rec.digest, span{at(1), at(1.1)}, 0, -1)
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

// A DELETE by digest ends what is served at once, but the time machine
// keeps the manifest stored for its tag rows' window: the model requires a
// restore inside it to succeed, and the restored tag to pull. A referrer
// deleted by digest is not kept by its subject.
func TestModelDeleteByDigestStaysRestorable(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	m := newModel(3*time.Second, 4*time.Second, 0)
	r := m.repo("ns/r")
	rec := m.addManifest(r, &manifestRec{digest: "sha256:a", kind: "image"})
	sig := m.addManifest(r, &manifestRec{digest: "sha256:s", kind: "referrer", subject: rec.digest})
	m.ackPut(r, rec.digest, span{at(1), at(1.1)})
	m.ackTagPut(r, m.beginTagOp(r, "t", at(1)), rec.digest, span{at(1), at(1.1)}, 0, -1)
	m.ackPut(r, sig.digest, span{at(2), at(2.1)})
	check := func(d string, s float64, p promise, want bool) {
		t.Helper()
		m.mu.Lock()
		got := m.promiseOver(r, d, at(s), at(s), p)
		m.mu.Unlock()
		if got != want {
			t.Errorf("%s promise %d at %.1fs: got %v, want %v", d, p, s, got, want)
		}
	}
	m.ackKill(r, m.beginKill(r, sig.digest, at(8)))
	check(sig.digest, 8.5, served, false)
	check(sig.digest, 8.5, stored, false)

	m.ackKill(r, m.beginKill(r, rec.digest, at(10)))
	check(rec.digest, 10.5, served, false)
	check(rec.digest, 13.9, stored, true)
	check(rec.digest, 14.1, stored, false)
	if !m.restorable(r, "t", rec.digest, at(12)) {
		t.Error("restore at 12s after the DELETE by digest at 10s: got not restorable, want restorable")
	}
	if m.restorable(r, "t", rec.digest, at(14.5)) {
		t.Error("restore at 14.5s: got restorable, want the window closed")
	}
	m.ackTagRestore(r, m.beginTagOp(r, "t", at(12)), rec.digest, span{at(12), at(12.1)}, -1)
	check(rec.digest, 12.5, served, true)
	check(rec.digest, 100, served, true)
	check(sig.digest, 100, served, false) // the restore does not undo the referrer's DELETE
}

// A liveness problem's report lists the operations that touched the
// objects it names.
func TestProblemKeys(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	got := problemKeys("link tort/lib@" + d + " is used by no reachable manifest; blob " + d + " has no live link")
	want := []string{"final", mkey("tort/lib", d), bkey(d)}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// Under keep_newest N a row may be pruned from the send time of the N-th
// tag-creating request that may be newer: one answered after the row's
// request was sent, or never answered; a refused one created nothing.
func TestModelKeepNewestBound(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	m := newModel(3*time.Second, 4*time.Second, 0)
	r := m.repo("ns/keep")
	r.keepN = 2
	r.creations = []creation{
		{sent: at(0.5), got: at(0.9)}, // answered before the row's request: older
		{sent: at(0.8), got: at(1.2)}, // overlaps it: may be newer
		{sent: at(1), got: at(1.1)},   // the row's own request
		{sent: at(2), refused: true},  // created nothing
		{sent: at(3), got: farFuture}, // answer lost: may be newer
		{sent: at(4), got: at(4.1)},
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.newLifetime(r, "t", "sha256:a", span{at(1), at(1.1)}, 2)
	if got, want := m.policyEnd(r, l), at(3); !got.Equal(want) {
		t.Fatalf("policyEnd: got %v, want %v (the overlapping request and the lost one)", got.Sub(t0), want.Sub(t0))
	}
	if got, want := m.protectedUntil(r, l, 0), at(7); !got.Equal(want) {
		t.Fatalf("protectedUntil: got %v, want %v", got.Sub(t0), want.Sub(t0))
	}
	r.keepN = 4
	if got := m.policyEnd(r, l); !got.IsZero() {
		t.Fatalf("policyEnd with fewer than N candidates: got %v, want none", got.Sub(t0))
	}
}

// A signature tag may end when its subject's stored promise ends, when
// that promise covered its whole creation; otherwise from its request's
// send time.
func TestModelAttachmentBound(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	m := newModel(3*time.Second, 4*time.Second, 0)
	r := m.repo("ns/r")
	subj := m.addManifest(r, &manifestRec{digest: "sha256:" + strings.Repeat("ab", 32), kind: "image"})
	m.ackPut(r, subj.digest, span{at(0), at(0.1)}) // promised [0.1, 3)
	sig := m.addManifest(r, &manifestRec{digest: "sha256:5", kind: kindSignature})
	m.ackPut(r, sig.digest, span{at(1), at(1.1)})
	tag := sigTag(subj.digest)
	if got := attachmentSubject(tag); got != subj.digest {
		t.Fatalf("attachmentSubject(%s): got %s, want %s", tag, got, subj.digest)
	}
	m.ackTagPut(r, m.beginTagOp(r, tag, at(1)), sig.digest, span{at(1), at(1.1)}, 0, -1)
	m.mu.Lock()
	l := r.tags[tag].live
	got := m.protectedUntil(r, l, 0)
	m.mu.Unlock()
	if want := at(7); !got.Equal(want) {
		t.Fatalf("signature pushed while its subject is promised: protected until %v, want %v", got.Sub(t0), want.Sub(t0))
	}
	if _, _, ok := m.liveDigest(r, tag, at(2.5)); !ok {
		t.Fatalf("signature tag not certainly live before its subject's promise ends")
	}
	if _, _, ok := m.liveDigest(r, tag, at(3.5)); ok {
		t.Fatalf("signature tag certainly live after its subject's promise ended")
	}
	// A second signature after the subject's promise ended: may end at once.
	sig2 := m.addManifest(r, &manifestRec{digest: "sha256:6", kind: kindSignature})
	m.ackPut(r, sig2.digest, span{at(5), at(5.1)})
	m.ackTagPut(r, m.beginTagOp(r, tag, at(5)), sig2.digest, span{at(5), at(5.1)}, 0, -1)
	m.mu.Lock()
	l = r.tags[tag].live
	got = m.protectedUntil(r, l, 0)
	m.mu.Unlock()
	if want := at(9); !got.Equal(want) {
		t.Fatalf("signature pushed after its subject's promise: protected until %v, want %v", got.Sub(t0), want.Sub(t0))
	}
}
