package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/policy"
	"github.com/berth/berth/internal/review"
)

// Expiry labels: a manifest carrying one tags its tag with an expiry at
// push time (berth's own label wins over Quay's).
const (
	LabelExpiresAfter     = "berth.expires-after"
	LabelQuayExpiresAfter = "quay.expires-after"
)

// maxTagRows bounds the tag rows of one manifest read in one transaction.
const maxTagRows = 10000

// maxConfigBytes bounds how much of an image config is read for its labels.
const maxConfigBytes = 8 << 20

// Config media types whose labels become manifest labels.
var labelConfigTypes = []string{
	"application/vnd.oci.image.config.v1+json",
	"application/vnd.docker.container.image.v1+json",
}

// GetManifest returns the manifest ref (tag or digest) of repo, with its
// body. A manifest whose review is due within the grace is revived: the
// review is postponed to now + 1.5 × grace (gc.md, "a read that revives").
// A read by tag records the tag's pull, in the background, when the last
// one recorded is older than Options.PullInterval (pulls.go).
func (r *Registry) GetManifest(ctx context.Context, repo, ref string) (meta.Manifest, error) {
	m, pulled, err := r.getManifest(ctx, repo, ref)
	if err == nil && pulled != 0 {
		r.pulls.note(pulled, r.now())
	}
	return m, err
}

// getManifest is GetManifest; pulled is the id of the live tag row read,
// when its pull is due for recording.
func (r *Registry) getManifest(ctx context.Context, repo, ref string) (m meta.Manifest, pulled int64, err error) {
	if err := validName(repo); err != nil {
		return meta.Manifest{}, 0, err
	}
	rf, err := oci.ParseReference(ref)
	if err != nil {
		return meta.Manifest{}, 0, err
	}
	now := r.now()
	var reviews []reviewKey
	stale := false
	err = r.store.View(ctx, func(tx meta.Tx) error {
		pulled = 0
		rp, err := readRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		d := rf.Digest
		if rf.Tag != "" {
			t, err := tx.LiveTag(ctx, rp.ID, rf.Tag, now)
			if isNotFound(err) {
				return fmt.Errorf("tag %q in repository %q: %w", rf.Tag, repo, ErrManifestUnknown)
			}
			if err != nil {
				return fmt.Errorf("reading tag %q: %w", rf.Tag, err)
			}
			d = t.Manifest
			if r.pulls.due(t.PulledAt, now) {
				pulled = t.ID
			}
		}
		if m, err = manifestRow(ctx, tx, rp, d, meta.LockNone); err != nil {
			return err
		}
		reviews = []reviewKey{{review.KindManifest, review.RepoDigestObject(rp.ID, d)}}
		stale, err = r.reviveDue(ctx, tx, reviews)
		return err
	})
	if err != nil || !stale {
		return m, pulled, err
	}
	err = r.store.Update(ctx, func(tx meta.Tx) error {
		rp := meta.Repository{ID: m.RepoID, Name: repo}
		var err error
		if m, err = manifestRow(ctx, tx, rp, m.Digest, meta.LockShare); err != nil {
			return err
		}
		return r.revive(ctx, tx, reviews)
	})
	return m, pulled, err
}

// manifestRow reads a manifest a client can see: a withdrawn one (DELETE
// by digest) is ErrManifestUnknown like an absent one.
func manifestRow(ctx context.Context, tx meta.Tx, repo meta.Repository, d digest.Digest, lock meta.Lock) (meta.Manifest, error) {
	m, err := tx.Manifest(ctx, repo.ID, d, lock)
	if isNotFound(err) || err == nil && m.Withdrawn() {
		return meta.Manifest{}, fmt.Errorf("manifest %s in repository %q: %w", d, repo.Name, ErrManifestUnknown)
	}
	if err != nil {
		return m, fmt.Errorf("reading manifest %s: %w", d, err)
	}
	return m, nil
}

// PushedManifest is the result of PutManifest.
type PushedManifest struct {
	Digest  digest.Digest
	Subject digest.Digest // "" when the manifest has none
}

