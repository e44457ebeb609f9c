package gc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// pass is the work of one transaction: what it decided, and what must happen
// after it commits (bytes, staging files, events). A transaction that is
// retried starts a fresh pass.
type pass struct {
	c         *Collector
	tx        meta.Tx
	now       time.Time
	summary   Summary
	tombs     []meta.Tombstone // bytes to delete after commit
	aborts    []string         // upload staging objects to delete after commit
	events    []Event
	followUps []meta.Review // due now: decided in this pass, depth first
	repoNames map[int64]string
	// actor is recorded on the pass's events and the tag ends it records:
	// the collector, or the actor of a purge.
	actor meta.Actor
}

func (c *Collector) newPass(tx meta.Tx, now time.Time) *pass {
	return &pass{c: c, tx: tx, now: now, summary: Summary{Deleted: map[review.Kind]int{}}, repoNames: map[int64]string{}, actor: meta.ActorCollector}
}

// review records a follow-up review. One whose stored review is due now is
// also decided in this pass; AddReview never moves a pending review
// earlier, so a follow-up recorded "now" may have merged into a review kept
// for later — a link's grace after its manifest's deletion, a read that
// revived the object — and deciding it now would cut that window short.
func (p *pass) review(ctx context.Context, r meta.Review) error {
	r.ReviewAfter = r.ReviewAfter.Add(p.c.opts.ReviewDelay)
	after, err := p.tx.ScheduleReview(ctx, r)
	if err != nil {
		return err
	}
	if !after.After(p.now) {
		p.followUps = append(p.followUps, r)
	}
	return nil
}

// nextFollowUp pops the next follow-up due now, skipping those skip names.
func (p *pass) nextFollowUp(skip func(meta.Review) bool) (meta.Review, bool) {
	for len(p.followUps) > 0 {
		next := p.followUps[len(p.followUps)-1]
		p.followUps = p.followUps[:len(p.followUps)-1]
		if skip == nil || !skip(next) {
			return next, true
		}
	}
	return meta.Review{}, false
}

// decideAll decides r and then, depth first, every follow-up due now.
func (p *pass) decideAll(ctx context.Context, r meta.Review) error {
	if err := p.decide(ctx, r); err != nil {
		return err
	}
	for {
		next, ok := p.nextFollowUp(nil)
		if !ok {
			return nil
		}
		if err := p.decide(ctx, next); err != nil {
			return err
		}
	}
}

func (p *pass) deleted(ctx context.Context, d Deletion) {
	p.summary.Deleted[d.Kind]++
	p.summary.BytesFreed += d.Size
	p.summary.Deletions = append(p.summary.Deletions, d)
	p.events = append(p.events, Event{Kind: eventKind(d.Kind), Repository: d.Repository, Digest: d.Digest, Tag: d.Tag, Size: d.Size, Reason: d.Reason, At: p.now, Actor: p.actor})
}

func (p *pass) repoName(ctx context.Context, id int64) string {
	if n, ok := p.repoNames[id]; ok {
		return n
	}
	r, err := p.tx.RepositoryByID(ctx, id, meta.LockNone)
	if err != nil {
		return strconv.FormatInt(id, 10)
	}
	p.repoNames[id] = r.Name
	return r.Name
}

// keep ends a review because the object is alive for a reason whose end
// records a new review (invariant R of gc.md).
func (p *pass) keep(ctx context.Context, r meta.Review) error {
	p.summary.Reviews++
	return p.tx.DeleteReview(ctx, r.Kind, r.Object)
}

// later moves a review to the time its object may become garbage; why it
// was recorded (its cause) stays.
func (p *pass) later(ctx context.Context, r meta.Review, at time.Time, why string) error {
	p.summary.Reviews++
	return p.tx.RescheduleReview(ctx, meta.Review{Kind: r.Kind, Object: r.Object, ReviewAfter: at, Cause: r.Cause, Reason: why})
}

func (p *pass) done(ctx context.Context, r meta.Review) error {
	p.summary.Reviews++
	return p.tx.DeleteReview(ctx, r.Kind, r.Object)
}

// malformed drops a review whose object cannot be read (no writer of
// berth makes one: a row written by hand or by a bug), saying so: it
// decides nothing, so nothing can be kept or deleted for it.
func (p *pass) malformed(ctx context.Context, r meta.Review, err error) error {
	p.c.log.WarnContext(ctx, "gc: dropping a review whose object is malformed", "kind", r.Kind, "object", r.Object, "error", err)
	return p.done(ctx, r)
}

