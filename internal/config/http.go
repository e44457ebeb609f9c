package config

import (
	"fmt"
	"time"
)

// DefaultBodyIdleTimeout is the default of http.body_idle_timeout.
const DefaultBodyIdleTimeout = time.Minute

// HTTP configures the HTTP server's defences against clients that hold a
// connection without making progress (docs/design/hardening.md).
type HTTP struct {
	// BodyIdleTimeout cuts a request body that sends nothing for this
	// long: the request is answered 408 and an upload keeps what it held
	// before it. It bounds the time between two reads, not the whole
	// body, so a slow upload that keeps moving is never cut.
	BodyIdleTimeout Duration `yaml:"body_idle_timeout"`
}

// validate reports the problems of the http section, each prefixed with
// its YAML key.
func (h HTTP) validate() []error {
	var errs []error
	if h.BodyIdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("http.body_idle_timeout: must be positive, got %s", h.BodyIdleTimeout))
	}
	return errs
}
