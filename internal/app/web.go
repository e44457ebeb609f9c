package app

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/web"
)

// newWeb returns the web interface over svc, or nil when web.enabled is
// off. authSvc is nil with access control off; gcWorkers is gc.workers
// (0: no background collector runs, which the collector page says).
func newWeb(svc *Services, authSvc *auth.Service, proxies []netip.Prefix, gcWorkers int, logger *slog.Logger) (http.Handler, error) {
	opts := web.Options{
		Registry:         svc.Registry,
		Collector:        svc.Collector,
		CollectorWorkers: gcWorkers,
		Logger:           logger,
		TrustedProxies:   proxies,
		ClientAddr:       func(r *http.Request) string { return api.ClientAddr(r, proxies) },
		RequestID:        api.RequestID,
	}
	if authSvc != nil { // a nil *auth.Service must stay a nil interface
		opts.Auth = authSvc
	}
	return web.New(opts)
}

// webPath reports whether a request goes to the web interface: GET, HEAD
// or POST of / or of a path under /-/, as sent (escapes included, as the
// API routes).
func webPath(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		return false
	}
	p := r.URL.RawPath
	if p == "" {
		p = r.URL.EscapedPath()
	}
	return p == "/" || strings.HasPrefix(p, "/-/")
}
