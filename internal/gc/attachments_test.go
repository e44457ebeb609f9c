package gc_test

// Attachments follow their subject (docs/design/gc.md): when the collector
// deletes a manifest, the live attachment tags of its digest in the same
// repository — cosign's sha256-<hex>.sig, .att and .sbom, the referrers
// tag schema's sha256-<hex> — end in the same transaction and enter the
// time machine like any ended tag.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
)

func withoutAttachmentsFollowing() option {
	return func(o *gc.Options) { o.Policy.AttachmentsFollowSubject = false }
}

// attached is an image tagged in a repository with what clients attach to
// it by tag: a signature, an attestation and an SBOM under cosign's tags,
// and the referrers tag schema's index listing an OCI 1.1 signature.
type attached struct {
	repo    string
	subject v1.Hash
	// subjectBlobs are the subject's config and layer.
	subjectBlobs []v1.Hash
	tags         map[string]v1.Hash // attachment tag → the manifest it names
	referrer     v1.Hash            // listed by the referrers tag schema's index
	// manifests and blobs are those of the attachments only.
	manifests []v1.Hash
	blobs     []v1.Hash
}

// tagNames lists the attachment tags, sorted.
func (a attached) tagNames() []string {
	var out []string
	for n := range a.tags {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// pushAttached pushes an image to repo:tag and its attachments.
func (h *harness) pushAttached(repo, tag string) attached {
	h.t.Helper()
	img := ociImage(h.t, 1)
	a := attached{repo: repo, subject: h.pushImage(repo, tag, img), subjectBlobs: layerDigests(h.t, img), tags: map[string]v1.Hash{}}
	base := "sha256-" + a.subject.Hex
	for _, suffix := range []string{".sig", ".att", ".sbom"} {
		att := ociImage(h.t, 1)
		a.tags[base+suffix] = h.pushImage(repo, base+suffix, att)
		a.manifests = append(a.manifests, a.tags[base+suffix])
		a.blobs = append(a.blobs, layerDigests(h.t, att)...)
	}
	ref := artifact(h.t, "application/vnd.cncf.notary.signature", descriptor(h.t, img))
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: ref})
	a.tags[base] = h.pushIndex(repo, base, idx)
	a.referrer = mustDigest(h.t, ref)
	a.manifests = append(a.manifests, a.tags[base], a.referrer)
	a.blobs = append(a.blobs, layerDigests(h.t, ref)...)
	return a
}

// lifetime is the newest lifetime of repo:tag.
func (h *harness) lifetime(repo, tag string) registry.Lifetime {
	h.t.Helper()
	hist, err := h.reg.TagHistory(h.ctx, repo, tag)
	if err != nil || len(hist.Lifetimes) == 0 {
		h.t.Fatalf("history of %s:%s: %+v, %v", repo, tag, hist, err)
	}
	return hist.Lifetimes[0]
}

// assertLive checks that each tag of repo is live.
func (h *harness) assertLive(repo string, tags ...string) {
	h.t.Helper()
	for _, tag := range tags {
		if l := h.lifetime(repo, tag); !l.Live {
			h.t.Errorf("%s:%s: ended by %q (%s), want live", repo, tag, l.EndedBy, l.EndCause)
		}
	}
}

// assertSubjectCollected checks that each tag of repo ended with its
// subject, is restorable, and is kept with its manifest.
func (h *harness) assertSubjectCollected(a attached) {
	h.t.Helper()
	for _, tag := range a.tagNames() {
		l := h.lifetime(a.repo, tag)
		if l.Live || l.EndedBy != meta.ActorCollector || l.EndCause != meta.CauseSubjectCollected || !l.Restorable {
			h.t.Errorf("%s:%s: live %v, ended by %q (%s), restorable %v; want ended by collector (subject_collected), restorable",
				a.repo, tag, l.Live, l.EndedBy, l.EndCause, l.Restorable)
		}
		if !h.hasManifest(a.repo, a.tags[tag]) {
			h.t.Errorf("%s:%s: manifest %s collected inside the window", a.repo, tag, a.tags[tag])
		}
	}
}

