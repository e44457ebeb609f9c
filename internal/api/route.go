package api

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/berth/berth/internal/registry"
)

// Kind is the resource a request path names.
type Kind int

const (
	KindUnknown    Kind = iota
	KindBase            // /v2/
	KindCatalog         // /v2/_catalog
	KindManifest        // /v2/<name>/manifests/<reference>
	KindBlob            // /v2/<name>/blobs/<digest>
	KindUploads         // /v2/<name>/blobs/uploads/
	KindUpload          // /v2/<name>/blobs/uploads/<id>
	KindTags            // /v2/<name>/tags/list
	KindReferrers       // /v2/<name>/referrers/<digest>
	KindManagement      // /berth/v1/<rest> (Ref holds <rest>; see mgmt.go)
	KindToken           // /auth/token (token.go)
)

var kindNames = [...]string{"unknown", "base", "catalog", "manifest", "blob", "uploads", "upload", "tags", "referrers", "management", "token"}

func (k Kind) String() string { return kindNames[k] }

// Route is a parsed OCI distribution path. Repo is the repository name as
// the client sent it (not yet validated, and never percent-decoded), Ref a
// manifest reference or a digest, percent-decoded (not yet parsed),
// UploadID an upload session id as sent.
type Route struct {
	Kind     Kind
	Repo     string
	Ref      string
	UploadID string
}

// ParseRoute parses an OCI distribution path as the client sent it, with
// its percent-escapes (requestPath gives it): a proxy in front of berth
// matches the path as sent, so berth must route on the same string, or a
// path spelled /%62erth/v1/... or /v2/demo%2fhello/... would reach what a
// rule on /berth/v1 or on demo/ was meant to keep out. The prefixes and the
// words of the API (manifests, blobs, uploads, tags, list, referrers,
// _catalog) match only as written; an escaped spelling names nothing
// (KindUnknown). Only the reference is percent-decoded, since clients may
// send the ":" of a digest as %3A; Route.Check refuses the rest.
//
// Repository names contain slashes, so a path is read from its end: the
// last one to three segments say the kind, everything before them is the
// name. A path that names nothing gives KindUnknown. A management path
// (/berth/v1/...) gives KindManagement with the rest of the path, as sent,
// in Ref; parseMgmtRoute reads it.
func ParseRoute(path string) Route {
	if rest, ok := strings.CutPrefix(path, mgmtPrefix); ok {
		return Route{Kind: KindManagement, Ref: rest}
	}
	if path == tokenPath {
		return Route{Kind: KindToken}
	}
	if path == "/v2" || path == "/v2/" {
		return Route{Kind: KindBase}
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return Route{}
	}
	if rest == "_catalog" {
		return Route{Kind: KindCatalog}
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	name := func(k int) string { return strings.Join(segs[:n-k], "/") }
	switch {
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		return Route{Kind: KindTags, Repo: name(2)}
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		if segs[n-1] == "" {
			return Route{Kind: KindUploads, Repo: name(3)}
		}
		return Route{Kind: KindUpload, Repo: name(3), UploadID: segs[n-1]}
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		return Route{Kind: KindUploads, Repo: name(2)}
	case n >= 3 && segs[n-1] == "":
		return Route{}
	case n >= 3 && segs[n-2] == "manifests":
		return Route{Kind: KindManifest, Repo: name(2), Ref: unescape(segs[n-1])}
	case n >= 3 && segs[n-2] == "blobs":
		return Route{Kind: KindBlob, Repo: name(2), Ref: unescape(segs[n-1])}
	case n >= 3 && segs[n-2] == "referrers":
		return Route{Kind: KindReferrers, Repo: name(2), Ref: unescape(segs[n-1])}
	}
	return Route{}
}

// unescape percent-decodes a path segment; a malformed escape is left as
// sent, for the reference's own check to refuse (net/http refuses such a
// request line before it gets here).
func unescape(seg string) string {
	if s, err := url.PathUnescape(seg); err == nil {
		return s
	}
	return seg
}

// Check refuses what the path spells with escapes where it must not:
// NAME_INVALID for a repository name with a "%" (every character a name
// may hold is sent as itself, so an escape can only disguise one: %2F
// would make demo%2fhello the repository demo/hello), and, for a
// reference that decodes to a "/", the error of an invalid tag or digest.
// (A management path's names are refused by the registry's name check: a
// "%" is never part of one.)
func (rt Route) Check() error {
	if strings.Contains(rt.Repo, "%") {
		return fmt.Errorf("repository name %q is percent-encoded: a name is matched as sent, and an encoded \"/\" (%%2F) never separates its components: %w", rt.Repo, registry.ErrNameInvalid)
	}
	if rt.Kind != KindManagement && strings.Contains(rt.Ref, "/") {
		sentinel := registry.ErrDigestInvalid
		if rt.Kind == KindManifest && !strings.Contains(rt.Ref, ":") {
			sentinel = registry.ErrTagInvalid
		}
		return fmt.Errorf("reference %q holds an encoded \"/\" (%%2F), which is never part of a tag or digest: %w", rt.Ref, sentinel)
	}
	return nil
}

// requestPath is the path of r as the client sent it, escapes included.
// url.URL keeps it in RawPath whenever it differs from the canonical
// encoding of Path (even when EscapedPath would not use it), and otherwise
// it is that canonical encoding.
func requestPath(u *url.URL) string {
	if u.RawPath != "" {
		return u.RawPath
	}
	return u.EscapedPath()
}
