package api_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// doStreamed is e.do with a body of unknown length: the request goes out
// with Transfer-Encoding: chunked and no Content-Length.
func (e *env) doStreamed(method, path string, hdr map[string]string, body string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, struct{ io.Reader }{strings.NewReader(body)})
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, b
}

// TestContentRangeOverflow: a Content-Range whose length does not fit in
// an int64, or that is not plain decimal numbers, is answered 416 with the
// OCI envelope before a byte is read; the session is left as it was (no
// staging bytes, its size unchanged) and goes on working. A range that fits
// but that the body does not fill is SIZE_INVALID, rolled back likewise.
func TestContentRangeOverflow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		const repo = "demo/hello"
		tests := []struct {
			name    string
			prefill string // bytes the session holds before the chunk
			cr      string
			status  int
			code    string
		}{
			{"length overflows from 0", "", "0-9223372036854775807", 416, "BLOB_UPLOAD_INVALID"},
			{"length overflows", "a", "1-9223372036854775807", 416, "BLOB_UPLOAD_INVALID"},
			{"start and end at the limit", "", "9223372036854775807-9223372036854775807", 416, "BLOB_UPLOAD_INVALID"},
			{"end past int64", "", "0-9223372036854775808", 416, "BLOB_UPLOAD_INVALID"},
			{"signed numbers", "a", "+1-+1", 416, "BLOB_UPLOAD_INVALID"},
			{"negative end", "a", "1--5", 416, "BLOB_UPLOAD_INVALID"},
			{"spaces inside", "a", "1 - 1", 416, "BLOB_UPLOAD_INVALID"},
			{"largest length, body too short", "a", "1-9223372036854775806", 400, "SIZE_INVALID"},
			{"bytes prefix, total, body too short", "", "bytes 0-9223372036854775806/*", 400, "SIZE_INVALID"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := e.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
				e.expect(resp, body, http.StatusAccepted)
				loc := resp.Header.Get("Location")
				if tt.prefill != "" {
					resp, body = e.do("PATCH", loc, map[string]string{"Content-Range": fmt.Sprintf("0-%d", len(tt.prefill)-1)}, []byte(tt.prefill))
					e.expect(resp, body, http.StatusAccepted)
				}
				before := e.counts()

				resp, body = e.doStreamed("PATCH", loc, map[string]string{"Content-Range": tt.cr}, "x")
				if resp.StatusCode != tt.status || ociCode(body) != tt.code {
					t.Errorf("PATCH Content-Range %q: got %d %s, want %d %s; body %s", tt.cr, resp.StatusCode, ociCode(body), tt.status, tt.code, body)
				}
				if got := e.counts(); got.String() != before.String() {
					t.Errorf("after the refused chunk: got %v, want %v", got, before)
				}
				resp, body = e.do("GET", loc, nil, nil)
				e.expect(resp, body, http.StatusNoContent)
				want := "0-0"
				if n := len(tt.prefill); n > 0 {
					want = fmt.Sprintf("0-%d", n-1)
				}
				if got := resp.Header.Get("Range"); got != want {
					t.Errorf("upload Range after the refused chunk: got %q, want %q", got, want)
				}
				// The session still takes its next chunk.
				resp, body = e.do("PATCH", loc, map[string]string{"Content-Range": fmt.Sprintf("%d-%d", len(tt.prefill), len(tt.prefill)+1)}, []byte("yz"))
				e.expect(resp, body, http.StatusAccepted)
			})
		}
	})
}
