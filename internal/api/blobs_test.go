package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// serveContentRefuses reports whether http.ServeContent, which serves a
// streamed blob GET, answers a Range header h on an object of size bytes
// with 416.
func serveContentRefuses(h string, size int) bool {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	if h != "" {
		req.Header.Set("Range", h)
	}
	rec := httptest.NewRecorder()
	http.ServeContent(rec, req, "", time.Time{}, bytes.NewReader(make([]byte, size)))
	return rec.Code == http.StatusRequestedRangeNotSatisfiable
}

// TestBadRangeAgreesWithServeContent checks that a redirected GET refuses
// exactly the Range headers a streamed GET (http.ServeContent) refuses.
func TestBadRangeAgreesWithServeContent(t *testing.T) {
	for _, size := range []int{3000, 1, 0} {
		for _, h := range []string{
			"", "bytes=", "bytes=0-0", "bytes=500-1499", "bytes=500-", "bytes=-500", "bytes=-0", "bytes=2000-5000",
			"bytes=500-0", "bytes=5000-10000", "bytes=3000-", "bytes=2999-", "bytes=-5000", "bytes=0-1,5000-6000",
			"bytes=5000-6000,7000-", "items=0-1", "bytes=a-b", "bytes=1", "bytes=--1", "bytes=-1-2", "bytes= 1 - 2 ",
			"bytes=1-2,,3-4", "bytes=-", "bytes=0-", "bytes=\v0-1", "bytes=\t0-1",
			"bytes=0-9223372036854775807", "bytes=0-9223372036854775808", "bytes=9223372036854775807-",
			"bytes=-9223372036854775807", "bytes=-9223372036854775808",
		} {
			want := serveContentRefuses(h, size)
			if got := badRange(h, int64(size)); got != want {
				t.Errorf("badRange(%q, %d) = %v, want %v (as ServeContent)", h, size, got, want)
			}
		}
	}
}

// FuzzBadRange holds badRange, which decides the 416 of a redirected blob
// GET, to what http.ServeContent answers a streamed GET with the same Range
// on an object of the same size.
func FuzzBadRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=5-", "bytes=-3", "bytes=10-", "bytes=5-1", "bytes=0-9223372036854775807", "bytes= 1 - 2 , 4-", "items=0-1", ""} {
		f.Add(s, uint16(10))
	}
	f.Fuzz(func(t *testing.T, h string, size uint16) {
		want := serveContentRefuses(h, int(size))
		if got := badRange(h, int64(size)); got != want {
			t.Fatalf("badRange(%q, %d) = %v, but http.ServeContent refuses: %v", h, size, got, want)
		}
	})
}
