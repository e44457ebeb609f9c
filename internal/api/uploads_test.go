package api_test

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/api"
)

// doStreamed is e.do with a body of unknown length: the request goes out
// with Transfer-Encoding: chunked and no Content-Length.
func (e *env) doStreamed(method, path string, hdr map[string]string, body string) (*http.Response, []byte) {
	e.t.Helper()
	// Hiding the reader's type keeps net/http from learning its length.
	return e.send(method, path, hdr, struct{ io.Reader }{strings.NewReader(body)})
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

// stall opens a connection to e's server, sends head (a request line and
// headers, without the blank line) and then the first bytes of the body,
// and sends nothing more. It returns the connection.
func (e *env) stall(head, body string) net.Conn {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, head+"\r\n"+body); err != nil {
		e.t.Fatal(err)
	}
	return conn
}

// cutResponse reads the response to a stalled request on conn, then
// checks that the server closes the connection, and returns the response,
// its body and when it came.
func (e *env) cutResponse(conn net.Conn) (*http.Response, []byte, time.Time) {
	e.t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		e.t.Fatalf("reading the answer to a stalled request: %v", err)
	}
	at := time.Now()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("reading the answer's body: %v", err)
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		e.t.Errorf("after the answer to a stalled request: got %d bytes, %v; want the connection closed (EOF)", n, err)
	}
	return resp, body, at
}

// TestIdleBodyIsCut: a request body that sends nothing for
// BodyIdleTimeout is cut: the client gets 408 and its connection is
// closed; the upload keeps what it held before the chunk (same size,
// resumable) and no byte of the broken chunk stays in the blob store. A
// body that keeps sending, however slowly, is not cut.
func TestIdleBodyIsCut(t *testing.T) {
	const idle = 300 * time.Millisecond
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			e := newEnvWith(t, backend, api.Options{BodyIdleTimeout: idle})
			const repo = "demo/hello"
			// session starts an upload holding "abc".
			session := func() string {
				resp, body := e.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
				e.expect(resp, body, http.StatusAccepted)
				loc := resp.Header.Get("Location")
				resp, body = e.do("PATCH", loc, map[string]string{"Content-Range": "0-2"}, []byte("abc"))
				e.expect(resp, body, http.StatusAccepted)
				return loc
			}
			head := func(method, target string, hdr ...string) string {
				return method + " " + target + " HTTP/1.1\r\nHost: registry\r\nContent-Type: application/octet-stream\r\n" + strings.Join(hdr, "\r\n") + "\r\n"
			}
			locs := []string{session(), session(), session()}
			stalls := []struct {
				name       string
				head, body string
				status     int
				code       string
			}{
				{"PATCH with a length", head("PATCH", locs[0], "Content-Length: 1000000", "Content-Range: 3-1000002"), "12345", 408, "BLOB_UPLOAD_INVALID"},
				{"PATCH chunked", head("PATCH", locs[1], "Transfer-Encoding: chunked"), "5\r\n12345\r\n", 408, "BLOB_UPLOAD_INVALID"},
				{"PUT closing the upload", head("PUT", locs[2]+"?digest="+digest.FromString("abc12345").String(), "Content-Length: 5"), "12", 408, "BLOB_UPLOAD_INVALID"},
				{"monolithic POST", head("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromString("12345").String(), "Content-Length: 5"), "123", 408, "BLOB_UPLOAD_INVALID"},
				// Refused before the body is read: net/http reads some of
				// the rest before answering, and that too is cut.
				{"PATCH of an unknown upload", head("PATCH", "/v2/"+repo+"/blobs/uploads/0f1e", "Transfer-Encoding: chunked"), "5\r\n12345\r\n", 404, "BLOB_UPLOAD_UNKNOWN"},
			}
			before := e.stored()
			// All at once, as a client holding many connections would.
			conns := make([]net.Conn, len(stalls))
			sent := time.Now()
			for i, s := range stalls {
				conns[i] = e.stall(s.head, s.body)
			}
			for i, s := range stalls {
				resp, body, at := e.cutResponse(conns[i])
				if resp.StatusCode != s.status || ociCode(body) != s.code {
					t.Errorf("%s, stalled: got %d %s, want %d %s; body %s", s.name, resp.StatusCode, ociCode(body), s.status, s.code, body)
				}
				if waited := at.Sub(sent); waited < idle || waited > idle+5*time.Second {
					t.Errorf("%s: cut after %v, want about %v", s.name, waited, idle)
				}
			}

			if got := e.stored(); !maps.Equal(got, before) {
				t.Errorf("blob store after the cut chunks: got %v, want %v", got, before)
			}
			for _, loc := range locs {
				resp, body := e.do("GET", loc, nil, nil)
				e.expect(resp, body, http.StatusNoContent)
				if got := resp.Header.Get("Range"); got != "0-2" {
					t.Errorf("upload Range after the cut chunk: got %q, want 0-2", got)
				}
			}
			loc := locs[0]

			// A slow body that keeps sending is not cut: a byte every
			// idle/3, for 4 idle timeouts.
			slow := strings.Repeat("d", 12)
			pr, pw := io.Pipe()
			go func() {
				for i := range slow {
					time.Sleep(idle / 3)
					if _, err := pw.Write([]byte{slow[i]}); err != nil {
						return
					}
				}
				pw.Close()
			}()
			req, _ := http.NewRequest("PATCH", e.srv.URL+loc, pr)
			req.ContentLength = int64(len(slow))
			req.Header.Set("Content-Range", fmt.Sprintf("3-%d", 3+len(slow)-1))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("slow PATCH: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			e.expect(resp, body, http.StatusAccepted)

			// And the upload completes.
			d := digest.FromString("abc" + slow)
			resp, body = e.do("PUT", resp.Header.Get("Location")+"?digest="+d.String(), nil, nil)
			e.expect(resp, body, http.StatusCreated)
			resp, body = e.do("GET", "/v2/"+repo+"/blobs/"+d.String(), nil, nil)
			e.expect(resp, body, http.StatusOK)
			if string(body) != "abc"+slow {
				t.Errorf("blob: got %q, want %q", body, "abc"+slow)
			}
		})
	}
}
