package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// A dry run decides exactly what a real run would, in a read-only
// transaction (one snapshot, no write lock on SQLite, no row lock on
// PostgreSQL): `berth gc --dry-run` and `GET /berth/v1/gc/status
// ?reclaimable=true` never make a push wait. dryTx answers the collector's
// writes from an overlay kept in memory and its reads from the snapshot with
// the overlay applied; where a deletion it only imagined may change a fact
// (a parent, a subject, the manifests using a link, the links of a blob, the
// users of a label), it reads the edge itself and leaves out what it
// deleted. TestDryRunEqualsRealRun holds it to the real run.
type dryTx struct {
	meta.Tx // the read-only snapshot

	reviews  map[reviewKey]dryReview // reviews written by the dry run
	claimed  map[reviewKey]bool      // reviews handed out by ClaimDue
	loaded   map[review.Kind][]meta.Review
	ended    map[int64]time.Time // tags the expiry scan, a subject's deletion or a policy ended
	tags     map[int64]bool      // deleted tag rows
	mans     map[meta.RepoDigest]bool
	markers  map[meta.RepoDigest]bool
	links    map[meta.RepoDigest]bool
	blobs    map[digest.Digest]bool
	labels   map[int64]bool
	uploads  map[string]bool
	goneRefs map[meta.RepoDigest]int // per link: deleted manifests that used it
	goneLink map[digest.Digest]int   // per blob: deleted links
	goneLab  map[int64]int           // per label: deleted manifests that used it
}

type reviewKey struct {
	kind   review.Kind
	object string
}

type dryReview struct {
	deleted bool
	review  meta.Review
}

func newDryTx(tx meta.Tx) *dryTx {
	return &dryTx{Tx: tx, reviews: map[reviewKey]dryReview{}, claimed: map[reviewKey]bool{}, loaded: map[review.Kind][]meta.Review{},
		ended: map[int64]time.Time{}, tags: map[int64]bool{}, mans: map[meta.RepoDigest]bool{}, markers: map[meta.RepoDigest]bool{},
		links: map[meta.RepoDigest]bool{}, blobs: map[digest.Digest]bool{}, labels: map[int64]bool{}, uploads: map[string]bool{},
		goneRefs: map[meta.RepoDigest]int{}, goneLink: map[digest.Digest]int{}, goneLab: map[int64]int{}}
}

var errDryWrite = errors.New("gc: a dry run tried a write it does not simulate")

// ClaimDue hands out each due review once: those of the snapshot (read
// once per kind) and those the dry run recorded due.
func (d *dryTx) ClaimDue(ctx context.Context, kind review.Kind, now time.Time, prefix string, limit int) ([]meta.Review, error) {
	if _, ok := d.loaded[kind]; !ok {
		rs, err := d.Tx.ClaimDue(ctx, kind, now, prefix, 1<<30)
		if err != nil {
			return nil, err
		}
		if rs == nil {
			rs = []meta.Review{}
		}
		d.loaded[kind] = rs
	}
	var out []meta.Review
	take := func(r meta.Review) {
		k := reviewKey{r.Kind, r.Object}
		if len(out) >= limit || d.claimed[k] {
			return
		}
		if w, ok := d.reviews[k]; ok {
			if w.deleted || w.review.ReviewAfter.After(now) {
				return
			}
			r = w.review
		}
		d.claimed[k] = true
		out = append(out, r)
	}
	for _, r := range d.loaded[kind] {
		take(r)
	}
	for k, w := range d.reviews {
		if k.kind == kind && !w.deleted && (prefix == "" || len(k.object) >= len(prefix) && k.object[:len(prefix)] == prefix) {
			take(w.review)
		}
	}
	return out, nil
}