// decide takes one decision under the candidate's exclusive lock.
func (p *pass) decide(ctx context.Context, r meta.Review) error {
	var err error
	switch r.Kind {
	case review.KindTag:
		err = p.decideTag(ctx, r)
	case review.KindManifest:
		err = p.decideManifest(ctx, r)
	case review.KindLink:
		err = p.decideLink(ctx, r)
	case review.KindBlob:
		err = p.decideBlob(ctx, r)
	case review.KindLabel:
		err = p.decideLabel(ctx, r)
	case review.KindUploadedBlob:
		err = p.decideUploadedBlob(ctx, r)
	case review.KindUpload:
		err = p.decideUpload(ctx, r)
	case review.KindPurge:
		// Purges run outside batches (see purge.go); leave it claimed-free.
		return nil
	default:
		p.c.log.Warn("dropping review of unknown kind", "kind", r.Kind, "object", r.Object)
		err = p.done(ctx, r)
	}
	if err != nil {
		return fmt.Errorf("%s review of %s: %w", r.Kind, r.Object, err)
	}
	return nil
}

func (p *pass) decideTag(ctx context.Context, r meta.Review) error {
	o, err := review.Parse(r.Kind, r.Object)
	if err != nil {
		return p.malformed(ctx, r, err)
	}
	repoID := o.RepoID
	t, err := p.tx.TagByID(ctx, o.ID, meta.LockUpdate)
	if errors.Is(err, meta.ErrNotFound) {
		return p.done(ctx, r)
	}
	if err != nil {
		return err
	}
	if t.RepoID != repoID {
		// The row this review was recorded for is gone and its id now
		// names a row of another repository (SQLite reuses the largest
		// rowid after a delete, e.g. a purge's). That row has its own
		// review; deciding it here would use the wrong repository's
		// window and review its manifest in the wrong repository.
		return p.done(ctx, r)
	}
	if t.End == nil {
		// Live (an expiry is handled by the expiry scan, which ends the
		// row and records a new review).
		return p.keep(ctx, r)
	}
	repo := p.repoName(ctx, repoID)
	ret, err := p.c.retention(ctx, p.tx, repo)
	if err != nil {
		return err
	}
	if until := t.End.Add(ret); until.After(p.now) {
		return p.later(ctx, r, until, "recoverable until "+until.Format(time.RFC3339))
	}
	if err := p.tx.DeleteTag(ctx, t.ID); err != nil {
		return err
	}
	reason := fmt.Sprintf("tag %s ended %s, outside the %s time-machine window", t.Name, t.End.Format(time.RFC3339), ret)
	p.deleted(ctx, Deletion{Kind: review.KindTag, Repository: repo, Tag: t.Name, Digest: t.Manifest, Reason: reason})
	if err := p.review(ctx, meta.Review{Kind: review.KindManifest, Object: review.RepoDigestObject(repoID, t.Manifest), ReviewAfter: p.now,
		Cause: review.CauseTagCollected, Reason: "tag " + t.Name + " collected"}); err != nil {
		return err
	}
	return p.done(ctx, r)
}

func (p *pass) decideManifest(ctx context.Context, r meta.Review) error {
	o, err := review.Parse(r.Kind, r.Object)
	if err != nil {
		return p.malformed(ctx, r, err)
	}
	repoID, d := o.RepoID, o.Digest
	m, err := p.tx.Manifest(ctx, repoID, d, meta.LockUpdate)
	if errors.Is(err, meta.ErrNotFound) {
		return p.done(ctx, r)
	}
	if err != nil {
		return err
	}
	repo := p.repoName(ctx, repoID)
	alive, why, err := p.manifestAlive(ctx, repo, m, r)
	if err != nil {
		return err
	}
	switch {
	case alive && why.until.IsZero():
		return p.keep(ctx, r)
	case alive:
		return p.later(ctx, r, why.until, why.text)
	}
	if err := p.deleteManifest(ctx, repo, m, why.text); err != nil {
		return err
	}
	return p.done(ctx, r)
}

type aliveBecause struct {
	text  string
	until time.Time // zero: alive until another write records a review
}

