package gc

import (
	"testing"
	"time"
)

// The number of reviews a transaction claims follows its budget: it
// doubles while full transactions take under half of it, halves when one
// takes longer, never leaves [1, max], and learns nothing from a
// transaction that found fewer due than it asked for.
func TestClaimSizer(t *testing.T) {
	s := newClaimSizer(100, 20*time.Millisecond, false)
	if s.size() != 16 {
		t.Fatalf("starts at %d, want 16", s.size())
	}
	s.observe(16, time.Millisecond, false)
	s.observe(32, time.Millisecond, false)
	s.observe(64, time.Millisecond, false)
	if s.size() != 100 {
		t.Fatalf("after fast transactions: %d, want the maximum 100", s.size())
	}
	s.observe(3, time.Millisecond, false) // a short batch
	if s.size() != 100 {
		t.Fatalf("a short batch changed the size to %d", s.size())
	}
	s.observe(100, 15*time.Millisecond, false) // within budget: stays
	if s.size() != 100 {
		t.Fatalf("a transaction within budget changed the size to %d", s.size())
	}
	now := time.Now()
	s.now = func() time.Time { return now }
	if !s.calm() {
		t.Fatal("no push waited, and the sizer is not calm: transactions would not chain rounds")
	}
	s.observe(100, time.Millisecond, true) // a push waited: halve
	if s.size() != 50 {
		t.Fatalf("after a push waited: %d, want 50", s.size())
	}
	s.observe(50, time.Millisecond, false)
	if s.calm() {
		t.Fatal("a push waited a moment ago, and the next transaction would chain rounds")
	}
	now = now.Add(calmAfter)
	if !s.calm() {
		t.Fatalf("no push waited for %v, and transactions would not chain rounds", calmAfter)
	}
	s.sawPush() // a push seen waiting at the end of a round
	if s.calm() {
		t.Fatal("a push was seen waiting, and the next transaction would chain rounds")
	}
	s.observe(s.size(), time.Millisecond, true)
	for range 10 {
		s.observe(s.size(), time.Second, false)
	}
	if s.size() != 1 {
		t.Fatalf("after slow transactions: %d, want 1", s.size())
	}
}

// Where every transaction costs more than the budget whatever it claims
// (round trips to a loaded PostgreSQL), the claims are sized on what they
// add: they grow until the claims' own share reaches the budget instead of
// shrinking to one review per transaction. Without learning the fixed cost
// (SQLite's single writer), the same transactions shrink the claims to one.
func TestClaimSizerFixedCost(t *testing.T) {
	const fixed, perClaim = 30 * time.Millisecond, 200 * time.Microsecond // 20 ms buys 100 claims
	took := func(n int) time.Duration { return fixed + time.Duration(n)*perClaim }
	for _, tc := range []struct {
		learn    bool
		min, max int
	}{
		{learn: true, min: 32, max: 128},
		{learn: false, min: 1, max: 1},
	} {
		s := newClaimSizer(500, 20*time.Millisecond, tc.learn)
		for range 50 {
			s.observe(s.size(), took(s.size()), false)
		}
		if got := s.size(); got < tc.min || got > tc.max {
			t.Errorf("learning the fixed cost %v: settled at %d claims, want %d to %d", tc.learn, got, tc.min, tc.max)
		}
	}
	s := newClaimSizer(500, 20*time.Millisecond, true)
	for range 50 {
		s.observe(s.size(), took(s.size()), false)
	}
	n := s.size()
	s.observe(n, took(n), true) // a push waited: halve, whatever the fit
	if s.size() != max(1, n/2) {
		t.Errorf("a push waited: %d claims, want %d", s.size(), max(1, n/2))
	}
}