func endKeys(es []gc.TagEnd) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s:%s %s %s %s", e.Repository, e.Tag, e.Digest, e.Cause, e.Reason))
	}
	slices.Sort(out)
	return out
}

// wantEnds are the ends a collection of a's subject reports.
func (a attached) wantEnds() []string {
	var out []string
	for _, tag := range a.tagNames() {
		out = append(out, fmt.Sprintf("%s:%s %s %s subject sha256:%s collected", a.repo, tag, a.tags[tag], meta.CauseSubjectCollected, a.subject.Hex))
	}
	return out
}

// The subject's window closes and it is collected: its four attachment
// tags end (collector, subject_collected), each restorable for the
// namespace's window; tags of another repository named after the same
// digest, and tags that merely look like attachment tags, stay live. The
// dry run says exactly what the real run does. After the window the
// attachments go, except one restored meanwhile.
func TestAttachmentsFollowSubject(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		a := h.pushAttached("ns/app", "v1")
		// The same names in another repository: not this subject's.
		other := ociImage(t, 1)
		h.pushImage("ns/other", "keep", other)
		for _, tag := range a.tagNames() {
			h.retag("ns/other", tag, mustDigest(t, other))
		}
		// Names that look like attachment tags of the subject, and are not.
		hex := a.subject.Hex
		lookalikes := []string{"sha256-abc", "sha256-abc.sig", "sha256-" + hex[:63] + ".sig", "sha256-" + hex + "0",
			"sha256-" + strings.ToUpper(hex), "sha256-" + strings.ToUpper(hex) + ".sig", "sha256-" + hex + ".foo", "sha512-" + hex + ".sig"}
		plain := ociImage(t, 1)
		h.pushImage("ns/app", "plain", plain)
		for _, tag := range lookalikes {
			h.retag("ns/app", tag, mustDigest(t, plain))
		}
		h.deleteRef(h.tag("ns/app", "v1"))
		h.advance(retention + time.Minute)

		dry, err := h.gc.RunOnce(h.ctx, gc.RunOptions{DryRun: true})
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
		logs := &recorder{}
		opts := h.opts
		opts.Logger = slog.New(logs)
		real := h.collectWith(gc.New(h.store, h.blobs, opts), gc.RunOptions{KeepDeletions: true})

		if got, want := endKeys(real.Ends), a.wantEnds(); !slices.Equal(got, want) {
			t.Errorf("real run ended\n%v\nwant\n%v", got, want)
		}
		if got, want := endKeys(dry.Ends), endKeys(real.Ends); !slices.Equal(got, want) {
			t.Errorf("dry run said it would end\n%v\nreal run ended\n%v", got, want)
		}
		if got, want := deletionKeys(dry.Deletions), deletionKeys(real.Deletions); !slices.Equal(got, want) {
			t.Errorf("dry run said it would delete\n%v\nreal run deleted\n%v", got, want)
		}
		if real.AttachmentsEnded != 4 || dry.AttachmentsEnded != 4 {
			t.Errorf("attachment tags ended: real %d, dry %d; want 4", real.AttachmentsEnded, dry.AttachmentsEnded)
		}
		h.assertGone("ns/app", []v1.Hash{a.subject})
		h.assertSubjectCollected(a)
		h.assertLive("ns/other", a.tagNames()...)
		h.assertLive("ns/app", lookalikes...)

		var evs []string
		for _, e := range h.eventsOf(event.TagSubjectCollected) {
			if e.Actor != meta.ActorCollector {
				t.Errorf("event %s %s:%s: actor %q, want collector", e.Kind, e.Repository, e.Tag, e.Actor)
			}
			evs = append(evs, fmt.Sprintf("%s:%s %s %s %s", e.Repository, e.Tag, e.Digest, meta.CauseSubjectCollected, e.Reason))
		}
		slices.Sort(evs)
		if diff := cmp.Diff(a.wantEnds(), evs); diff != "" {
			t.Errorf("tag.subject_collected events (-want +got):\n%s", diff)
		}
		var logged []string
		for _, rec := range logs.recs {
			if rec.Message != "gc ended tag" {
				continue
			}
			attrs := map[string]string{}
			rec.Attrs(func(at slog.Attr) bool { attrs[at.Key] = at.Value.String(); return true })
			logged = append(logged, fmt.Sprintf("%s:%s %s %s %s", attrs["repository"], attrs["tag"], attrs["digest"], attrs["cause"], attrs["reason"]))
		}
		slices.Sort(logged)
		if diff := cmp.Diff(a.wantEnds(), logged); diff != "" {
			t.Errorf("'gc ended tag' log lines (-want +got):\n%s", diff)
		}

		// Inside the window: restorable like any ended tag, complete.
		h.advance(retention - time.Hour)
		h.collect()
		h.assertSubjectCollected(a)
		sig := "sha256-" + hex + ".sig"
		r, err := h.reg.RestoreTag(h.ctx, "ns/app", sig, registry.RestoreTarget{Digest: a.tags[sig].String()})
		if err != nil || !r.Live || !r.Changed {
			t.Fatalf("restore %s: %+v, %v", sig, r, err)
		}
		h.assertPullable(h.tag("ns/app", sig))

		// After the window the others go, with their blobs.
		h.advance(2 * time.Hour)
		if _, err := h.reg.RestoreTag(h.ctx, "ns/app", "sha256-"+hex+".att", registry.RestoreTarget{Digest: a.tags["sha256-"+hex+".att"].String()}); !errors.Is(err, registry.ErrDenied) {
			t.Errorf("restore after the window: %v, want ErrDenied", err)
		}
		h.settle()
		gone := slices.DeleteFunc(slices.Clone(a.manifests), func(d v1.Hash) bool { return d == a.tags[sig] })
		h.assertGone("ns/app", gone)
		h.assertLive("ns/app", sig)
		h.assertPullable(h.tag("ns/app", sig))
		h.assertLive("ns/app", lookalikes...)
		h.assertLive("ns/other", a.tagNames()...)
		h.assertFixedPoint(nil)
	})
}

