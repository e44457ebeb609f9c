package web

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/registry"
)

// tagPageSize is how many tags the repository page lists at a time
// (docs/design/web.md).
const tagPageSize = 100

// repositoryView is the repository page's data.
type repositoryView struct {
	Name      string
	Namespace string
	Usage     meta.Usage
	// Prefix is the filter (?q=), After this page's ?after=, Next the
	// next page's ("" on the last).
	Prefix, After, Next string
	Tags                []tagRow
}

// tagRow is one live tag of the repository page.
type tagRow struct {
	registry.TagSummary
	// Kind says what the tag names: "index", "image", or an artifact's
	// type.
	Kind string
	// Attached sums the referrers and attachment tags by kind.
	Attached []attachedCount
	// Pull is the command that pulls the tag from this registry; PullID
	// the id of its element (the copy button's description).
	Pull, PullID string
}

// attachedCount is how many things of one kind are attached to a tag's
// manifest.
type attachedCount struct {
	Kind  string // signatures, attestations, SBOMs, other
	Count int
	// Label is the count in words: "1 signature", "3 SBOMs".
	Label string
	// Types lists the artifact types counted (cosign's attachment tags as
	// "cosign tag").
	Types string
}

// referrerKinds classify the artifact types of referrers for the page,
// by the formats signing and SBOM tools write.
var referrerKinds = map[string]string{
	"application/vnd.dev.cosign.artifact.sig.v1+json": "signatures", // cosign
	"application/vnd.cncf.notary.signature":           "signatures", // notation
	"application/vnd.in-toto+json":                    "attestations",
	"application/vnd.dsse.envelope.v1+json":           "attestations", // cosign attest
	"application/spdx+json":                           "SBOMs",
	"text/spdx":                                       "SBOMs",
	"application/vnd.cyclonedx+json":                  "SBOMs",
	"application/vnd.cyclonedx+xml":                   "SBOMs",
	"application/vnd.syft+json":                       "SBOMs",
}

// attachmentKinds name cosign's attachment tags' kinds as the page counts
// them.
var attachmentKinds = map[registry.AttachmentKind]string{
	registry.AttachmentSignature:   "signatures",
	registry.AttachmentAttestation: "attestations",
	registry.AttachmentSBOM:        "SBOMs",
}

// attachedOrder is the order the kinds are shown in.
var attachedOrder = []string{"signatures", "attestations", "SBOMs", "other"}

// attached sums a tag's referrers and attachment tags by kind.
func attached(rcs []registry.ReferrerCount) []attachedCount {
	by := map[string]*attachedCount{}
	for _, rc := range rcs {
		kind, typ := "other", rc.ArtifactType
		if rc.Attachment != "" {
			kind, typ = attachmentKinds[rc.Attachment], "cosign tag "+string(rc.Attachment)
		} else if k, ok := referrerKinds[rc.ArtifactType]; ok {
			kind = k
		}
		if typ == "" {
			typ = "no artifact type"
		}
		c := by[kind]
		if c == nil {
			c = &attachedCount{Kind: kind}
			by[kind] = c
		}
		c.Count += rc.Count
		if c.Types != "" {
			c.Types += ", "
		}
		c.Types += typ
	}
	var out []attachedCount
	for _, k := range attachedOrder {
		if c := by[k]; c != nil {
			names := attachedNames[k]
			c.Label = strconv.Itoa(c.Count) + " " + names[1]
			if c.Count == 1 {
				c.Label = "1 " + names[0]
			}
			out = append(out, *c)
		}
	}
	return out
}

// attachedNames are the kinds' names, singular and plural.
var attachedNames = map[string][2]string{
	"signatures":   {"signature", "signatures"},
	"attestations": {"attestation", "attestations"},
	"SBOMs":        {"SBOM", "SBOMs"},
	"other":        {"other referrer", "other referrers"},
}

// manifestKind says what a tag names, in a word.
func manifestKind(t registry.TagSummary) string {
	switch {
	case t.ArtifactType != "":
		return t.ArtifactType
	case t.MediaType == oci.MediaTypeOCIIndex || t.MediaType == oci.MediaTypeDockerManifestList:
		return "index"
	default:
		return "image"
	}
}

// repository answers GET /-/repositories/<repo>?q=&after=: the
// repository's usage and one page of its live tags, each with what it
// names and the command that pulls it. 404 for a repository the visitor
// may not pull, as for one that does not exist. Cost: the usage counters
// and one tag page (registry.TagPage: the page's tags by index, then its
// manifests' sizes, children and referrers in a few statements), whatever
// the number of tags.
func (h *Handler) repository(w http.ResponseWriter, r *http.Request) error {
	repo := routeOf(r).Repo
	q := r.URL.Query()
	view := repositoryView{Name: repo, Namespace: auth.Namespace(repo), Prefix: q.Get("q"), After: q.Get("after")}
	if view.After != "" && oci.ValidateTag(view.After) != nil {
		return fmt.Errorf("?after=%q is not a tag name: %w", view.After, errBadForm)
	}
	if len(view.Prefix) > 128 {
		return fmt.Errorf("?q= is longer than a tag name may be: %w", errBadForm)
	}
	if err := h.authorize(r, auth.Pull(repo)); err != nil {
		return err
	}
	ctx := r.Context()
	u, err := h.reg.Usage(ctx, "", repo, false)
	if err != nil {
		return err
	}
	view.Usage = u.Usage
	page, err := h.reg.TagPage(ctx, repo, registry.TagQuery{After: view.After, Prefix: view.Prefix, Limit: tagPageSize})
	if err != nil {
		return err
	}
	view.Next = page.Next
	host := r.Host
	if host == "" {
		host = "REGISTRY"
	}
	for i, t := range page.Tags {
		view.Tags = append(view.Tags, tagRow{TagSummary: t, Kind: manifestKind(t), Attached: attached(t.Referrers),
			Pull: "docker pull " + host + "/" + repo + ":" + t.Name, PullID: "pull-" + strconv.Itoa(i)})
	}
	return h.render(w, r, http.StatusOK, "repository", view)
}