// manifestAlive checks every root and edge of DESIGN.md §3 that can keep m.
func (p *pass) manifestAlive(ctx context.Context, repo string, m meta.Manifest, r meta.Review) (bool, aliveBecause, error) {
	tags, err := p.tx.TagsForManifest(ctx, m.RepoID, m.Digest, 1000)
	if err != nil {
		return false, aliveBecause{}, err
	}
	var lastEnd *time.Time
	ret := time.Duration(-1)
	for _, t := range tags {
		if t.End == nil {
			return true, aliveBecause{text: "tagged " + t.Name}, nil
		}
		if ret < 0 {
			if ret, err = p.c.retention(ctx, p.tx, repo); err != nil {
				return false, aliveBecause{}, err
			}
		}
		if t.End.Add(ret).After(p.now) {
			return true, aliveBecause{text: "tag " + t.Name + " recoverable"}, nil
		}
		if lastEnd == nil || t.End.After(*lastEnd) {
			lastEnd = t.End
		}
	}
	// Any parent row keeps a child, a withdrawn one too: restoring the
	// parent brings its children back.
	parents, err := p.tx.ManifestParents(ctx, m.RepoID, m.Digest, true, 1)
	if err != nil {
		return false, aliveBecause{}, err
	}
	if len(parents) > 0 {
		return true, aliveBecause{text: "child of " + parents[0].String()}, nil
	}
	if m.Withdrawn() {
		// A DELETE by digest asked for it to go: only what can bring it
		// back (a tag row inside its window, a parent) keeps it; not the
		// grace of its last PUT, not collect_untagged, not its subject.
		why := "deleted by digest " + m.DeletedAt.Format(time.RFC3339)
		if lastEnd != nil {
			why += "; last tag ended " + lastEnd.Format(time.RFC3339) + ", outside the time-machine window"
		}
		return false, aliveBecause{text: why}, nil
	}
	if m.Subject != "" {
		_, err := p.tx.Manifest(ctx, m.RepoID, m.Subject, meta.LockNone)
		if err == nil {
			return true, aliveBecause{text: "referrer of " + m.Subject.String()}, nil
		}
		if !errors.Is(err, meta.ErrNotFound) {
			return false, aliveBecause{}, err
		}
	}
	if until := m.PushedAt.Add(p.c.opts.Policy.Grace); until.After(p.now) {
		return true, aliveBecause{text: "untagged grace until " + until.Format(time.RFC3339), until: until}, nil
	}
	if !p.c.opts.Policy.CollectUntagged && len(tags) == 0 && m.Subject == "" && r.Cause == review.CausePushed {
		return true, aliveBecause{text: "untagged collection is off"}, nil
	}
	// Garbage: say which root ended last.
	why := "untagged since " + m.PushedAt.Format(time.RFC3339) + " and past the grace"
	switch {
	case lastEnd != nil:
		why = "last tag ended " + lastEnd.Format(time.RFC3339) + ", outside the time-machine window"
	case m.Subject != "":
		why = "subject " + m.Subject.String() + " is gone"
	case r.Reason != "" && r.Cause != review.CausePushed:
		why = r.Reason + "; nothing else reaches it"
	}
	return false, aliveBecause{text: why}, nil
}

// deleteManifest deletes m with the rows it owns and reviews what they
// pointed at (gc.md). An explicit DELETE by digest does not come here: it
// withdraws the manifest, and the collector deletes it once nothing can
// bring it back.
func (p *pass) deleteManifest(ctx context.Context, repo string, m meta.Manifest, why string) error {
	refs, err := deleteManifestRows(ctx, p.tx, m.RepoID, m.Digest, p.now, p.c.opts.Policy.Grace)
	if err != nil {
		return err
	}
	for _, rv := range refs {
		if !rv.ReviewAfter.After(p.now) {
			p.followUps = append(p.followUps, rv)
		}
	}
	p.deleted(ctx, Deletion{Kind: review.KindManifest, Repository: repo, Digest: m.Digest, Reason: why})
	return nil
}

