package review_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/review"
)

var (
	d256 = digest.Digest("sha256:" + strings.Repeat("ab", 32))
	d512 = digest.Digest("sha512:" + strings.Repeat("cd", 64))
)

// TestObjectRoundTrip: every constructor's text parses back to the typed
// object, and String gives the same text: the stored format is the
// constructors'.
func TestObjectRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		text string
		want review.Object
	}{
		{review.TagObject(12, 345), review.Object{Kind: review.KindTag, RepoID: 12, ID: 345}},
		{review.RepoDigestObject(12, d256), review.Object{Kind: review.KindManifest, RepoID: 12, Digest: d256}},
		{review.RepoDigestObject(7, d512), review.Object{Kind: review.KindLink, RepoID: 7, Digest: d512}},
		{review.RepoDigestObject(1, d256), review.Object{Kind: review.KindUploadedBlob, RepoID: 1, Digest: d256}},
		{review.BlobObject(d256), review.Object{Kind: review.KindBlob, Digest: d256}},
		{review.LabelObject(9), review.Object{Kind: review.KindLabel, ID: 9}},
		{review.UploadObject("0f1e2d"), review.Object{Kind: review.KindUpload, UploadID: "0f1e2d"}},
		{review.RepoPurgeObject(44), review.Object{Kind: review.KindPurge, RepoID: 44}},
		{review.NamespacePurgeObject(3), review.Object{Kind: review.KindPurge, NamespaceID: 3}},
		{review.PolicyObject(8), review.Object{Kind: review.KindPolicy, RepoID: 8}},
	} {
		t.Run(string(tt.want.Kind)+"/"+tt.text, func(t *testing.T) {
			got, err := review.Parse(tt.want.Kind, tt.text)
			if err != nil {
				t.Fatalf("Parse(%s, %q): %v", tt.want.Kind, tt.text, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%s, %q) (-want +got):\n%s", tt.want.Kind, tt.text, diff)
			}
			if s := got.String(); s != tt.text {
				t.Errorf("String: got %q, want %q", s, tt.text)
			}
		})
	}
}

// TestObjectText pins the stored text: databases hold it.
func TestObjectText(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{review.TagObject(12, 345), "12@345"},
		{review.RepoDigestObject(12, d256), "12@" + d256.String()},
		{review.RepoPrefix(12), "12@"},
		{review.PolicyObject(12), "12@"},
		{review.BlobObject(d256), d256.String()},
		{review.LabelObject(9), "9"},
		{review.UploadObject("abc"), "abc"},
		{review.RepoPurgeObject(44), "44"},
		{review.NamespacePurgeObject(3), "ns:3"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestParseMalformed: what no writer of berth makes is an error wrapping
// ErrMalformed, never a half-read object.
func TestParseMalformed(t *testing.T) {
	for _, tt := range []struct {
		kind   review.Kind
		object string
		why    string // a part of the error
	}{
		{review.KindTag, "12", "want repoID@tagID"},
		{review.KindTag, "12@x", "tag id"},
		{review.KindTag, "x@3", "repository id"},
		{review.KindTag, "0@3", "repository id"},
		{review.KindTag, "-1@3", "repository id"},
		{review.KindTag, "012@3", "repository id"},
		{review.KindTag, "+12@3", "repository id"},
		{review.KindManifest, d256.String(), "want repoID@digest"},
		{review.KindManifest, "12@", "digest"},
		{review.KindManifest, "12@sha256:abc", "digest"},
		{review.KindLink, "12@sha256:" + strings.Repeat("AB", 32), "digest"},
		{review.KindUploadedBlob, "12@md5:" + strings.Repeat("ab", 16), "digest"},
		{review.KindBlob, "sha256", "digest"},
		{review.KindBlob, "12@" + d256.String(), "digest"},
		{review.KindBlob, "sha256:" + strings.Repeat("ab", 31), "digest"},
		{review.KindLabel, "label", "label id"},
		{review.KindLabel, "", "label id"},
		{review.KindUpload, "", "empty upload id"},
		{review.KindPurge, "ns:", "namespace id"},
		{review.KindPurge, "ns:x", "namespace id"},
		{review.KindPurge, "repo", "repository id"},
		{review.KindRepository, "12", "unknown review kind"},
		{"", "12", "unknown review kind"},
	} {
		t.Run(string(tt.kind)+"/"+tt.object, func(t *testing.T) {
			o, err := review.Parse(tt.kind, tt.object)
			if !errors.Is(err, review.ErrMalformed) {
				t.Fatalf("Parse(%s, %q): got %+v, %v; want an error wrapping ErrMalformed", tt.kind, tt.object, o, err)
			}
			if !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), tt.object) {
				t.Errorf("Parse(%s, %q): error %q should name the object and say %q", tt.kind, tt.object, err, tt.why)
			}
			if o != (review.Object{}) {
				t.Errorf("Parse(%s, %q): got object %+v with the error, want the zero Object", tt.kind, tt.object, o)
			}
		})
	}
}

// TestParseDigestErrors: a digest go-digest refuses keeps go-digest's
// error in the chain.
func TestParseDigestErrors(t *testing.T) {
	_, err := review.Parse(review.KindBlob, "sha256:"+strings.Repeat("ab", 31))
	if !errors.Is(err, digest.ErrDigestInvalidLength) {
		t.Errorf("short sha256: got %v, want digest.ErrDigestInvalidLength in the chain", err)
	}
	_, err = review.Parse(review.KindBlob, "nohash:abc")
	if !errors.Is(err, digest.ErrDigestUnsupported) {
		t.Errorf("unknown algorithm: got %v, want digest.ErrDigestUnsupported in the chain", err)
	}
}

// TestKinds pins the stored names of the review kinds.
func TestKinds(t *testing.T) {
	want := []review.Kind{"tag", "manifest", "link", "blob", "label", "uploaded_blob", "upload", "purge", "policy"}
	if diff := cmp.Diff(want, review.Kinds()); diff != "" {
		t.Errorf("Kinds (-want +got):\n%s", diff)
	}
}

func TestPolicy(t *testing.T) {
	want := review.Policy{Grace: time.Hour, UploadExpiry: 24 * time.Hour, TagRetention: 14 * 24 * time.Hour, CollectUntagged: true,
		AttachmentsFollowSubject: true}
	if got := review.DefaultPolicy(); got != want {
		t.Errorf("DefaultPolicy: got %+v, want %+v", got, want)
	}
	if err := (review.Policy{}).Validate(); err != nil {
		t.Errorf("zero policy (every window 0): got %v, want nil", err)
	}
	if err := review.DefaultPolicy().Validate(); err != nil {
		t.Errorf("default policy: got %v, want nil", err)
	}
	err := review.Policy{Grace: -time.Second, UploadExpiry: time.Hour, TagRetention: -time.Minute}.Validate()
	if err == nil {
		t.Fatal("negative grace and retention: got nil, want an error")
	}
	for _, part := range []string{"grace is -1s", "tag retention is -1m0s", "cannot be negative"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q should say %q", err, part)
		}
	}
	if strings.Contains(err.Error(), "upload expiry") {
		t.Errorf("error %q names the valid upload expiry", err)
	}
}