func (d *dryTx) StoredReviews(ctx context.Context, kind review.Kind, objects []string) (map[string]time.Time, error) {
	stored, err := d.Tx.StoredReviews(ctx, kind, objects)
	if err != nil {
		return nil, err
	}
	for _, o := range objects {
		if w, ok := d.reviews[reviewKey{kind, o}]; ok {
			if w.deleted {
				delete(stored, o)
			} else {
				stored[o] = w.review.ReviewAfter
			}
		}
	}
	return stored, nil
}

func (d *dryTx) stored(ctx context.Context, kind review.Kind, object string) (time.Time, bool, error) {
	if w, ok := d.reviews[reviewKey{kind, object}]; ok {
		return w.review.ReviewAfter, !w.deleted, nil
	}
	return d.Tx.PendingReview(ctx, kind, object)
}

func (d *dryTx) DeleteDueReviews(ctx context.Context, kind review.Kind, objects []string, now time.Time) error {
	for _, o := range objects {
		at, pending, err := d.stored(ctx, kind, o)
		if err != nil {
			return err
		}
		if pending && !at.After(now) {
			d.reviews[reviewKey{kind, o}] = dryReview{deleted: true}
		}
	}
	return nil
}

func (d *dryTx) DeleteReviews(ctx context.Context, kind review.Kind, objects []string) error {
	for _, o := range objects {
		d.reviews[reviewKey{kind, o}] = dryReview{deleted: true}
	}
	return nil
}

func (d *dryTx) DeleteReview(ctx context.Context, kind review.Kind, object string) error {
	return d.DeleteReviews(ctx, kind, []string{object})
}

