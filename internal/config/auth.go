package config

import (
	"fmt"
	"net"
	"net/url"
	"time"
)

// DefaultAddr is the default listen address: loopback only, so that a
// registry with access control off is not open to the network by accident
// (docs/design/auth.md, "Secure by default").
const DefaultAddr = "127.0.0.1:5000"

// DefaultTokenTTL is the default of auth.token.ttl: the bound on how long a
// revoked grant keeps working.
const DefaultTokenTTL = 5 * time.Minute

// Auth configures access control (docs/design/auth.md).
type Auth struct {
	// Enabled turns access control on: every request must be permitted.
	Enabled bool      `yaml:"enabled"`
	Token   AuthToken `yaml:"token"`
}

// AuthToken configures the tokens of the Docker/OCI token protocol: berth's
// own, or, with RootCertBundle set, an external issuer's (as distribution's
// auth.token).
type AuthToken struct {
	// Realm is the token endpoint's URL named in challenges; "" derives
	// it from each request (berth's own /auth/token). Required with an
	// external issuer.
	Realm string `yaml:"realm"`
	// Issuer is the iss of tokens ("" : berth for its own).
	Issuer string `yaml:"issuer"`
	// Service is the aud of tokens ("": the host of addr, or of realm).
	Service string `yaml:"service"`
	// RootCertBundle is a PEM file of the external issuer's certificates
	// or public keys; set, berth trusts that issuer and issues no token.
	RootCertBundle string `yaml:"rootcertbundle"`
	// TTL is how long berth's own tokens live.
	TTL Duration `yaml:"ttl"`
}

// External reports whether an external issuer is configured.
func (t AuthToken) External() bool { return t.RootCertBundle != "" }

// validate reports the problems of the auth section and of serving addr
// with access control off.
func (c Config) validateAuth() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	t := c.Auth.Token
	if t.TTL <= 0 || t.TTL.Duration() > 24*time.Hour {
		bad("auth.token.ttl", "must be positive and at most 24h, got %s", t.TTL)
	}
	if t.External() {
		if u, err := url.Parse(t.Realm); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("auth.token.realm", "an external issuer (auth.token.rootcertbundle) needs the URL of its token endpoint, got %q", t.Realm)
		}
		if t.Issuer == "" {
			bad("auth.token.issuer", "required with an external issuer: tokens from any other issuer are refused")
		}
		if t.Service == "" {
			bad("auth.token.service", "required with an external issuer: the audience its tokens name for this registry")
		}
	}
	if (t.External() || t.Realm != "" || t.Issuer != "" || t.Service != "") && !c.Auth.Enabled {
		bad("auth.token", "configured, but access control is off; set auth.enabled (--auth-enabled)")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err == nil && !c.Auth.Enabled && !c.InsecureOpenAccess && !IsLoopback(c.Addr) {
		bad("addr", "%s serves other machines, and access control is off: anyone reaching it could push, delete and purge. "+
			"Turn access control on (auth.enabled, --auth-enabled), listen on %s, "+
			"or, for a registry that must be open to the network, set insecure_open_access (--insecure-open-access)", c.Addr, DefaultAddr)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("metrics_addr", "want host:port, got %q", c.MetricsAddr)
		}
		if !c.Metrics {
			bad("metrics_addr", "set, but metrics are off")
		}
	}
	if c.MetricsAuth && !c.Auth.Enabled {
		bad("metrics_auth", "needs access control on (auth.enabled)")
	}
	return errs
}

// IsLoopback reports whether a listen address binds loopback only:
// localhost, 127.0.0.0/8 or ::1. ":5000" and "0.0.0.0:5000" bind every
// interface.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TokenService is the aud of berth's tokens: configured, else the host
// of the realm, else of addr.
func (c Config) TokenService() string {
	if c.Auth.Token.Service != "" {
		return c.Auth.Token.Service
	}
	if u, err := url.Parse(c.Auth.Token.Realm); err == nil && u.Host != "" {
		return u.Host
	}
	return "berth"
}