// With a window of 0 the ended attachment tags are due at once: the same
// run deletes them and their manifests (and the referrer their index
// listed); their blobs, like the subject's, keep the grace every blob of
// a deleted manifest gets, and go with the next run after it. The dry run
// lists exactly what the real run does.
func TestAttachmentsFollowSubjectWindowZero(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		a := h.pushAttached("ns/app", "v1")
		zero := time.Duration(0)
		if _, err := h.reg.SetNamespaceRetention(h.ctx, "ns", &zero); err != nil {
			t.Fatal(err)
		}
		h.deleteRef(h.tag("ns/app", "v1"))
		h.advance(grace + time.Minute)

		dry, err := h.gc.RunOnce(h.ctx, gc.RunOptions{DryRun: true})
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
		real, err := h.gc.RunOnce(h.ctx, gc.RunOptions{KeepDeletions: true})
		if err != nil || real.Errors != 0 {
			t.Fatalf("run: %v (%d errors)", err, real.Errors)
		}
		if got, want := endKeys(real.Ends), a.wantEnds(); !slices.Equal(got, want) {
			t.Errorf("real run ended\n%v\nwant\n%v", got, want)
		}
		if got, want := endKeys(dry.Ends), endKeys(real.Ends); !slices.Equal(got, want) {
			t.Errorf("dry run said it would end\n%v\nreal run ended\n%v", got, want)
		}
		if got, want := deletionKeys(dry.Deletions), deletionKeys(real.Deletions); !slices.Equal(got, want) {
			t.Errorf("dry run said it would delete\n%v\nreal run deleted\n%v", got, want)
		}
		if real.BytesFreed != dry.BytesFreed {
			t.Errorf("real run freed %d bytes, dry run said %d", real.BytesFreed, dry.BytesFreed)
		}
		// One run: the subject, the v1 row, the four attachment rows, their
		// manifests and the listed referrer.
		if got := real.Deleted[review.KindTag]; got != 5 {
			t.Errorf("tag rows deleted: %d, want 5 (v1 and the four attachment tags)", got)
		}
		h.assertGone("ns/app", append([]v1.Hash{a.subject}, a.manifests...))
		for _, tag := range a.tagNames() {
			if n := h.count(`SELECT COUNT(*) FROM tag t JOIN repository r ON r.id = t.repository_id WHERE r.name = ? AND t.name = ?`, "ns/app", tag); n != 0 {
				t.Errorf("%s: %d tag rows left, want none", tag, n)
			}
		}
		// The blobs keep their grace after their manifests went.
		for _, b := range append(slices.Clone(a.blobs), a.subjectBlobs...) {
			if !h.hasBlob(b) {
				t.Errorf("blob %s deleted within the grace after its manifest", b)
			}
		}
		h.advance(grace + time.Minute)
		h.collect()
		h.assertGone("ns/app", nil, append(slices.Clone(a.blobs), a.subjectBlobs...)...)
		h.fixedPoint()
	})
}

