package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/berth/berth/internal/bytesize"
	"github.com/berth/berth/internal/duration"
)

// The templates and assets are embedded: berth needs no file beside its
// binary, and no build step (docs/design/web.md).
var (
	//go:embed templates/*.html
	templateFS embed.FS
	//go:embed assets
	assetFS embed.FS
)

// flashes are the messages a POST's 303 may ask for with ?done=<code>. The
// message shown is always one of these, never text from the URL.
var flashes = map[string]string{
	"signed-out": "You are signed out.",
}

// view is what every template is executed with: the layout's data and the
// page's own (Page).
type view struct {
	Page any
	// User is the signed-in user's name, "" when signed out.
	User     string
	SignedIn bool
	// AuthOff: access control is off; there is no sign-in.
	AuthOff bool
	// Admin: the visitor administers the registry (with access control
	// off, everyone does); the collector's link is shown to them.
	Admin bool
	// CSRF is the token every form carries in its hidden field csrf.
	CSRF string
	// Flash is the message of ?done=, or "".
	Flash string
	// Here is the request's path and query, for the sign-in link's next.
	Here string
	// Nav names the current section: namespaces, policies or collector.
	Nav string
	// CSS and JS are the URLs of the stylesheet and the script.
	CSS, JS string
}

// render executes the page template name (templates/<name>.html) in the
// layout with data and writes it with status; nothing is written when the
// template fails, and the error is returned for the error page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) error {
	t, ok := h.views[name]
	if !ok {
		return fmt.Errorf("rendering %s: no such template", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", h.viewOf(r, data)); err != nil {
		return fmt.Errorf("rendering %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = buf.WriteTo(w)
	}
	return nil
}

func (h *Handler) viewOf(r *http.Request, data any) view {
	v := visitOf(r)
	out := view{
		Page:     data,
		SignedIn: v.signedIn,
		AuthOff:  h.opts.Auth == nil,
		Admin:    h.opts.Auth == nil || v.subject.Admin,
		CSRF:     v.csrf,
		Flash:    flashes[r.URL.Query().Get("done")],
		Here:     localPath(r.URL.RequestURI()),
		CSS:      h.assets.url("style.css"),
		JS:       h.assets.url("app.js"),
	}
	if v.signedIn {
		out.User, _ = v.subject.Actor.Account()
	}
	switch routeOf(r).Kind {
	case KindHome, KindNamespace, KindRepository, KindTag:
		out.Nav = "namespaces"
	case KindPolicies:
		out.Nav = "policies"
	case KindCollector:
		out.Nav = "collector"
	}
	return out
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"bytes":          bytesize.Format,
	"time":           timeHTML,
	"duration":       duration.Format,
	"short":          shortDigest,
	"percent":        percent,
	"namespacePath":  NamespacePath,
	"repositoryPath": RepositoryPath,
	"tagPath":        TagPath,
}

// timeHTML writes t as a <time> element: UTC to the minute, the exact
// instant in datetime (the script adds the local time beside it).
func timeHTML(t time.Time) template.HTML {
	t = t.UTC()
	// Only digits, dashes, colons and letters: nothing to escape.
	return template.HTML(`<time datetime="` + t.Format(time.RFC3339) + `">` + t.Format("2006-01-02 15:04") + ` UTC</time>`)
}

// shortDigest is a digest cut to its algorithm and 12 hex digits, the
// length people compare by eye ("sha256:0123456789ab").
func shortDigest(d any) string {
	s := fmt.Sprint(d)
	alg, hex, ok := strings.Cut(s, ":")
	if !ok || len(hex) <= 12 {
		return s
	}
	return alg + ":" + hex[:12]
}

// percent is used as a whole percentage of limit, rounded down; 0 when
// there is no limit.
func percent(used, limit int64) int64 {
	if limit <= 0 {
		return 0
	}
	return used * 100 / limit
}

// parseViews parses the layout once and each page template into a clone
// of it: each page defines the layout's blocks "title" and "main".
func parseViews() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("parsing the layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	views := map[string]*template.Template{}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", base, err)
		}
		views[strings.TrimSuffix(base, ".html")] = t
	}
	return views, nil
}

// asset is one embedded file served under its content hash.
type asset struct {
	hash        string
	contentType string
	body        []byte
}

type assets struct {
	byName map[string]asset
}

// assetTypes are the content types of the assets by extension.
var assetTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

func loadAssets() (*assets, error) {
	entries, err := fs.ReadDir(assetFS, "assets")
	if err != nil {
		return nil, fmt.Errorf("reading the assets: %w", err)
	}
	a := &assets{byName: map[string]asset{}}
	for _, e := range entries {
		ct, ok := assetTypes[path.Ext(e.Name())]
		if !ok {
			return nil, fmt.Errorf("asset %s: no content type for its extension", e.Name())
		}
		body, err := fs.ReadFile(assetFS, "assets/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("reading asset %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(body)
		a.byName[e.Name()] = asset{hash: hex.EncodeToString(sum[:8]), contentType: ct, body: body}
	}
	return a, nil
}

// url is the path an asset is served at: its content hash in it, so that
// it can be cached for a year and a new berth's asset is a new URL.
func (a *assets) url(name string) string {
	return "/-/assets/" + a.byName[name].hash + "/" + name
}

// serveAsset answers GET /-/assets/<hash>/<file>: the file if hash is its
// current content hash (an old berth's URL is 404, not the new content
// cached under it), cached a year.
func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request, rt Route) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return fmt.Errorf("%s of an asset: %w", r.Method, errMethod)
	}
	a, ok := h.assets.byName[rt.File]
	if !ok || a.hash != rt.Hash {
		w.Header().Set("Cache-Control", "no-store")
		return fmt.Errorf("asset %s/%s: %w", rt.Hash, rt.File, errNotFound)
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(a.body)))
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body)
	}
	return nil
}
