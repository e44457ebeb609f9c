package api

// What the request log and the login throttle know of a request beyond its
// method and path: who sent it (clientAddr, through trusted proxies), its
// id (X-Request-Id), and how many body bytes it carried (countingBody).

import (
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// requestIDHeader carries a request's id, from the client (or a proxy in
// front of berth) and back in the response.
const requestIDHeader = "X-Request-Id"

// maxRequestID bounds an id taken from a client.
const maxRequestID = 128

// requestID is the client's X-Request-Id when it is sane (1 to 128
// printable ASCII characters), so that a proxy's or a CI job's id finds
// this request in berth's log; otherwise a fresh random one.
func requestID(r *http.Request) string {
	if id := r.Header.Get(requestIDHeader); saneRequestID(id) {
		return id
	}
	return rand.Text()
}

// RequestID is requestID for handlers served beside the API (the web
// interface): the client's sane X-Request-Id, or a fresh one.
func RequestID(r *http.Request) string { return requestID(r) }

func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// clientAddr is the client's IP address, as ServeHTTP found it (peerAddr
// with Options.TrustedProxies); for a request that did not come through
// ServeHTTP, the connection's peer.
func clientAddr(r *http.Request) string {
	if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok && info.client != "" {
		return info.client
	}
	return peerAddr(r, nil)
}

// ClientAddr is the address of the client of r, as the request log and
// the login throttle see it: the connection's peer, or, behind trusted
// proxies, the address their X-Forwarded-For names (peerAddr). For
// handlers served beside the API (metrics).
func ClientAddr(r *http.Request, trusted []netip.Prefix) string { return peerAddr(r, trusted) }

// peerAddr is the address of the client of r. It is the connection's
// peer, unless the peer is one of trusted: then a proxy made the
// connection, and X-Forwarded-For (each proxy appends the address it
// received the request from) names the client. The header is read from
// its right end, and the first address that is not a trusted proxy is the
// client: anything left of it was written by a party berth does not trust
// (the client itself may send any X-Forwarded-For). An entry that is not
// an address stops the walk at the trusted hop right of it; a header that
// names only trusted proxies gives its leftmost address.
func peerAddr(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(trusted) == 0 {
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !isTrusted(peer.Unmap(), trusted) {
		return host
	}
	client := peer.Unmap()
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		entries := strings.Split(hops[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			a, ok := parseHop(entries[j])
			if !ok {
				return client.String()
			}
			client = a
			if !isTrusted(a, trusted) {
				return a.String()
			}
		}
	}
	return client.String()
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port (some proxies add it).
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// countingBody counts the bytes the handler read of a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
