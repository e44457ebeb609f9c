package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/testenv"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer = testenv.LogBuffer

// logLines decodes the JSON lines of a captured log.
func logLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// panicking is a blob store that panics where a bug would: in the middle
// of reading an upload body, and in the middle of sending a blob (after the
// response status is out). It counts the readers closed.
type panicking struct {
	blob.Store
	appendPanics atomic.Bool
	closed       atomic.Int32
}

type panicAfter struct {
	r io.Reader
	n int // bytes to let through before panicking
}

func (p *panicAfter) Read(b []byte) (int, error) {
	if p.n <= 0 {
		panic("injected panic while reading")
	}
	if len(b) > p.n {
		b = b[:p.n]
	}
	n, err := p.r.Read(b)
	p.n -= n
	return n, err
}

func (p *panicking) UploadAppend(ctx context.Context, id string, offset int64, r io.Reader) (int64, error) {
	if !p.appendPanics.Load() {
		return p.Store.UploadAppend(ctx, id, offset, r)
	}
	return p.Store.UploadAppend(ctx, id, offset, &panicAfter{r: r, n: 3})
}

type panickingReader struct {
	blob.Reader
	p *panicking
}

func (r *panickingReader) Read([]byte) (int, error) { panic("injected panic while sending") }
func (r *panickingReader) Close() error             { r.p.closed.Add(1); return r.Reader.Close() }

func (p *panicking) Open(ctx context.Context, key string) (blob.Reader, error) {
	rd, err := p.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	return &panickingReader{Reader: rd, p: p}, nil
}

// openFilesUnder lists the files under dir this process holds open.
func openFilesUnder(t *testing.T, dir string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	var out []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir) {
			out = append(out, target)
		}
	}
	return out
}

// TestPanicRecovered: a handler that panics before its response is under
// way is answered 500 UNKNOWN with the OCI envelope and Connection: close;
// one that panics while sending has its connection cut, so the client sees
// the response incomplete. Either way the request is logged once, at
// error, with the panic and its stack, net/http logs nothing, the
// handler's deferred cleanups run (the blob reader is closed) and the
// upload is left as it was (no staging bytes, no open file).
func TestPanicRecovered(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) { testPanicRecovered(t, backend) })
	}
}

func testPanicRecovered(t *testing.T, backend string) {
	{
		var logs, serverLog syncBuffer
		var p *panicking
		e := newEnvWrapped(t, backend, api.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))},
			func(s blob.Store) blob.Store { p = &panicking{Store: s}; p.appendPanics.Store(true); return p })
		e.srv.Config.ErrorLog = log.New(&serverLog, "", 0)
		const repo = "demo/hello"

		// Before the response: an append that panics mid-body.
		resp, body := e.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
		e.expect(resp, body, http.StatusAccepted)
		loc := resp.Header.Get("Location")
		before := e.counts()
		resp, body = e.do("PATCH", loc, map[string]string{"Content-Range": "0-9"}, []byte("0123456789"))
		if resp.StatusCode != http.StatusInternalServerError || ociCode(body) != "UNKNOWN" {
			t.Errorf("PATCH that panics: got %d %s, want 500 UNKNOWN; body %s", resp.StatusCode, ociCode(body), body)
		}
		if strings.Contains(string(body), "injected") {
			t.Errorf("500 body tells the panic: %s", body)
		}
		if !resp.Close {
			t.Errorf("PATCH that panics: the connection is kept open, want Connection: close")
		}
		if got := e.counts(); got.String() != before.String() {
			t.Errorf("after the panic: got %v, want %v", got, before)
		}
		if fs, ok := e.blobs.(interface{ Root() string }); ok {
			if open := openFilesUnder(t, fs.Root()); len(open) > 0 {
				t.Errorf("after the panic, files still open: %v", open)
			}
		}
		resp, body = e.do("GET", loc, nil, nil)
		e.expect(resp, body, http.StatusNoContent)
		if got := resp.Header.Get("Range"); got != "0-0" {
			t.Errorf("upload Range after the panic: got %q, want 0-0", got)
		}

		// While sending: the status is out, the body is cut.
		p.appendPanics.Store(false)
		d := e.pushBlob(repo, bytes.Repeat([]byte("b"), 4096))
		// A fresh connection: on a reused one, the transport would retry
		// the GET.
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get(e.srv.URL + "/v2/" + repo + "/blobs/" + d.String())
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Errorf("GET blob that panics while sending: the client read a complete response, want it cut")
		}
		if got := p.closed.Load(); got != 1 {
			t.Errorf("blob readers closed: got %d, want 1", got)
		}

		var panics []map[string]any
		for _, l := range logLines(t, logs.String()) {
			if l["stack"] != nil {
				panics = append(panics, l)
			}
		}
		if len(panics) != 2 {
			t.Fatalf("log lines with a stack: got %d, want 2; log:\n%s", len(panics), logs.String())
		}
		for i, want := range []struct{ method, status, panic string }{{"PATCH", "500", "injected panic while reading"}, {"GET", "200", "injected panic while sending"}} {
			l := panics[i]
			if l["level"] != "ERROR" || l["method"] != want.method || jsonNumber(l["status"]) != want.status ||
				!strings.Contains(l["error"].(string), want.panic) || !strings.Contains(l["stack"].(string), "panic_test.go") {
				t.Errorf("panic log line %d: got %v, want level ERROR, %s, status %s, error %q and a stack through panic_test.go", i, l, want.method, want.status, want.panic)
			}
			if id, _ := l["request_id"].(string); id == "" || l["client"] != "127.0.0.1" {
				t.Errorf("panic log line %d: got %v, want a request_id and client 127.0.0.1", i, l)
			}
		}
		if s := serverLog.String(); s != "" {
			t.Errorf("net/http logged: %s", s)
		}
	}
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
