package config

import (
	"fmt"
	"time"
)

// Defaults of the web interface's sessions (docs/design/web.md).
const (
	DefaultWebSessionTTL  = 12 * time.Hour
	DefaultWebSessionIdle = 2 * time.Hour
)

// maxWebSessionTTL bounds web.session_ttl: a stolen cookie works at most
// that long.
const maxWebSessionTTL = 30 * 24 * time.Hour

// Web configures the web interface served on the registry's port
// (docs/design/web.md).
type Web struct {
	// Enabled serves the pages on / and /-/.
	Enabled bool `yaml:"enabled"`
	// SessionTTL is how long a session lasts from sign-in.
	SessionTTL Duration `yaml:"session_ttl"`
	// SessionIdle ends a session earlier after that long without a
	// request.
	SessionIdle Duration `yaml:"session_idle"`
}

// DefaultWeb is the web section's defaults.
func DefaultWeb() Web {
	return Web{Enabled: true, SessionTTL: Duration(DefaultWebSessionTTL), SessionIdle: Duration(DefaultWebSessionIdle)}
}

// validate reports the problems of the web section, each prefixed with
// its YAML key.
func (w Web) validate() []error {
	var errs []error
	if w.SessionTTL <= 0 || w.SessionTTL.Duration() > maxWebSessionTTL {
		errs = append(errs, fmt.Errorf("web.session_ttl: must be positive and at most 30d, got %s", w.SessionTTL))
	}
	if w.SessionIdle <= 0 {
		errs = append(errs, fmt.Errorf("web.session_idle: must be positive, got %s", w.SessionIdle))
	} else if w.SessionTTL > 0 && w.SessionIdle > w.SessionTTL {
		errs = append(errs, fmt.Errorf("web.session_idle: %s is longer than web.session_ttl (%s), which ends every session first", w.SessionIdle, w.SessionTTL))
	}
	return errs
}
