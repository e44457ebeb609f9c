package auth

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Throttling of failed logins (docs/design/auth.md): after freeFailures
// failures in a row for an account (freeAddressFailures for a client
// address, which many users may share behind one NAT or CI runner), each further
// attempt within the backoff is refused unchecked. The backoff starts at
// minBackoff and doubles up to maxBackoff; a success clears the account's
// count. Entries idle for forgetAfter are dropped.
const (
	freeFailures        = 5
	freeAddressFailures = 20
	minBackoff          = time.Second
	maxBackoff          = 5 * time.Minute
	forgetAfter         = 15 * time.Minute
	// sweepEvery bounds the work of forgetting: the table is swept when
	// it has grown by that many entries since the last sweep.
	sweepEvery = 4096
)

// ThrottledError is ErrThrottled with the time to wait.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins; retry in %s", e.RetryAfter.Round(time.Second))
}

func (e *ThrottledError) Unwrap() error { return ErrThrottled }

type failures struct {
	count int
	last  time.Time
	until time.Time
}

type throttle struct {
	now       func() time.Time
	mu        sync.Mutex
	entries   map[string]*failures
	lastSweep int
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, entries: map[string]*failures{}}
}

// check returns a *ThrottledError if any key is in its backoff.
func (t *throttle) check(keys ...string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var wait time.Duration
	for _, k := range keys {
		if f := t.entries[k]; f != nil && now.Before(f.until) {
			wait = max(wait, f.until.Sub(now))
		}
	}
	if wait > 0 {
		return &ThrottledError{RetryAfter: max(wait, time.Second)}
	}
	return nil
}

// fail counts a failure against every key; a key starting with
// "client:" is a client address.
func (t *throttle) fail(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range keys {
		f := t.entries[k]
		if f == nil || now.Sub(f.last) > forgetAfter {
			f = &failures{}
			t.entries[k] = f
		}
		f.count++
		f.last = now
		free := freeFailures
		if strings.HasPrefix(k, "client:") {
			free = freeAddressFailures
		}
		if f.count >= free {
			backoff := minBackoff << min(f.count-free, 20)
			f.until = now.Add(min(backoff, maxBackoff))
		}
	}
	if len(t.entries) >= t.lastSweep+sweepEvery {
		for k, f := range t.entries {
			if now.Sub(f.last) > forgetAfter {
				delete(t.entries, k)
			}
		}
		t.lastSweep = len(t.entries)
	}
}

// succeed clears key.
func (t *throttle) succeed(key string) {
	t.mu.Lock()
	delete(t.entries, key)
	t.mu.Unlock()
}