// PutManifest stores body as manifest ref (tag or digest) of repo.
//
// The body must be at most oci.MaxManifestSize bytes (ErrTooLarge). Its
// digest uses the algorithm of ref when ref is a digest (and must equal it,
// else ErrDigestInvalid), sha256 otherwise. Every blob must be linked to the
// repository (*ManifestBlobUnknownError), with the size its descriptor says
// (ErrManifestInvalid). Every entry of an index must be a manifest of the
// repository or, unless its media type is a manifest's, a blob of the
// repository: a BuildKit registry cache lists its layers and cache config
// (ErrManifestUnknown for a missing manifest, *ManifestBlobUnknownError for
// any other missing entry; docs/design/clients.md).
//
// Labels are the config's labels overlaid by the manifest's annotations (an
// annotation wins over a config label of the same key). A tag pushed with a
// berth.expires-after (or quay.expires-after) label gets an expiry of now
// plus that duration; an invalid value is ignored, as Quay does, and so is
// the label of a tag an immutable rule covers. Re-pushing a tag onto the
// manifest it already points at keeps the current tag row (no new history
// entry, expiry unchanged); moving a live tag an immutable rule covers is
// refused with ErrImmutable.
func (r *Registry) PutManifest(ctx context.Context, repo, ref, contentType string, body []byte) (PushedManifest, error) {
	if err := validName(repo); err != nil {
		return PushedManifest{}, err
	}
	rf, err := oci.ParseReference(ref)
	if err != nil {
		return PushedManifest{}, err
	}
	if len(body) > oci.MaxManifestSize {
		return PushedManifest{}, fmt.Errorf("manifest is %d bytes, more than the %d-byte limit: %w", len(body), oci.MaxManifestSize, ErrTooLarge)
	}
	alg := digest.SHA256
	if rf.Digest != "" {
		alg = rf.Digest.Algorithm()
	}
	d := alg.FromBytes(body)
	if rf.Digest != "" && d != rf.Digest {
		return PushedManifest{}, fmt.Errorf("manifest body has digest %s, not %s as in the URL: %w (%w)", d, rf.Digest, ErrDigestMismatch, ErrDigestInvalid)
	}
	m, err := oci.ParseManifest(contentType, body)
	if err != nil {
		return PushedManifest{}, err
	}
	labels, err := r.configLabels(ctx, repo, m)
	if err != nil {
		return PushedManifest{}, err
	}
	for k, v := range m.Annotations {
		labels[k] = v
	}
	var expiry *time.Duration
	for _, key := range []string{LabelExpiresAfter, LabelQuayExpiresAfter} {
		if v, ok := labels[key]; ok {
			if e, err := oci.ParseExpiry(v); err == nil {
				expiry = &e
				break
			}
		}
	}

	var blobs []neededBlob
	for _, b := range m.Blobs() {
		if foreignLayer(b.MediaType) {
			continue
		}
		role := roleLayer
		if m.Config != nil && b.Digest == m.Config.Digest {
			role = roleConfig
		}
		blobs = append(blobs, neededBlob{b, role})
	}
	entries := indexEntries(m.Manifests)
	var subject digest.Digest
	if m.Subject != nil {
		subject = m.Subject.Digest
	}

	now := r.now()
	var tagged bool
	var warning *quotaWarning
	err = r.store.Update(ctx, func(tx meta.Tx) error {
		tagged, warning = false, nil
		rp, err := ensureRepo(ctx, tx, repo, now)
		if err != nil {
			return err
		}
		// Lock what the new edges point at, so the collector cannot delete
		// it before this commits (gc.md, "Locks"): children, then the
		// referrers of this manifest, then links and blob rows.
		edges := meta.ManifestEdges{Labels: labels}
		need := slices.Clone(blobs)
		for _, e := range entries {
			if e.digest == d {
				return fmt.Errorf("index lists itself as an entry: %w", ErrManifestInvalid)
			}
			// What a client can see (not a manifest withdrawn by a
			// DELETE by digest) can be a child.
			_, err := manifestRow(ctx, tx, rp, e.digest, meta.LockShare)
			if err == nil {
				edges.Children = append(edges.Children, e.digest)
				continue
			}
			if !errors.Is(err, ErrManifestUnknown) {
				return err
			}
			if mt := e.manifestType(); mt != "" {
				return fmt.Errorf("index references child manifest %s (%s), which is not in repository %q: %w", e.digest, mt, repo, ErrManifestUnknown)
			}
			// Not a manifest, nor said to be one: a blob entry.
			for _, desc := range e.descs {
				need = append(need, neededBlob{desc, roleEntry})
			}
		}
		if _, err := tx.Referrers(ctx, rp.ID, d, "", meta.LockShare); err != nil {
			return fmt.Errorf("locking referrers of %s: %w", d, err)
		}
		slices.SortStableFunc(need, func(a, b neededBlob) int { return cmpDigest(a.Digest, b.Digest) })
		var link meta.Blob
		for i, b := range need {
			if i == 0 || need[i-1].Digest != b.Digest {
				link, err = tx.RepoBlob(ctx, rp.ID, b.Digest, meta.LockShare)
				if isNotFound(err) {
					unknown := &ManifestBlobUnknownError{Digest: b.Digest, Role: b.role}
					if b.role == roleEntry {
						return fmt.Errorf("index entry %s (%s) is neither a manifest nor a blob of repository %q: %w", b.Digest, b.MediaType, repo, unknown)
					}
					return unknown
				} else if err != nil {
					return fmt.Errorf("reading blob %s: %w", b.Digest, err)
				}
				edges.Blobs = append(edges.Blobs, b.Digest)
			}
			// A wrong size would be served as is and break every client
			// that verifies sizes on pull.
			if link.Size != b.Size {
				return fmt.Errorf("%s %s has size %d in the manifest but %d bytes were uploaded: %w", b.role, b.Digest, b.Size, link.Size, ErrManifestInvalid)
			}
		}
		row := meta.Manifest{
			RepoID:       rp.ID,
			Digest:       d,
			MediaType:    m.MediaType,
			ArtifactType: m.ArtifactType,
			Subject:      subject,
			Size:         int64(len(body)),
			Body:         body,
			PushedAt:     now,
		}
		if _, err := tx.PutManifest(ctx, row, edges); err != nil {
			return fmt.Errorf("storing manifest %s: %w", d, err)
		}
		// The manifest now keeps its blobs' links alive, and its deletion
		// will review them a grace later: the upload markers have done
		// their job, and dropping them here spares the collector two
		// decisions per blob per push.
		for _, b := range edges.Blobs {
			if err := r.dropUploadMarker(ctx, tx, rp.ID, b); err != nil {
				return err
			}
		}
		if rf.Tag != "" {
			// A tagged manifest needs no "pushed" review: the end of the
			// tag records the reviews that lead to it.
			if tagged, err = r.putTag(ctx, tx, rp, rf.Tag, d, expiry, now); err != nil {
				return err
			}
		} else if err := tx.AddReview(ctx, meta.Review{Kind: review.KindManifest, Object: review.RepoDigestObject(rp.ID, d), ReviewAfter: now.Add(r.opts.Policy.Grace),
			Cause: review.CausePushed, Reason: "pushed"}); err != nil {
			return err
		}
		// The usage counters last, after every other row (usage.md, "Hot
		// rows and lock order"), and the quota with them.
		warning, err = r.applyUsage(ctx, tx, rp)
		return err
	})
	if err != nil {
		return PushedManifest{}, err
	}
	r.warnQuota(ctx, warning, repo)
	r.emit(ctx, event.ManifestPushed, repo, d, "", now)
	if tagged {
		r.emit(ctx, event.TagPushed, repo, d, rf.Tag, now)
	}
	return PushedManifest{Digest: d, Subject: subject}, nil
}

