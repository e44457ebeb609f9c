package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestOpenLoopProbeDoesNotWaitForAnswers runs the probe at a rate against a
// server that answers each PUT 50 ms late. A closed-loop probe never has
// two PUTs in flight; the open-loop one sends on its schedule whatever the
// answers, so PUTs overlap, and every one is measured with the server's
// delay in it.
func TestOpenLoopProbeDoesNotWaitForAnswers(t *testing.T) {
	const delay = 50 * time.Millisecond
	var inFlight, most atomic.Int64
	var mu sync.Mutex
	tags := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || !strings.HasPrefix(r.URL.Path, "/v2/probe/p/manifests/") {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		mu.Lock()
		tags[strings.TrimPrefix(r.URL.Path, "/v2/probe/p/manifests/")] = true
		mu.Unlock()
		time.Sleep(delay)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()

	probe := func(rate float64, count int) latStats {
		p := &prober{d: dataset{seed: 1, repos: 1, tags: 1}, cl: newClient(strings.TrimPrefix(srv.URL, "http://")),
			anchor: &image{manifest: []byte(`{"schemaVersion":2}`)}, rate: rate, counter: len(tags)}
		return p.run(context.Background(), count, nil)
	}
	closed := probe(0, 5)
	if most.Load() != 1 || closed.N != 5 {
		t.Fatalf("closed loop: %d PUTs, at most %d in flight; want 5, 1", closed.N, most.Load())
	}
	most.Store(0)
	open := probe(200, 40)
	if open.N != 40 || open.Failures != 0 {
		t.Fatalf("open loop: %d PUTs measured, %d failed; want 40, 0", open.N, open.Failures)
	}
	if most.Load() < 2 {
		t.Errorf("open loop at 200/s against %v answers: at most %d PUT in flight, want several", delay, most.Load())
	}
	if open.P50ms < float64(delay.Milliseconds()) {
		t.Errorf("open loop p50 %.1f ms, below the server's delay of %v", open.P50ms, delay)
	}
	if len(tags) != 45 {
		t.Errorf("%d distinct tags PUT, want 45 (each PUT a tag of its own)", len(tags))
	}
}
