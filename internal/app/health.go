package app

// The health endpoints a load balancer or an orchestrator polls, served
// by routes beside /metrics and never behind access control:
//
//	GET /healthz  200 "ok": the process serves HTTP (it touches nothing)
//	GET /readyz   200 "ok", or 503 "not ready" and one line per problem:
//	              the database answers and its schema is the one this
//	              berth knows, and the blob store is reachable
//
// Readiness is checked at most once per readyTTL whatever the number of
// probes (concurrent probes wait for the one check), each check bounded by
// readyTimeout. A problem's details, which may name hosts or paths, go to
// the log when the answer changes; the probe says only what failed.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
)

const (
	readyTTL     = time.Second
	readyTimeout = 2 * time.Second
)

// healthy answers /healthz.
func healthy(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, "ok\n")
}

// readyCheck is one condition of readiness. check returns the problem as
// the probe may say it ("" when fine) and the error behind it for the log.
type readyCheck struct {
	name  string
	check func(ctx context.Context) (problem string, err error)
}

// readiness answers /readyz.
type readiness struct {
	checks  []readyCheck
	ttl     time.Duration
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger

	mu       sync.Mutex
	checked  time.Time // zero: never
	problems []string  // of the last check; none: ready
}

// newReadiness checks the metadata store and, when it is a blob.Pinger,
// the blob store.
func newReadiness(store *sqlstore.Store, blobs blob.Store, logger *slog.Logger) *readiness {
	checks := []readyCheck{{name: "database", check: func(ctx context.Context) (string, error) {
		err := store.Ready(ctx)
		switch {
		case err == nil:
			return "", nil
		case errors.Is(err, meta.ErrSchemaUnknown), errors.Is(err, meta.ErrSchemaOutdated):
			return err.Error(), err // versions only, and what to do
		}
		return "unreachable", err
	}}}
	if p, ok := blobs.(blob.Pinger); ok {
		checks = append(checks, readyCheck{name: "blob store", check: func(ctx context.Context) (string, error) {
			if err := p.Ping(ctx); err != nil {
				return "unreachable", err
			}
			return "", nil
		}})
	}
	return &readiness{checks: checks, ttl: readyTTL, timeout: readyTimeout, now: time.Now, log: logger}
}

// check returns the problems of the store, checking them again when the
// last check is older than ttl. A probe that goes away does not cut the
// check short: its result serves the next probes.
func (rd *readiness) check(ctx context.Context) []string {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if !rd.checked.IsZero() && rd.now().Sub(rd.checked) < rd.ttl {
		return rd.problems
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rd.timeout)
	defer cancel()
	problems := make([]string, len(rd.checks))
	errs := make([]error, len(rd.checks))
	var wg sync.WaitGroup
	for i, c := range rd.checks {
		wg.Go(func() { problems[i], errs[i] = c.check(ctx) })
	}
	wg.Wait()
	var now []string
	for i, c := range rd.checks {
		if problems[i] != "" {
			now = append(now, c.name+": "+problems[i])
		}
	}
	if !slices.Equal(now, rd.problems) || rd.checked.IsZero() && len(now) > 0 {
		if len(now) == 0 {
			rd.log.Info("ready again")
		}
		for i, c := range rd.checks {
			if errs[i] != nil {
				rd.log.Warn("not ready", "check", c.name, "err", errs[i])
			}
		}
	}
	rd.checked, rd.problems = rd.now(), now
	return now
}

func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	problems := rd.check(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(problems) == 0 {
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = fmt.Fprintf(w, "not ready\n%s\n", strings.Join(problems, "\n"))
}
