package web

import "net/http"

// contentSecurityPolicy allows nothing but this site's own stylesheet,
// script, images (and data: images) and forms: no inline script or style
// anywhere, no framing, no base URL (docs/design/web.md, "CSRF, CSP,
// headers").
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders sets the headers every response of the interface
// carries, pages, assets and errors alike. Caching is set by the caller:
// no-store on pages, a year on assets.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
}