func (d *dryTx) ScheduleReviews(ctx context.Context, rs []meta.Review) error {
	for _, r := range rs {
		if _, err := d.ScheduleReview(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// ScheduleReview is AddReview's upsert: a pending review only moves later.
func (d *dryTx) ScheduleReview(ctx context.Context, r meta.Review) (time.Time, error) {
	at, pending, err := d.stored(ctx, r.Kind, r.Object)
	if err != nil {
		return time.Time{}, err
	}
	if pending && !r.ReviewAfter.After(at) {
		return at, nil
	}
	k := reviewKey{r.Kind, r.Object}
	d.reviews[k] = dryReview{review: r}
	delete(d.claimed, k) // recorded anew: due again at its time
	return r.ReviewAfter, nil
}

func (d *dryTx) AddReview(ctx context.Context, r meta.Review) error {
	_, err := d.ScheduleReview(ctx, r)
	return err
}

func (d *dryTx) RescheduleReview(ctx context.Context, r meta.Review) error {
	d.reviews[reviewKey{r.Kind, r.Object}] = dryReview{review: r}
	return nil
}

func (d *dryTx) ExpiredTags(ctx context.Context, repoID int64, now time.Time, limit int) ([]meta.Tag, error) {
	ts, err := d.Tx.ExpiredTags(ctx, repoID, now, limit+len(d.ended))
	if err != nil {
		return nil, err
	}
	ts = slices.DeleteFunc(ts, func(t meta.Tag) bool { _, ok := d.ended[t.ID]; return ok })
	return ts[:min(len(ts), limit)], nil
}

func (d *dryTx) EndTag(ctx context.Context, id int64, at time.Time, actor meta.Actor, cause meta.EndCause) error {
	d.ended[id] = at
	return nil
}

// LiveTags leaves out the rows the dry run ended or deleted.
func (d *dryTx) LiveTags(ctx context.Context, repoID int64, now time.Time) ([]meta.Tag, error) {
	ts, err := d.Tx.LiveTags(ctx, repoID, now)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(ts, func(t meta.Tag) bool { _, ok := d.ended[t.ID]; return ok || d.tags[t.ID] }), nil
}

// EndTags ends, in the overlay, the rows of ids still live in it.
func (d *dryTx) EndTags(ctx context.Context, ids []int64, at time.Time, actor meta.Actor, cause meta.EndCause, rule string) ([]meta.Tag, error) {
	var out []meta.Tag
	for _, id := range ids {
		if _, ok := d.ended[id]; ok || d.tags[id] {
			continue
		}
		t, err := d.Tx.TagByID(ctx, id, meta.LockNone)
		if errors.Is(err, meta.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if t.End != nil {
			continue
		}
		d.ended[id] = at
		t.End, t.EndActor, t.EndCause, t.EndRule = &at, actor, cause, rule
		out = append(out, t)
	}
	return out, nil
}

// EndLiveTags ends in the overlay the rows the snapshot has live and the
// dry run has not ended yet.
func (d *dryTx) EndLiveTags(ctx context.Context, tags []meta.RepoTag, at time.Time, actor meta.Actor, cause meta.EndCause) ([]meta.Tag, error) {
	live, err := d.Tx.LiveTagsNamed(ctx, tags, at)
	if err != nil {
		return nil, err
	}
	var out []meta.Tag
	for _, t := range live {
		if _, ok := d.ended[t.ID]; ok || d.tags[t.ID] {
			continue
		}
		d.ended[t.ID] = at
		t.End, t.EndActor, t.EndCause = &at, actor, cause
		out = append(out, t)
	}
	return out, nil
}

// Manifest answers ErrNotFound for a manifest the dry run deleted.
func (d *dryTx) Manifest(ctx context.Context, repoID int64, dg digest.Digest, lock meta.Lock) (meta.Manifest, error) {
	if d.mans[meta.RepoDigest{RepoID: repoID, Digest: dg}] {
		return meta.Manifest{}, fmt.Errorf("manifest %s (deleted by the dry run): %w", dg, meta.ErrNotFound)
	}
	return d.Tx.Manifest(ctx, repoID, dg, lock)
}

func (d *dryTx) LockTagRows(ctx context.Context, ids []int64) ([]meta.TagRow, []int64, error) {
	rows, _, err := d.Tx.LockTagRows(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	rows = slices.DeleteFunc(rows, func(r meta.TagRow) bool { return d.tags[r.ID] })
	for i, r := range rows {
		if at, ok := d.ended[r.ID]; ok && r.End == nil {
			rows[i].End = &at
		}
	}
	return rows, nil, nil
}

func (d *dryTx) DeleteTagRows(ctx context.Context, ids []int64) error {
	for _, id := range ids {
		d.tags[id] = true
	}
	return nil
}

func (d *dryTx) LockManifestFacts(ctx context.Context, keys []meta.RepoDigest) ([]meta.ManifestFacts, []meta.RepoDigest, error) {
	facts, _, err := d.Tx.LockManifestFacts(ctx, keys)
	if err != nil {
		return nil, nil, err
	}
	facts = slices.DeleteFunc(facts, func(f meta.ManifestFacts) bool { return d.mans[f.RepoDigest] })
	for i := range facts {
		f := &facts[i]
		if f.LiveTag != "" && len(d.ended) > 0 {
			if err := d.retag(ctx, f); err != nil {
				return nil, nil, err
			}
		}
		if f.Parent != "" && d.mans[meta.RepoDigest{RepoID: f.RepoID, Digest: f.Parent}] {
			ps, err := d.Tx.ManifestParents(ctx, f.RepoID, f.Digest, true, len(d.mans)+1)
			if err != nil {
				return nil, nil, err
			}
			f.Parent = ""
			for _, p := range ps {
				if !d.mans[meta.RepoDigest{RepoID: f.RepoID, Digest: p}] {
					f.Parent = p
					break
				}
			}
		}
		if f.SubjectStored && d.mans[meta.RepoDigest{RepoID: f.RepoID, Digest: f.Subject}] {
			f.SubjectStored = false
		}
	}
	return facts, nil, nil
}

// retag reads the tag rows of a manifest again, as the expiry scan of the
// dry run left them.
func (d *dryTx) retag(ctx context.Context, f *meta.ManifestFacts) error {
	ts, err := d.Tx.TagsForManifest(ctx, f.RepoID, f.Digest, 1000)
	if err != nil {
		return err
	}
	f.LiveTag = ""
	for _, t := range ts {
		if d.tags[t.ID] {
			continue
		}
		end := t.End
		if at, ok := d.ended[t.ID]; ok && end == nil {
			end = &at
		}
		if end == nil {
			f.LiveTag = t.Name
			return nil
		}
		if f.LastEnd == nil || end.After(*f.LastEnd) {
			f.LastEnd, f.LastEndTag = end, t.Name
		}
	}
	return nil
}

func (d *dryTx) DeleteManifests(ctx context.Context, keys []meta.RepoDigest) (meta.ManifestSetRefs, error) {
	refs, err := d.Tx.ManifestRefs(ctx, keys)
	if err != nil {
		return refs, err
	}
	for _, k := range keys {
		d.mans[k] = true
	}
	gone := func(k meta.RepoDigest) bool { return d.mans[k] }
	refs.Children = slices.DeleteFunc(refs.Children, gone)
	refs.Referrers = slices.DeleteFunc(refs.Referrers, gone)
	// What the deleted manifests used: each link and label counts the
	// deleted manifests that used it, so that deciding it reads its users
	// again only when one of them went.
	for _, k := range keys {
		one, err := d.Tx.ManifestRefs(ctx, []meta.RepoDigest{k})
		if err != nil {
			return refs, err
		}
		for _, b := range one.Blobs {
			d.goneRefs[b]++
		}
		for _, l := range one.Labels {
			d.goneLab[l]++
		}
	}
	return refs, nil
}

func (d *dryTx) LockUploadedBlobs(ctx context.Context, keys []meta.RepoDigest) ([]meta.UploadedBlobRow, []meta.RepoDigest, error) {
	rows, _, err := d.Tx.LockUploadedBlobs(ctx, keys)
	if err != nil {
		return nil, nil, err
	}
	return slices.DeleteFunc(rows, func(r meta.UploadedBlobRow) bool { return d.markers[r.RepoDigest] || d.links[r.RepoDigest] }), nil, nil
}

func (d *dryTx) DeleteUploadedBlobs(ctx context.Context, keys []meta.RepoDigest) error {
	for _, k := range keys {
		d.markers[k] = true
	}
	return nil
}

func (d *dryTx) LockLinkFacts(ctx context.Context, keys []meta.RepoDigest) ([]meta.LinkFacts, []meta.RepoDigest, error) {
	facts, _, err := d.Tx.LockLinkFacts(ctx, keys)
	if err != nil {
		return nil, nil, err
	}
	facts = slices.DeleteFunc(facts, func(f meta.LinkFacts) bool { return d.links[f.RepoDigest] })
	for i := range facts {
		f := &facts[i]
		if d.markers[f.RepoDigest] {
			f.Marker = nil
		}
		if n := d.goneRefs[f.RepoDigest]; f.Used && n > 0 {
			users, err := d.Tx.LinkUsers(ctx, f.RepoDigest, n+1)
			if err != nil {
				return nil, nil, err
			}
			f.Used = slices.ContainsFunc(users, func(m digest.Digest) bool {
				return !d.mans[meta.RepoDigest{RepoID: f.RepoID, Digest: m}]
			})
		}
	}
	return facts, nil, nil
}

func (d *dryTx) DeleteLinks(ctx context.Context, keys []meta.RepoDigest) error {
	for _, k := range keys {
		d.links[k] = true
		d.markers[k] = true
		d.goneLink[k.Digest]++
	}
	return nil
}

func (d *dryTx) LockBlobFacts(ctx context.Context, ds []digest.Digest) ([]meta.BlobFacts, []digest.Digest, error) {
	facts, _, err := d.Tx.LockBlobFacts(ctx, ds)
	if err != nil {
		return nil, nil, err
	}
	facts = slices.DeleteFunc(facts, func(f meta.BlobFacts) bool { return d.blobs[f.Digest] })
	for i := range facts {
		f := &facts[i]
		if n := d.goneLink[f.Digest]; f.Linked && n > 0 {
			repos, err := d.Tx.BlobLinks(ctx, f.Digest, n+1)
			if err != nil {
				return nil, nil, err
			}
			f.Linked = slices.ContainsFunc(repos, func(r int64) bool {
				return !d.links[meta.RepoDigest{RepoID: r, Digest: f.Digest}]
			})
		}
	}
	return facts, nil, nil
}

func (d *dryTx) DeleteBlobs(ctx context.Context, ds []digest.Digest, _ []meta.Tombstone) error {
	for _, dg := range ds {
		d.blobs[dg] = true
	}
	return nil
}

func (d *dryTx) LockLabelFacts(ctx context.Context, ids []int64) ([]meta.LabelFacts, []int64, error) {
	facts, _, err := d.Tx.LockLabelFacts(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	facts = slices.DeleteFunc(facts, func(f meta.LabelFacts) bool { return d.labels[f.ID] })
	for i := range facts {
		f := &facts[i]
		if n := d.goneLab[f.ID]; f.Used && n > 0 {
			users, err := d.Tx.LabelUsers(ctx, f.ID, n+1)
			if err != nil {
				return nil, nil, err
			}
			f.Used = slices.ContainsFunc(users, func(k meta.RepoDigest) bool { return !d.mans[k] })
		}
	}
	return facts, nil, nil
}

func (d *dryTx) DeleteLabels(ctx context.Context, ids []int64) error {
	for _, id := range ids {
		d.labels[id] = true
	}
	return nil
}

func (d *dryTx) LockUploads(ctx context.Context, ids []string) ([]meta.Upload, []string, error) {
	rows, _, err := d.Tx.LockUploads(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	return slices.DeleteFunc(rows, func(u meta.Upload) bool { return d.uploads[u.ID] }), nil, nil
}

func (d *dryTx) DeleteUploads(ctx context.Context, ids []string) error {
	for _, id := range ids {
		d.uploads[id] = true
	}
	return nil
}

// Writes the collector's decisions never make in a dry run.
func (d *dryTx) PutTombstone(context.Context, meta.Tombstone) error { return errDryWrite }
func (d *dryTx) DeleteTombstones(context.Context, []string) error   { return errDryWrite }

// dryRunTxTimeout bounds the dry run's one transaction instead of the
// store's bound for a transaction (10s): it reads the whole due backlog
// from one snapshot, which takes no lock but on a large backlog takes
// longer than a write transaction may.
const dryRunTxTimeout = 2 * time.Minute

// dryRun decides everything due in one read-only transaction, as a real run
// would, and reports what it would delete and the tags policies would
// prune.
func (c *Collector) dryRun(ctx context.Context, sc scope) (Summary, error) {
	var p *pass
	err := c.store.View(meta.WithTxTimeout(ctx, dryRunTxTimeout), func(tx meta.Tx) error {
		d := newDryTx(tx)
		p = c.newPass(d, c.opts.Now())
		for {
			n, err := p.expire(ctx, c.opts.BatchSize, sc.repoID)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
		}
		for {
			decided := 0
			for _, kind := range sc.kinds() {
				for {
					reviews, err := d.ClaimDue(ctx, kind, p.now, sc.prefix, c.opts.BatchSize)
					if err != nil {
						return err
					}
					if len(reviews) == 0 {
						break
					}
					if err := p.decideClaimed(ctx, kind, reviews); err != nil {
						return err
					}
					decided += len(reviews)
				}
			}
			if decided == 0 {
				return nil
			}
		}
	})
	if err != nil {
		return Summary{}, fmt.Errorf("dry run: %w", err)
	}
	p.summary.DryRun = true
	return p.summary, nil
}
