package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestBadRangeAgreesWithServeContent checks that a redirected GET refuses
// exactly the Range headers a streamed GET (http.ServeContent) refuses.
func TestBadRangeAgreesWithServeContent(t *testing.T) {
	const size = 3000
	body := bytes.Repeat([]byte("x"), size)
	for _, h := range []string{
		"", "bytes=", "bytes=0-0", "bytes=500-1499", "bytes=500-", "bytes=-500", "bytes=-0", "bytes=2000-5000",
		"bytes=500-0", "bytes=5000-10000", "bytes=3000-", "bytes=2999-", "bytes=-5000", "bytes=0-1,5000-6000",
		"bytes=5000-6000,7000-", "items=0-1", "bytes=a-b", "bytes=1", "bytes=--1", "bytes=-1-2", "bytes= 1 - 2 ",
		"bytes=1-2,,3-4", "bytes=-",
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if h != "" {
			req.Header.Set("Range", h)
		}
		rec := httptest.NewRecorder()
		http.ServeContent(rec, req, "", time.Time{}, bytes.NewReader(body))
		want := rec.Code == http.StatusRequestedRangeNotSatisfiable
		if got := badRange(h, size); got != want {
			t.Errorf("badRange(%q) = %v, want %v (ServeContent answered %d)", h, got, want, rec.Code)
		}
	}
}