// With the setting off nothing ends: the attachment tags stay live, and
// keep their manifests, after their subject is collected.
func TestAttachmentsFollowSubjectOff(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		a := h.pushAttached("ns/app", "v1")
		h.deleteRef(h.tag("ns/app", "v1"))
		h.advance(retention + time.Minute)
		s := h.collect()
		h.assertGone("ns/app", []v1.Hash{a.subject})
		if s.AttachmentsEnded != 0 || len(s.Ends) != 0 || len(h.eventsOf(event.TagSubjectCollected)) != 0 {
			t.Errorf("with the setting off: %d attachment tags ended, ends %v", s.AttachmentsEnded, s.Ends)
		}
		h.settle()
		h.assertLive("ns/app", a.tagNames()...)
		for _, tag := range a.tagNames() {
			h.assertPullable(h.tag("ns/app", tag))
		}
		h.assertFixedPoint(nil)
	}, withoutAttachmentsFollowing())
}

// A tag PUT locks the manifest it points at, not its subject: a new
// signature pushed for a subject already collected is a live tag like any
// other, and nothing ends it (the subject is not collected again).
func TestAttachmentPushedAfterSubjectCollected(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		a := h.pushAttached("ns/app", "v1")
		h.deleteRef(h.tag("ns/app", "v1"))
		h.advance(retention + time.Minute)
		h.collect()
		sig := "sha256-" + a.subject.Hex + ".sig"
		late := h.pushImage("ns/app", sig, ociImage(t, 1))
		h.settle()
		if l := h.lifetime("ns/app", sig); !l.Live || l.Manifest.String() != late.String() {
			t.Fatalf("%s pushed after its subject was collected: %+v, want live on %s", sig, l, late)
		}
		h.assertPullable(h.tag("ns/app", sig))
		h.assertFixedPoint(nil)
	})
}

// On PostgreSQL a live attachment tag another transaction holds is left to
// it: the collector does not wait for the writer (the subject and the
// other attachments are decided), and the held tag stays live when the
// writer does not end it.
func TestAttachmentHeldByWriterIsLeft(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		if h.store.Dialect() != "postgres" {
			t.Skip("SQLite has one writer: a collector transaction never runs beside another write")
		}
		a := h.pushAttached("ns/app", "v1")
		h.deleteRef(h.tag("ns/app", "v1"))
		h.advance(retention + time.Minute)
		sig := "sha256-" + a.subject.Hex + ".sig"
		held, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- h.store.Update(h.ctx, func(tx meta.Tx) error {
				r, err := tx.Repository(h.ctx, "ns/app", meta.LockNone)
				if err != nil {
					return err
				}
				live, err := tx.LiveTag(h.ctx, r.ID, sig, h.clock.Now())
				if err == nil {
					_, err = tx.TagByID(h.ctx, live.ID, meta.LockUpdate)
				}
				close(held)
				<-release
				return err
			})
		}()
		<-held
		ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
		s, err := h.gc.RunOnce(ctx, gc.RunOptions{KeepDeletions: true})
		cancel()
		close(release)
		if err != nil {
			t.Fatalf("collector while a writer held an attachment tag: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		h.assertGone("ns/app", []v1.Hash{a.subject})
		if s.AttachmentsEnded != 3 {
			t.Errorf("attachment tags ended: %d, want 3 (all but the held one)", s.AttachmentsEnded)
		}
		h.assertLive("ns/app", sig)
		h.settle()
		h.assertLive("ns/app", sig)
		h.assertFixedPoint(nil)
	})
}
