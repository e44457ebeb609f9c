package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestDeliversSelectedKindsWithRetries(t *testing.T) {
	var mu sync.Mutex
	var got []envelope
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // first attempt fails: retried
			return
		}
		body, _ := io.ReadAll(r.Body)
		var e envelope
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("body %q: %v", body, err)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type: got %q, want application/json", ct)
		}
		got = append(got, e)
	}))
	defer srv.Close()
	s := New([]Target{{URL: srv.URL, Events: []string{"manifest.deleted"}}}, Options{BaseDelay: time.Millisecond})
	s.Send("blob.deleted", map[string]string{"digest": "x"}) // not selected
	s.Send("manifest.deleted", map[string]string{"digest": "m"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Close(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Kind != "manifest.deleted" {
		t.Fatalf("delivered: got %+v, want one manifest.deleted", got)
	}
	if calls != 2 {
		t.Errorf("calls: got %d, want 2 (one failure, one retry)", calls)
	}
}

func TestSendNeverBlocks(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	s := New([]Target{{URL: srv.URL}}, Options{QueueSize: 2})
	done := make(chan struct{})
	go func() {
		for i := 0; i < 100; i++ {
			s.Send("tag.expired", i)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Send blocked on a stuck endpoint")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	s.Close(ctx)
}
