package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/meta"
)

// authOptions maps the config onto auth.Options; with an external issuer
// it reads the issuer's key bundle.
func authOptions(cfg config.Config) (auth.Options, error) {
	t := cfg.Auth.Token
	opts := auth.Options{
		Issuer:   t.Issuer,
		Service:  cfg.TokenService(),
		TokenTTL: t.TTL.Duration(),
		// Sessions of the web interface.
		SessionTTL:  cfg.Web.SessionTTL.Duration(),
		SessionIdle: cfg.Web.SessionIdle.Duration(),
	}
	if t.External() {
		keys, err := auth.LoadIssuerBundle(t.RootCertBundle)
		if err != nil {
			return auth.Options{}, err
		}
		opts.External = &auth.ExternalIssuer{Realm: t.Realm, Issuer: t.Issuer, Service: t.Service, Keys: keys}
	}
	return opts, nil
}

// startAuth returns serve's access control, nil when it is off, and logs
// what an operator must know about the exposure of the server.
func startAuth(ctx context.Context, cfg config.Config, store meta.Store, logger *slog.Logger) (*auth.Service, error) {
	if !cfg.Auth.Enabled {
		if config.IsLoopback(cfg.Addr) {
			logger.Warn("access control is off: anyone who can reach " + cfg.Addr + " may push, delete and purge; " +
				"the server listens on loopback only. Turn it on with --auth-enabled (README, \"Access control\")")
		} else {
			logger.Warn("insecure_open_access: access control is off and the server listens on "+cfg.Addr+
				": anyone who can reach it may push, overwrite, delete and purge", "addr", cfg.Addr)
		}
		return nil, nil
	}
	opts, err := authOptions(cfg)
	if err != nil {
		return nil, err
	}
	svc := auth.New(store, opts)
	if err := svc.Start(ctx); err != nil {
		return nil, err
	}
	if users, err := svc.Accounts(ctx, meta.AccountUser, ""); err == nil && !slices.ContainsFunc(users, func(a meta.Account) bool { return a.Admin }) {
		logger.Warn("access control is on and no registry administrator exists: nobody can create namespaces or manage users. " +
			"Create one on this machine with: berth user add NAME --admin (with the same --data/--db)")
	}
	if !cfg.TLS.Enabled() && !config.IsLoopback(cfg.Addr) {
		logger.Warn("access control is on over plain HTTP on " + cfg.Addr + ": passwords and tokens cross the network readable; " +
			"configure tls.cert and tls.key, or terminate TLS in a proxy in front of berth")
	}
	if opts.External != nil {
		logger.Info("access control on, tokens from an external issuer", "realm", opts.External.Realm,
			"issuer", opts.External.Issuer, "service", opts.External.Service, "keys", len(opts.External.Keys))
	} else {
		logger.Info("access control on", "service", opts.Service, "token_ttl", cfg.Auth.Token.TTL.String())
	}
	return svc, nil
}

// adminOnly wraps h so that only a registry administrator's Basic
// credentials reach it (metrics_auth). Failed logins are throttled by the
// client's address as the API sees it (trusted proxies included).
func adminOnly(svc *auth.Service, trusted []netip.Prefix, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, secret, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="berth metrics"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		sub, err := svc.Authenticate(r.Context(), name, secret, api.ClientAddr(r, trusted))
		var te *auth.ThrottledError
		switch {
		case errors.As(err, &te):
			http.Error(w, te.Error(), http.StatusTooManyRequests)
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Basic realm="berth metrics"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
		case !sub.Admin:
			http.Error(w, "metrics are for registry administrators", http.StatusForbidden)
		default:
			h.ServeHTTP(w, r)
		}
	})
}
