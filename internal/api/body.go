package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// errBodyIdle: a request body sent nothing for Options.BodyIdleTimeout,
// and the request was cut (it is in the error table of errors.go).
var errBodyIdle = errors.New("request body made no progress")

// idleBody cuts a request body that makes no progress: before each Read it
// moves the connection's read deadline (http.ResponseController) timeout
// ahead, so a client that stalls mid-body gets its read failed after
// timeout, while one that keeps sending, however slowly, is never cut.
// The deadline is cleared when the body ends, so that neither the work
// after it (a commit that hashes a large upload) nor net/http's watch
// for a client going away is cut; and when the handler returns without
// reading the body to its end, it is set one timeout ahead, which bounds
// what net/http reads of the rest before answering.
//
// The failed read makes net/http cancel the request's context, so what
// the handler returns then is a cancellation; ServeHTTP answers
// errBodyIdle instead when stalled says so.
type idleBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration

	unsupported bool // the connection has no deadlines: plain reads
	ended       bool // EOF was read
	stalled     bool // a read hit the deadline
}

func newIdleBody(w http.ResponseWriter, body io.ReadCloser, timeout time.Duration) *idleBody {
	return &idleBody{ReadCloser: body, rc: http.NewResponseController(w), timeout: timeout}
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.unsupported || b.ended {
		return b.ReadCloser.Read(p)
	}
	if err := b.rc.SetReadDeadline(time.Now().Add(b.timeout)); err != nil {
		b.unsupported = true // http.ErrNotSupported
	}
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.ended = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		b.stalled = true
		return n, fmt.Errorf("no byte of the request body for %s: %w", b.timeout, errBodyIdle)
	}
	return n, err
}

// done is called when the handler has returned.
func (b *idleBody) done() {
	if !b.unsupported && !b.ended && !b.stalled {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	}
}