// deleteManifestRows deletes manifest d of the repository with its children,
// blob and label rows, and records the reviews gc.md asks for: its links at
// now+grace (a client that saw a blob alive keeps a full grace), its
// children, referrers and labels now. It returns the reviews it recorded,
// each with the review_after the store now holds for it.
// The caller holds the manifest's exclusive lock (or SQLite's writer lock).
func deleteManifestRows(ctx context.Context, tx meta.Tx, repoID int64, d digest.Digest, now time.Time, grace time.Duration) ([]meta.Review, error) {
	referrers, err := tx.Referrers(ctx, repoID, d, "", meta.LockNone)
	if err != nil {
		return nil, err
	}
	refs, err := tx.DeleteManifest(ctx, repoID, d)
	if err != nil {
		return nil, err
	}
	reason := "manifest " + d.String() + " deleted"
	var reviews []meta.Review
	for _, b := range refs.Blobs {
		reviews = append(reviews, meta.Review{Kind: review.KindLink, Object: review.RepoDigestObject(repoID, b), ReviewAfter: now.Add(grace),
			Cause: review.CauseManifestDeleted, Reason: reason})
	}
	for _, ch := range refs.Children {
		reviews = append(reviews, meta.Review{Kind: review.KindManifest, Object: review.RepoDigestObject(repoID, ch), ReviewAfter: now,
			Cause: review.CauseParentDeleted, Reason: "parent " + d.String() + " deleted"})
	}
	for _, rf := range referrers {
		reviews = append(reviews, meta.Review{Kind: review.KindManifest, Object: review.RepoDigestObject(repoID, rf.Digest), ReviewAfter: now,
			Cause: review.CauseSubjectDeleted, Reason: "subject " + d.String() + " deleted"})
	}
	for _, id := range refs.LabelIDs {
		reviews = append(reviews, meta.Review{Kind: review.KindLabel, Object: review.LabelObject(id), ReviewAfter: now,
			Cause: review.CauseManifestDeleted, Reason: reason})
	}
	for i, rv := range reviews {
		after, err := tx.ScheduleReview(ctx, rv)
		if err != nil {
			return nil, err
		}
		reviews[i].ReviewAfter = after // as stored: a pending review may be later
	}
	return reviews, nil
}

func (p *pass) decideLink(ctx context.Context, r meta.Review) error {
	o, err := review.Parse(r.Kind, r.Object)
	if err != nil {
		return p.malformed(ctx, r, err)
	}
	repoID, d := o.RepoID, o.Digest
	// The link row, withdrawn or not (a withdrawn link lives while the
	// withdrawn manifests that reference it do), then the blob row.
	_, err = p.tx.Link(ctx, repoID, d, meta.LockUpdate)
	if err == nil {
		_, err = p.tx.Blob(ctx, d, meta.LockUpdate)
	}
	if errors.Is(err, meta.ErrNotFound) {
		return p.done(ctx, r)
	}
	if err != nil {
		return err
	}
	used, err := p.tx.LinkInUse(ctx, repoID, d, p.now)
	if err != nil {
		return err
	}
	if used {
		// A manifest's deletion or the marker's review records a new one.
		return p.keep(ctx, r)
	}
	if err := p.tx.DeleteUploadedBlob(ctx, repoID, d); err != nil {
		return err
	}
	if err := p.tx.UnlinkBlob(ctx, repoID, d); err != nil {
		return err
	}
	repo := p.repoName(ctx, repoID)
	p.deleted(ctx, Deletion{Kind: review.KindLink, Repository: repo, Digest: d, Reason: "no manifest of " + repo + " uses it and no upload protects it"})
	if err := p.review(ctx, meta.Review{Kind: review.KindBlob, Object: review.BlobObject(d), ReviewAfter: p.now,
		Cause: review.CauseUnlinked, Reason: "unlinked from " + repo}); err != nil {
		return err
	}
	return p.done(ctx, r)
}

func (p *pass) decideBlob(ctx context.Context, r meta.Review) error {
	o, err := review.Parse(r.Kind, r.Object)
	if err != nil {
		return p.malformed(ctx, r, err)
	}
	d := o.Digest
	b, err := p.tx.Blob(ctx, d, meta.LockUpdate)
	if errors.Is(err, meta.ErrNotFound) {
		return p.done(ctx, r)
	}
	if err != nil {
		return err
	}
	linked, err := p.tx.BlobLinked(ctx, d)
	if err != nil {
		return err
	}
	if linked {
		return p.keep(ctx, r)
	}
	if err := p.tx.DeleteBlob(ctx, d); err != nil {
		return err
	}
	ts := meta.Tombstone{StorageKey: b.StorageKey, Since: p.now}
	if err := p.tx.PutTombstone(ctx, ts); err != nil {
		return err
	}
	p.tombs = append(p.tombs, ts)
	p.deleted(ctx, Deletion{Kind: review.KindBlob, Digest: d, Size: b.Size, Reason: "no repository links it (" + r.Reason + ")"})
	return p.done(ctx, r)
}