// Roles of the blobs a manifest needs, for errors.
const (
	roleConfig = "config"
	roleLayer  = "layer"
	roleEntry  = "index entry"
)

// neededBlob is a blob a manifest references, with its role in it.
type neededBlob struct {
	oci.Descriptor
	role string
}

// indexEntry is one digest an index lists, with every descriptor that
// names it (an index may list a digest more than once).
type indexEntry struct {
	digest digest.Digest
	descs  []oci.Descriptor
}

// manifestType returns the first manifest media type the entry's
// descriptors give, or "": such an entry must be a manifest, never a blob.
func (e indexEntry) manifestType() string {
	for _, d := range e.descs {
		if oci.IsManifestMediaType(d.MediaType) {
			return d.MediaType
		}
	}
	return ""
}

// indexEntries groups an index's entries by digest, in digest order (the
// lock order of manifest rows).
func indexEntries(descs []oci.Descriptor) []indexEntry {
	var out []indexEntry
	for _, d := range descs {
		i, found := slices.BinarySearchFunc(out, d.Digest, func(e indexEntry, t digest.Digest) int { return cmpDigest(e.digest, t) })
		if !found {
			out = slices.Insert(out, i, indexEntry{digest: d.Digest})
		}
		out[i].descs = append(out[i].descs, d)
	}
	return out
}

