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
	s := newClaimSizer(100, 20*time.Millisecond)
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
	s.observe(100, time.Millisecond, true) // a push waited: halve
	if s.size() != 50 {
		t.Fatalf("after a push waited: %d, want 50", s.size())
	}
	for range 10 {
		s.observe(s.size(), time.Second, false)
	}
	if s.size() != 1 {
		t.Fatalf("after slow transactions: %d, want 1", s.size())
	}
}