func (p *pass) decideLabel(ctx context.Context, r meta.Review) error {
	o, err := review.Parse(r.Kind, r.Object)
	if err != nil {
		return p.malformed(ctx, r, err)
	}
	id := o.ID
	exists, used, err := p.tx.LabelInUse(ctx, id)
	if err != nil {
		return err
	}
	if !exists || used {
		return p.keep(ctx, r)
	}
	if err := p.tx.DeleteLabel(ctx, id); err != nil {
		return err
	}
	p.deleted(ctx, Deletion{Kind: review.KindLabel, Reason: "label " + r.Object + " used by no manifest"})
	return p.done(ctx, r)
}

func (p *pass) decideUploadedBlob(ctx context.Context, r meta.Review) error {
	o, err := review.Parse(r.Kind, r.Object)
	if err != nil {
		return p.malformed(ctx, r, err)
	}
	repoID, d := o.RepoID, o.Digest
	exp, err := p.tx.UploadedBlobExpiry(ctx, repoID, d)
	if errors.Is(err, meta.ErrNotFound) {
		return p.done(ctx, r)
	}
	if err != nil {
		return err
	}
	if exp.After(p.now) {
		return p.later(ctx, r, exp, "upload protected until "+exp.Format(time.RFC3339))
	}
	if err := p.tx.DeleteUploadedBlob(ctx, repoID, d); err != nil {
		return err
	}
	repo := p.repoName(ctx, repoID)
	p.deleted(ctx, Deletion{Kind: review.KindUploadedBlob, Repository: repo, Digest: d, Reason: "upload protection expired " + exp.Format(time.RFC3339)})
	if err := p.review(ctx, meta.Review{Kind: review.KindLink, Object: review.RepoDigestObject(repoID, d), ReviewAfter: p.now,
		Cause: review.CauseUploadProtectionExpired, Reason: "upload protection expired"}); err != nil {
		return err
	}
	return p.done(ctx, r)
}

func (p *pass) decideUpload(ctx context.Context, r meta.Review) error {
	o, err := review.Parse(r.Kind, r.Object)
	if err != nil {
		return p.malformed(ctx, r, err)
	}
	u, err := p.tx.Upload(ctx, o.UploadID, meta.LockUpdate)
	if errors.Is(err, meta.ErrNotFound) {
		return p.done(ctx, r)
	}
	if err != nil {
		return err
	}
	if until := u.UpdatedAt.Add(p.c.opts.Policy.UploadExpiry); until.After(p.now) {
		return p.later(ctx, r, until, "upload active until "+until.Format(time.RFC3339))
	}
	if err := p.tx.DeleteUpload(ctx, u.ID); err != nil {
		return err
	}
	p.aborts = append(p.aborts, u.ID)
	p.deleted(ctx, Deletion{Kind: review.KindUpload, Repository: p.repoName(ctx, u.RepoID), Size: u.Size,
		Reason: "upload " + u.ID + " idle since " + u.UpdatedAt.Format(time.RFC3339)})
	return p.done(ctx, r)
}

// expire ends live tags whose expiry passed (of repository repoID, or of
// all when it is 0, filtered in SQL so that a scoped run's batch is never
// filled by other repositories' tags): they enter the time machine
// like deleted tags, ended by the collector (whoever runs it: the expiry
// decided), cause expired.
func (p *pass) expire(ctx context.Context, limit int, repoID int64) (int, error) {
	tags, err := p.tx.ExpiredTags(ctx, repoID, p.now, limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tags {
		if err := p.tx.EndTag(ctx, t.ID, *t.ExpiresAt, meta.ActorCollector, meta.CauseExpired); err != nil {
			if errors.Is(err, meta.ErrNotFound) {
				continue // ended concurrently
			}
			return n, err
		}
		repo := p.repoName(ctx, t.RepoID)
		ret, err := p.c.retention(ctx, p.tx, repo)
		if err != nil {
			return n, err
		}
		if err := p.review(ctx, meta.Review{Kind: review.KindTag, Object: review.TagObject(t.RepoID, t.ID),
			ReviewAfter: t.ExpiresAt.Add(ret), Cause: review.CauseTagExpired, Reason: "tag " + t.Name + " expired"}); err != nil {
			return n, err
		}
		p.summary.Expired++
		p.events = append(p.events, Event{Kind: event.TagExpired, Repository: repo, Tag: t.Name, Digest: t.Manifest,
			Reason: "expired at " + t.ExpiresAt.Format(time.RFC3339), At: p.now, Actor: meta.ActorCollector})
		n++
	}
	return n, nil
}