// dropUploadMarker removes the uploaded-blob marker of blob d in the
// repository and its pending review, if any.
func (r *Registry) dropUploadMarker(ctx context.Context, tx meta.Tx, repoID int64, d digest.Digest) error {
	if err := tx.DeleteUploadedBlob(ctx, repoID, d); err != nil {
		return fmt.Errorf("dropping upload marker of %s: %w", d, err)
	}
	if err := tx.DeleteReview(ctx, review.KindUploadedBlob, review.RepoDigestObject(repoID, d)); err != nil {
		return fmt.Errorf("dropping upload marker review of %s: %w", d, err)
	}
	return nil
}

// putTag points tag at manifest d (already locked or inserted by the
// caller), ending the current row, whose review it records at its end plus
// the namespace's retention, and records when the repository's retention
// policies must be evaluated (prune.go). A live row already on d is kept;
// changed reports whether a row was inserted. Moving a live tag an
// immutable rule covers is refused (ErrImmutable); such a tag is created
// without expiry. The rules are read once for both.
func (r *Registry) putTag(ctx context.Context, tx meta.Tx, repo meta.Repository, tag string, d digest.Digest, expiry *time.Duration, now time.Time) (changed bool, err error) {
	cur, err := tx.LiveTag(ctx, repo.ID, tag, now)
	live := err == nil
	switch {
	case live && cur.Manifest == d:
		return false, nil
	case err != nil && !isNotFound(err):
		return false, fmt.Errorf("reading tag %q: %w", tag, err)
	}
	rules, err := r.tagRules(ctx, tx, repo.Name)
	if err != nil {
		return false, err
	}
	if rule, immutable := policy.Immutable(rules, tag); immutable {
		if live {
			return false, immutableError(repo.Name, tag, rule, "moved")
		}
		if expiry != nil {
			// An expiry would end it: the label is not for this tag.
			r.log.InfoContext(ctx, "ignoring the expiry label of an immutable tag", "repo", repo.Name, "tag", tag, "rule", rule.Ref())
			expiry = nil
		}
	}
	t := meta.Tag{RepoID: repo.ID, Name: tag, Manifest: d, Start: now, StartActor: ActorFrom(ctx)}
	if expiry != nil {
		at := now.Add(*expiry)
		t.ExpiresAt = &at
	}
	ended, err := tx.PutTag(ctx, t)
	if err != nil {
		return false, fmt.Errorf("tagging %s as %q: %w", d, tag, err)
	}
	if ended != nil {
		if err := r.reviewEndedTag(ctx, tx, repo, *ended, now, "moved to "+d.String()); err != nil {
			return false, err
		}
	}
	if err := r.schedulePolicies(ctx, tx, repo, rules, t); err != nil {
		return false, err
	}
	return true, nil
}

// reviewEndedTag records the review of a tag row that just ended: at its
// end plus the namespace's retention.
func (r *Registry) reviewEndedTag(ctx context.Context, tx meta.Tx, repo meta.Repository, t meta.Tag, now time.Time, reason string) error {
	ret, err := r.retention(ctx, tx, repo)
	if err != nil {
		return err
	}
	end := now
	if e := t.EffectiveEnd(); e != nil && e.Before(now) {
		end = *e
	}
	return tx.AddReview(ctx, meta.Review{Kind: review.KindTag, Object: review.TagObject(repo.ID, t.ID), ReviewAfter: end.Add(ret),
		Cause: review.CauseTagEnded, Reason: reason})
}

// configLabels reads the labels of m's image config from the byte store,
// before any write transaction. A config the repository does not have is a
// *ManifestBlobUnknownError; a config that is not a JSON image config has
// no labels (the manifest is still accepted: the config is opaque to the
// distribution spec).
func (r *Registry) configLabels(ctx context.Context, repo string, m *oci.Manifest) (map[string]string, error) {
	labels := map[string]string{}
	if m.Config == nil || !slices.Contains(labelConfigTypes, m.Config.MediaType) {
		return labels, nil
	}
	cfg := m.Config.Digest
	var key string
	err := r.store.View(ctx, func(tx meta.Tx) error {
		rp, err := tx.Repository(ctx, repo, meta.LockNone)
		if err != nil {
			return err
		}
		b, err := tx.RepoBlob(ctx, rp.ID, cfg, meta.LockNone)
		key = b.StorageKey
		return err
	})
	if isNotFound(err) {
		return nil, &ManifestBlobUnknownError{Digest: cfg, Role: "config"}
	}
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", cfg, err)
	}
	rd, err := r.blobs.Open(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, &ManifestBlobUnknownError{Digest: cfg, Role: "config"}
	}
	if err != nil {
		return nil, fmt.Errorf("opening config %s: %w", cfg, err)
	}
	defer rd.Close()
	if rd.Size() > maxConfigBytes {
		return labels, nil
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(rd, maxConfigBytes)); err != nil {
		return nil, fmt.Errorf("reading config %s: %w", cfg, err)
	}
	got, err := oci.ConfigLabels(buf.Bytes())
	if err != nil {
		r.log.DebugContext(ctx, "ignoring labels of an unreadable config", "repo", repo, "config", cfg, "error", err)
		return labels, nil
	}
	return got, nil
}

