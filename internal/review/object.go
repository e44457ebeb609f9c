package review

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
)

// ErrMalformed is wrapped by Parse's errors: the object does not have its
// kind's form. No writer of berth makes one; the collector logs and drops
// such a review.
var ErrMalformed = errors.New("review: malformed object")

// Object is a review object, parsed. Which fields are set depends on Kind.
type Object struct {
	Kind Kind
	// RepoID is the repository of a tag, manifest, link or uploaded_blob
	// review, and of a repository's purge.
	RepoID int64
	// NamespaceID is the namespace of a namespace's purge.
	NamespaceID int64
	// Digest is the manifest's (manifest), the blob's (link, blob,
	// uploaded_blob).
	Digest digest.Digest
	// ID is the tag row's id (tag) or the label's (label).
	ID int64
	// UploadID is the upload session's id (upload).
	UploadID string
}

// TagObject is the object of a tag review: "repoID@tagID". The repository
// guards against a reused row id (SQLite may give a deleted row's id to a
// row of another repository).
func TagObject(repoID, tagID int64) string {
	return strconv.FormatInt(repoID, 10) + "@" + strconv.FormatInt(tagID, 10)
}

// RepoDigestObject is the object of a manifest, link or uploaded_blob
// review: "repoID@digest".
func RepoDigestObject(repoID int64, d digest.Digest) string {
	return RepoPrefix(repoID) + d.String()
}

// RepoPrefix is the prefix every repository-scoped object of the
// repository starts with ("repoID@"): tag, manifest, link, uploaded_blob.
// The collector's --repo filter claims reviews by it.
func RepoPrefix(repoID int64) string {
	return strconv.FormatInt(repoID, 10) + "@"
}

// BlobObject is the object of a blob review: the digest.
func BlobObject(d digest.Digest) string { return d.String() }

// LabelObject is the object of a label review: the label's id.
func LabelObject(id int64) string { return strconv.FormatInt(id, 10) }

// UploadObject is the object of an upload review: the session's id.
func UploadObject(id string) string { return id }

// namespacePrefix starts the object of a namespace's purge.
const namespacePrefix = "ns:"

// RepoPurgeObject is the object of a repository's purge: its id.
func RepoPurgeObject(repoID int64) string { return strconv.FormatInt(repoID, 10) }

// NamespacePurgeObject is the object of a namespace's purge: "ns:" and its id.
func NamespacePurgeObject(nsID int64) string { return namespacePrefix + strconv.FormatInt(nsID, 10) }

// PolicyObject is the object of a repository's policy evaluation:
// "repoID@", the repository's prefix, so a run limited to the repository
// claims it.
func PolicyObject(repoID int64) string { return RepoPrefix(repoID) }

// String is the object as stored: Parse(o.Kind, o.String()) gives o back.
func (o Object) String() string {
	switch o.Kind {
	case KindTag:
		return TagObject(o.RepoID, o.ID)
	case KindManifest, KindLink, KindUploadedBlob:
		return RepoDigestObject(o.RepoID, o.Digest)
	case KindBlob:
		return BlobObject(o.Digest)
	case KindLabel:
		return LabelObject(o.ID)
	case KindUpload:
		return UploadObject(o.UploadID)
	case KindPurge:
		if o.NamespaceID != 0 {
			return NamespacePurgeObject(o.NamespaceID)
		}
		return RepoPurgeObject(o.RepoID)
	case KindPolicy:
		return PolicyObject(o.RepoID)
	}
	return ""
}

// Parse reads the object of a review of kind. Its error wraps ErrMalformed
// and says what is wrong: a kind it does not know, an id that is not a
// positive decimal number as berth writes it, a digest go-digest refuses.
func Parse(kind Kind, object string) (Object, error) {
	o, err := parse(kind, object)
	if err != nil {
		return Object{}, fmt.Errorf("%s review object %q: %w: %w", kind, object, ErrMalformed, err)
	}
	return o, nil
}

func parse(kind Kind, object string) (Object, error) {
	o := Object{Kind: kind}
	var err error
	switch kind {
	case KindTag:
		repo, id, ok := strings.Cut(object, "@")
		if !ok {
			return o, errors.New("want repoID@tagID")
		}
		if o.RepoID, err = parseID("repository id", repo); err != nil {
			return o, err
		}
		o.ID, err = parseID("tag id", id)
	case KindManifest, KindLink, KindUploadedBlob:
		repo, d, ok := strings.Cut(object, "@")
		if !ok {
			return o, errors.New("want repoID@digest")
		}
		if o.RepoID, err = parseID("repository id", repo); err != nil {
			return o, err
		}
		o.Digest, err = parseDigest(d)
	case KindBlob:
		o.Digest, err = parseDigest(object)
	case KindLabel:
		o.ID, err = parseID("label id", object)
	case KindUpload:
		if object == "" {
			return o, errors.New("empty upload id")
		}
		o.UploadID = object
	case KindPurge:
		if ns, ok := strings.CutPrefix(object, namespacePrefix); ok {
			o.NamespaceID, err = parseID("namespace id", ns)
		} else {
			o.RepoID, err = parseID("repository id", object)
		}
	case KindPolicy:
		repo, ok := strings.CutSuffix(object, "@")
		if !ok {
			return o, errors.New("want repoID@")
		}
		o.RepoID, err = parseID("repository id", repo)
	default:
		return o, fmt.Errorf("unknown review kind %q", kind)
	}
	return o, err
}

// parseID reads an id as FormatInt writes it: positive, decimal, no sign,
// no leading zero (so that one row has one object).
func parseID(what, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return 0, fmt.Errorf("%s %q is not a positive decimal number", what, s)
	}
	return id, nil
}

func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("digest %q: %w", s, err)
	}
	return d, nil
}
