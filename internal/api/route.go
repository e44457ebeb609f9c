package api

import (
	"strings"
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
)

var kindNames = [...]string{"unknown", "base", "catalog", "manifest", "blob", "uploads", "upload", "tags", "referrers", "management"}

func (k Kind) String() string { return kindNames[k] }

// Route is a parsed OCI distribution path. Repo is the repository name as
// written (not yet validated), Ref a manifest reference or a digest (not yet
// parsed), UploadID an upload session id.
type Route struct {
	Kind     Kind
	Repo     string
	Ref      string
	UploadID string
}

// ParseRoute parses an OCI distribution path. Repository names contain
// slashes, so a path is read from its end: the last one to three segments
// say the kind, everything before them is the name. A path that names
// nothing gives KindUnknown. A management path (/berth/v1/...) gives
// KindManagement with the rest of the path in Ref; parseMgmtRoute reads it.
func ParseRoute(path string) Route {
	if rest, ok := strings.CutPrefix(path, mgmtPrefix); ok {
		return Route{Kind: KindManagement, Ref: rest}
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
		return Route{Kind: KindManifest, Repo: name(2), Ref: segs[n-1]}
	case n >= 3 && segs[n-2] == "blobs":
		return Route{Kind: KindBlob, Repo: name(2), Ref: segs[n-1]}
	case n >= 3 && segs[n-2] == "referrers":
		return Route{Kind: KindReferrers, Repo: name(2), Ref: segs[n-1]}
	}
	return Route{}
}