// foreignLayer reports a non-distributable layer type: its bytes live at
// its URLs, so the registry neither requires nor links them.
func foreignLayer(mediaType string) bool {
	return strings.Contains(mediaType, ".nondistributable.") ||
		mediaType == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
}

func cmpDigest(a, b digest.Digest) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// DeleteManifest withdraws manifest ds of repo (a digest; tags go through
// DeleteTag): from now on it answers 404, live tags pointing at it end now
// and are reviewed after the namespace's retention, and it is reviewed now.
// It is refused with ErrDenied while an index of the repository that is not
// itself withdrawn lists it, and with ErrImmutable while a live tag an
// immutable rule covers points at it.
//
// The row and its edges stay while the time machine can bring it back: a
// tag row on it inside its window, or a (withdrawn) parent. Restoring such
// a tag, or pushing the same bytes again, brings it back; otherwise the
// collector deletes it like any unreachable manifest (docs/design/gc.md,
// "The time machine").
func (r *Registry) DeleteManifest(ctx context.Context, repo, ds string) error {
	if err := validName(repo); err != nil {
		return err
	}
	d, err := parseDigest(ds)
	if err != nil {
		return err
	}
	now := r.now()
	var endedTags []string
	err = r.store.Update(ctx, func(tx meta.Tx) error {
		endedTags = endedTags[:0]
		rp, err := writeRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		reason := "manifest " + d.String() + " deleted by digest"
		if _, err := manifestRow(ctx, tx, rp, d, meta.LockUpdate); err != nil {
			return err
		}
		parents, err := tx.ManifestParents(ctx, rp.ID, d, false, 1)
		if err != nil {
			return fmt.Errorf("reading parents of %s: %w", d, err)
		}
		if len(parents) > 0 {
			return fmt.Errorf("manifest %s is listed by index %s; delete the index first: %w", d, parents[0], ErrDenied)
		}
		tags, err := tx.TagsForManifest(ctx, rp.ID, d, maxTagRows)
		if err != nil {
			return fmt.Errorf("reading tags of %s: %w", d, err)
		}
		tags = slices.DeleteFunc(tags, func(t meta.Tag) bool { return !t.LiveAt(now) })
		if len(tags) > 0 {
			rules, err := r.immutableRules(ctx, tx, repo)
			if err != nil {
				return err
			}
			for _, t := range tags {
				if rule, ok := policy.Immutable(rules, t.Name); ok {
					return immutableError(repo, t.Name, rule, "ended by deleting its manifest "+d.String())
				}
			}
		}
		for _, t := range tags {
			if err := tx.EndTag(ctx, t.ID, now, ActorFrom(ctx), meta.CauseWithdrawn); err != nil {
				return fmt.Errorf("ending tag %q: %w", t.Name, err)
			}
			endedTags = append(endedTags, t.Name)
			if err := r.reviewEndedTag(ctx, tx, rp, t, now, reason); err != nil {
				return err
			}
		}
		if err := tx.WithdrawManifest(ctx, rp.ID, d, now); err != nil {
			return err
		}
		// The manifest's review is due now, even if a PUT's review was
		// pending for later: the grace of a push no longer protects it
		// (the blobs keep theirs: the collector reviews their links a grace
		// after the row goes). Recorded last, after the candidate's lock,
		// in the order every writer follows (gc.md, "Locks"): a collector
		// never waits for a candidate (it skips one we hold), so it never
		// holds this review while waiting on us.
		return tx.RescheduleReview(ctx, meta.Review{Kind: review.KindManifest, Object: review.RepoDigestObject(rp.ID, d), ReviewAfter: now,
			Cause: review.CauseWithdrawn, Reason: reason})
	})
	if err != nil {
		return err
	}
	r.emit(ctx, event.ManifestDeleted, repo, d, "", now)
	for _, t := range endedTags {
		r.emit(ctx, event.TagDeleted, repo, d, t, now)
	}
	return nil
}
