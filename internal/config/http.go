package config

import (
	"fmt"
	"net/netip"
	"strings"
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
	// TrustedProxies are the peers (IP addresses or CIDR prefixes) whose
	// X-Forwarded-For header is believed: the client address of a
	// request (logged, and counted by the login throttle) is the
	// rightmost address of X-Forwarded-For that is not one of them. Empty:
	// the header is ignored and the client is the connection's peer.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// TrustedProxyPrefixes parses TrustedProxies: a bare address is a
// single-address prefix (/32, /128). Validate reports the entries that do
// not parse.
func (h HTTP) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range h.TrustedProxies {
		p, err := parseProxy(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parseProxy(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("want an IP address or a CIDR prefix (10.0.0.0/8), got %q", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("want an IP address or a CIDR prefix (10.0.0.0/8), got %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validate reports the problems of the http section, each prefixed with
// its YAML key.
func (h HTTP) validate() []error {
	var errs []error
	if h.BodyIdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("http.body_idle_timeout: must be positive, got %s", h.BodyIdleTimeout))
	}
	for i, s := range h.TrustedProxies {
		if _, err := parseProxy(s); err != nil {
			errs = append(errs, fmt.Errorf("http.trusted_proxies[%d]: %w", i, err))
		}
	}
	return errs
}
