package gc

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/policy"
	"github.com/berth/berth/internal/review"
)

// Deciding sets (docs/design/gc.md, "Deciding sets").
//
// A transaction claims a batch of due reviews of ONE kind and decides them
// together with a fixed number of statements (meta.CollectTx), whatever the
// batch's size. What a decision frees is decided in the same transaction,
// stage after stage, down the graph: (policy →) tag → manifest →
// uploaded_blob → link → blob → label → upload. The policy stage ends tag
// lifetimes (prune.go); the others delete rows. A follow-up that is due now and belongs to a
// later stage is carried in memory to that stage — no review row is written
// for it unless its decision is put off (a grace, a window, a candidate
// another transaction holds). Follow-ups of the same or an earlier stage (an
// index's children) and follow-ups due later are recorded as reviews, all of
// a stage's in one sorted statement at the stage's end.

// stages lists the review kinds in the order a cascade flows.
var stages = []review.Kind{
	review.KindPolicy, review.KindTag, review.KindManifest, review.KindUploadedBlob, review.KindLink,
	review.KindBlob, review.KindLabel, review.KindUpload,
}

func stageOf(kind review.Kind) int {
	if i := slices.Index(stages, kind); i >= 0 {
		return i
	}
	return len(stages)
}

// item is one object a stage decides: a claimed review, or a follow-up
// carried from an earlier stage (claimed == nil).
type item struct {
	object string
	// cause and reason are why it is reviewed: the claimed review's, or
	// the follow-up's.
	cause   review.Cause
	reason  string
	claimed *meta.Review
}

// followUpWhy is why a carried follow-up was recorded: its cause, which
// behaviour keys on, and its reason, for people.
type followUpWhy struct {
	cause  review.Cause
	reason string
}

// outcome of one decision.
type outcome int

const (
	gone    outcome = iota // the object is absent: nothing to decide
	keep                   // alive for a reason whose end records a review (invariant R)
	later                  // alive until a time: reviewed again then
	skipped                // another transaction holds the candidate
	deleted                // garbage, deleted
)

// verdict is a decision about one item.
type verdict struct {
	outcome outcome
	until   time.Time    // later
	why     string       // later
	cause   review.Cause // later: recorded instead of the review's own cause, if set
}

// followUp records that object of kind must be reviewed at at, because of
// cause (reason says it in words): carried to its stage when that stage is
// still to come in this transaction and at is now, recorded as a review
// otherwise. A carried follow-up keeps its cause and reason down to its
// stage, and into the review recorded if its decision is put off.
func (p *pass) followUp(kind review.Kind, object string, at time.Time, cause review.Cause, reason string) {
	at = at.Add(p.c.opts.ReviewDelay)
	if !at.After(p.now) && stageOf(kind) > p.stage && !p.split {
		if p.carried == nil {
			p.carried = map[review.Kind]map[string]followUpWhy{}
		}
		m := p.carried[kind]
		if m == nil {
			m = map[string]followUpWhy{}
			p.carried[kind] = m
		}
		if _, ok := m[object]; !ok {
			m[object] = followUpWhy{cause: cause, reason: reason}
		}
		return
	}
	p.upserts = append(p.upserts, meta.Review{Kind: kind, Object: object, ReviewAfter: at, Cause: cause, Reason: reason})
}

// decideClaimed decides a batch of claimed reviews of one kind, then every
// stage after it for the follow-ups carried down (none when the pass is
// split: runStage recorded them as reviews).
func (p *pass) decideClaimed(ctx context.Context, kind review.Kind, claimed []meta.Review) error {
	if err := p.runStage(ctx, kind, claimed); err != nil {
		return err
	}
	return p.cascade(ctx, stageOf(kind)+1)
}

// cascade runs the stages from first on, for the follow-ups carried to them.
func (p *pass) cascade(ctx context.Context, first int) error {
	for s := first; s < len(stages); s++ {
		if len(p.carried[stages[s]]) == 0 {
			continue
		}
		if err := p.runStage(ctx, stages[s], nil); err != nil {
			return err
		}
	}
	return p.flushUpserts(ctx)
}

// runStage decides the claimed reviews of kind and the follow-ups carried
// to it, then settles their review rows.
func (p *pass) runStage(ctx context.Context, kind review.Kind, claimed []meta.Review) error {
	p.stage = stageOf(kind)
	items := make([]item, 0, len(claimed))
	for i := range claimed {
		items = append(items, item{object: claimed[i].Object, cause: claimed[i].Cause, reason: claimed[i].Reason, claimed: &claimed[i]})
	}
	if carried := p.carried[kind]; len(carried) > 0 {
		delete(p.carried, kind)
		objs := make([]string, 0, len(carried))
		for o := range carried {
			objs = append(objs, o)
		}
		slices.Sort(objs)
		stored, err := p.tx.StoredReviews(ctx, kind, objs)
		if err != nil {
			return err
		}
		var due []string
		for _, o := range objs {
			at, pending := stored[o]
			if pending && at.After(p.now) {
				// A review kept for later covers it: a link's grace
				// after its manifest went, a read that revived it.
				// Deciding now would cut that window short.
				continue
			}
			if pending {
				due = append(due, o)
			}
			items = append(items, item{object: o, cause: carried[o].cause, reason: carried[o].reason})
		}
		// Decided here: a due review of it is moot (one another
		// transaction holds is left to it).
		if err := p.tx.DeleteDueReviews(ctx, kind, due, p.now); err != nil {
			return err
		}
	}
	if len(items) == 0 {
		return nil
	}
	began := time.Now()
	var verdicts []verdict
	var err error
	switch kind {
	case review.KindPolicy:
		verdicts, err = p.decidePolicies(ctx, items)
	case review.KindTag:
		verdicts, err = p.decideTags(ctx, items)
	case review.KindManifest:
		verdicts, err = p.decideManifests(ctx, items)
	case review.KindUploadedBlob:
		verdicts, err = p.decideUploadedBlobs(ctx, items)
	case review.KindLink:
		verdicts, err = p.decideLinks(ctx, items)
	case review.KindBlob:
		verdicts, err = p.decideBlobs(ctx, items)
	case review.KindLabel:
		verdicts, err = p.decideLabels(ctx, items)
	case review.KindUpload:
		verdicts, err = p.decideUploads(ctx, items)
	default:
		verdicts = make([]verdict, len(items))
		for _, it := range items {
			p.c.log.WarnContext(ctx, "gc: dropping a review of unknown kind", "kind", kind, "object", it.object)
		}
	}
	if err != nil {
		return fmt.Errorf("deciding %d %s reviews: %w", len(items), kind, err)
	}
	p.c.metrics.decisions(kind, len(items), time.Since(began))
	return p.settle(ctx, kind, items, verdicts)
}

// settle ends or reschedules the reviews of a stage's items.
func (p *pass) settle(ctx context.Context, kind review.Kind, items []item, verdicts []verdict) error {
	var done []string
	for i, it := range items {
		v := verdicts[i]
		if v.outcome != skipped {
			p.summary.Reviews++
		}
		if it.claimed == nil {
			switch v.outcome {
			case later:
				p.upserts = append(p.upserts, meta.Review{Kind: kind, Object: it.object, ReviewAfter: v.until, Cause: it.cause, Reason: v.why})
			case skipped:
				// Held by a writer adding an edge or by another
				// collector: recorded, so it is decided once they
				// commit.
				p.upserts = append(p.upserts, meta.Review{Kind: kind, Object: it.object, ReviewAfter: p.now, Cause: it.cause, Reason: it.reason})
			}
			continue
		}
		switch v.outcome {
		case later:
			// Put off: why it was recorded (its cause) stays, unless
			// the decision names a new one (a policy's next due time).
			cause := it.claimed.Cause
			if v.cause != "" {
				cause = v.cause
			}
			if err := p.tx.RescheduleReview(ctx, meta.Review{Kind: kind, Object: it.object, ReviewAfter: v.until,
				Cause: cause, Reason: v.why}); err != nil {
				return err
			}
		case skipped:
			p.summary.Skipped++
		default:
			done = append(done, it.object)
		}
	}
	if err := p.tx.DeleteReviews(ctx, kind, done); err != nil {
		return err
	}
	return p.flushUpserts(ctx)
}

// flushUpserts records the follow-up reviews gathered so far in one
// statement, sorted by stage and object so that two transactions upserting
// overlapping sets take the rows in the same order.
func (p *pass) flushUpserts(ctx context.Context) error {
	if len(p.upserts) == 0 {
		return nil
	}
	rs := p.upserts
	p.upserts = nil
	slices.SortStableFunc(rs, func(a, b meta.Review) int {
		if c := cmp.Compare(stageOf(a.Kind), stageOf(b.Kind)); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return cmp.Compare(a.Object, b.Object)
	})
	// One row per review: the latest time asked for wins, as AddReview's
	// upsert would make it.
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].Kind == r.Kind && out[n-1].Object == r.Object {
			if r.ReviewAfter.After(out[n-1].ReviewAfter) {
				out[n-1] = r
			}
			continue
		}
		out = append(out, r)
	}
	return p.tx.ScheduleReviews(ctx, out)
}

func (p *pass) windowOf(ret *time.Duration) time.Duration {
	if ret != nil {
		return *ret
	}
	return p.c.opts.Policy.TagRetention
}

func (p *pass) decideTags(ctx context.Context, items []item) ([]verdict, error) {
	verdicts := make([]verdict, len(items))
	objs := make([]review.Object, len(items)) // zero: malformed
	var ids []int64
	for i, it := range items {
		o, err := review.Parse(review.KindTag, it.object)
		if err != nil {
			p.malformed(ctx, review.KindTag, it.object, err)
			continue
		}
		objs[i] = o
		ids = append(ids, o.ID)
	}
	rows, skippedIDs, err := p.tx.LockTagRows(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]meta.TagRow, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	var del []int64
	for i := range items {
		id := objs[i].ID
		t, ok := byID[id]
		switch {
		case id == 0:
			continue // malformed: its review is dropped
		case slices.Contains(skippedIDs, id):
			verdicts[i] = verdict{outcome: skipped}
			continue
		case !ok:
			continue // gone
		case t.RepoID != objs[i].RepoID:
			// The row this review was recorded for is gone and its id now
			// names a row of another repository (SQLite reuses the largest
			// rowid after a delete, e.g. a purge's). That row has its own
			// review; deciding it here would use the wrong repository's
			// window and review its manifest in the wrong repository.
			continue
		case t.End == nil:
			// Live (an expiry is handled by the expiry scan, which ends the
			// row and records a new review).
			verdicts[i] = verdict{outcome: keep}
			continue
		}
		ret := p.windowOf(t.Retention)
		if until := t.End.Add(ret); until.After(p.now) {
			verdicts[i] = verdict{outcome: later, until: until, why: "recoverable until " + until.Format(time.RFC3339)}
			continue
		}
		del = append(del, id)
		verdicts[i] = verdict{outcome: deleted}
		p.repoNames[t.RepoID] = t.Repository
		reason := fmt.Sprintf("tag %s ended %s, outside the %s time-machine window", t.Name, t.End.Format(time.RFC3339), ret)
		p.deleted(ctx, Deletion{Kind: review.KindTag, Repository: t.Repository, Tag: t.Name, Digest: t.Manifest, Cause: items[i].cause, Reason: reason})
		p.followUp(review.KindManifest, review.RepoDigestObject(t.RepoID, t.Manifest), p.now, review.CauseTagCollected, "tag "+t.Name+" collected")
	}
	return verdicts, p.tx.DeleteTagRows(ctx, del)
}

// parsePairs parses repository-scoped review objects of kind
// (review.Parse); a malformed one is logged and left out (its verdict
// stays gone: its review is dropped). keyOf[i] is items[i]'s key.
func (p *pass) parsePairs(ctx context.Context, kind review.Kind, items []item) (keys, keyOf []meta.RepoDigest, ok []bool) {
	keys = make([]meta.RepoDigest, 0, len(items))
	keyOf = make([]meta.RepoDigest, len(items))
	ok = make([]bool, len(items))
	for i, it := range items {
		o, err := review.Parse(kind, it.object)
		if err != nil {
			p.malformed(ctx, kind, it.object, err)
			continue
		}
		k := meta.RepoDigest{RepoID: o.RepoID, Digest: o.Digest}
		keys = append(keys, k)
		keyOf[i], ok[i] = k, true
	}
	return keys, keyOf, ok
}

func (p *pass) decideManifests(ctx context.Context, items []item) ([]verdict, error) {
	verdicts := make([]verdict, len(items))
	keys, keyOf, parsed := p.parsePairs(ctx, review.KindManifest, items)
	facts, skippedKeys, err := p.tx.LockManifestFacts(ctx, keys)
	if err != nil {
		return nil, err
	}
	byKey := make(map[meta.RepoDigest]meta.ManifestFacts, len(facts))
	for _, f := range facts {
		byKey[f.RepoDigest] = f
	}
	var del []meta.RepoDigest
	var whys []string
	var causes []review.Cause
	windows := map[int64]time.Duration{} // of the deleted manifests' repositories
	for i, it := range items {
		if !parsed[i] {
			continue
		}
		k := keyOf[i]
		f, ok := byKey[k]
		if !ok {
			if slices.Contains(skippedKeys, k) {
				verdicts[i] = verdict{outcome: skipped}
			}
			continue
		}
		p.repoNames[f.RepoID] = f.Repository
		v, why := p.manifestVerdict(f, it)
		verdicts[i] = v
		if v.outcome == deleted {
			del = append(del, k)
			whys = append(whys, why)
			causes = append(causes, it.cause)
			windows[k.RepoID] = p.windowOf(f.Retention)
		}
	}
	if len(del) == 0 {
		return verdicts, nil
	}
	refs, err := p.tx.DeleteManifests(ctx, del)
	if err != nil {
		return nil, err
	}
	for i, k := range del {
		p.deleted(ctx, Deletion{Kind: review.KindManifest, Repository: p.repoNames[k.RepoID], Digest: k.Digest, Cause: causes[i], Reason: whys[i]})
	}
	p.manifestsDeleted(refs)
	if p.c.opts.Policy.AttachmentsFollowSubject {
		if err := p.endAttachments(ctx, del, windows); err != nil {
			return nil, err
		}
	}
	return verdicts, nil
}

// endAttachments ends, in the same transaction, the live attachment tags
// of the deleted manifests in their own repositories (docs/design/gc.md,
// "Attachments follow their subject"): cosign's signatures, attestations
// and SBOMs and the referrers tag schema's index, named after the digest
// of a subject that is now gone. Each enters the time machine like any
// ended tag: its review is due at the end of its namespace's window
// (windows, by repository), and only then does the collector delete it and
// review the manifest it pointed at.
func (p *pass) endAttachments(ctx context.Context, deleted []meta.RepoDigest, windows map[int64]time.Duration) error {
	names := make([]meta.RepoTag, 0, 4*len(deleted))
	for _, k := range deleted {
		for _, n := range oci.AttachmentTags(k.Digest) {
			names = append(names, meta.RepoTag{RepoID: k.RepoID, Name: n})
		}
	}
	names, err := p.withoutImmutable(ctx, names)
	if err != nil {
		return err
	}
	ended, err := p.tx.EndLiveTags(ctx, names, p.now, meta.ActorCollector, meta.CauseSubjectCollected)
	if err != nil {
		return err
	}
	for _, t := range ended {
		subject, _ := oci.AttachmentSubject(t.Name)
		reason := "subject " + subject.String() + " collected"
		p.followUp(review.KindTag, review.TagObject(t.RepoID, t.ID), p.now.Add(windows[t.RepoID]), review.CauseSubjectCollected,
			"tag "+t.Name+": "+reason)
		p.summary.AttachmentsEnded++
		p.tagEnded(TagEnd{Repository: p.repoNames[t.RepoID], Tag: t.Name, Digest: t.Manifest, Cause: meta.CauseSubjectCollected, Reason: reason},
			event.TagSubjectCollected)
	}
	return nil
}

// withoutImmutable drops from names the tags an immutable rule of their
// repository covers: they outlive their subject (docs/design/policies.md,
// "Immutable tags"). The rules are read only for the repositories where
// one of names is live, which is rare; names is returned as is when none
// is covered.
func (p *pass) withoutImmutable(ctx context.Context, names []meta.RepoTag) ([]meta.RepoTag, error) {
	live, err := p.tx.LiveTagsNamed(ctx, names, p.now)
	if err != nil {
		return nil, err
	}
	rules := map[int64][]policy.Rule{}
	for _, t := range live {
		if _, ok := rules[t.RepoID]; ok {
			continue
		}
		repo := p.repoNames[t.RepoID]
		ns, _ := oci.SplitRepo(repo)
		ps, err := p.tx.PoliciesFor(ctx, ns, repo)
		if err != nil {
			return nil, err
		}
		ps = slices.DeleteFunc(ps, func(r meta.TagPolicy) bool { return r.Kind != meta.PolicyImmutable })
		rs, bad := policy.CompileAll(ps)
		for _, err := range bad {
			p.c.log.Warn("gc: ignoring a stored immutable rule that does not compile", "repository", repo, "error", err)
		}
		rules[t.RepoID] = rs
	}
	return slices.DeleteFunc(names, func(n meta.RepoTag) bool {
		_, covered := policy.Immutable(rules[n.RepoID], n.Name)
		return covered
	}), nil
}

// manifestsDeleted records the reviews gc.md asks for when manifests go:
// their links a grace later (a client that saw a blob alive keeps a full
// grace), their children, referrers and labels now.
func (p *pass) manifestsDeleted(refs meta.ManifestSetRefs) {
	for _, b := range refs.Blobs {
		p.followUp(review.KindLink, review.RepoDigestObject(b.RepoID, b.Digest), p.now.Add(p.c.opts.Policy.Grace),
			review.CauseManifestDeleted, "a manifest using it was deleted")
	}
	for _, ch := range refs.Children {
		p.followUp(review.KindManifest, review.RepoDigestObject(ch.RepoID, ch.Digest), p.now, review.CauseParentDeleted, "a parent index was deleted")
	}
	for _, rf := range refs.Referrers {
		p.followUp(review.KindManifest, review.RepoDigestObject(rf.RepoID, rf.Digest), p.now, review.CauseSubjectDeleted, "its subject was deleted")
	}
	for _, id := range refs.Labels {
		p.followUp(review.KindLabel, review.LabelObject(id), p.now, review.CauseManifestDeleted, "a manifest using it was deleted")
	}
}

// manifestVerdict checks every root and edge of DESIGN.md §3 that can keep
// a manifest, from the facts read under its lock.
func (p *pass) manifestVerdict(f meta.ManifestFacts, it item) (verdict, string) {
	if f.LiveTag != "" {
		return verdict{outcome: keep}, ""
	}
	if f.LastEnd != nil && f.LastEnd.Add(p.windowOf(f.Retention)).After(p.now) {
		// The tag row's own review deletes it after its window and then
		// reviews the manifest.
		return verdict{outcome: keep}, ""
	}
	// Any parent row keeps a child, a withdrawn one too: restoring the
	// parent brings its children back.
	if f.Parent != "" {
		return verdict{outcome: keep}, ""
	}
	if f.DeletedAt != nil {
		// A DELETE by digest asked for it to go: only what can bring it
		// back (a tag row inside its window, a parent) keeps it; not the
		// grace of its last PUT, not collect_untagged, not its subject.
		why := "deleted by digest " + f.DeletedAt.Format(time.RFC3339)
		if f.LastEnd != nil {
			why += "; last tag ended " + f.LastEnd.Format(time.RFC3339) + ", outside the time-machine window"
		}
		return verdict{outcome: deleted}, why
	}
	if f.Subject != "" && f.SubjectStored {
		return verdict{outcome: keep}, ""
	}
	if until := f.PushedAt.Add(p.c.opts.Policy.Grace); until.After(p.now) {
		return verdict{outcome: later, until: until, why: "untagged grace until " + until.Format(time.RFC3339)}, ""
	}
	// collect_untagged=false keeps a manifest pushed by digest and never
	// reached: its claimed review's cause says so (never its text).
	neverTagged := f.LastEnd == nil
	if !p.c.opts.Policy.CollectUntagged && neverTagged && f.Subject == "" && it.claimed != nil && it.claimed.Cause == review.CausePushed {
		return verdict{outcome: keep}, ""
	}
	why := "untagged since " + f.PushedAt.Format(time.RFC3339) + " and past the grace"
	switch {
	case f.LastEnd != nil:
		why = "last tag " + f.LastEndTag + " ended " + f.LastEnd.Format(time.RFC3339) + ", outside the time-machine window"
	case f.Subject != "":
		why = "subject " + f.Subject.String() + " is gone"
	case it.reason != "" && it.cause != review.CausePushed:
		why = it.reason + "; nothing else reaches it"
	}
	return verdict{outcome: deleted}, why
}

func (p *pass) decideUploadedBlobs(ctx context.Context, items []item) ([]verdict, error) {
	verdicts := make([]verdict, len(items))
	keys, keyOf, parsed := p.parsePairs(ctx, review.KindUploadedBlob, items)
	rows, skippedKeys, err := p.tx.LockUploadedBlobs(ctx, keys)
	if err != nil {
		return nil, err
	}
	byKey := make(map[meta.RepoDigest]meta.UploadedBlobRow, len(rows))
	for _, r := range rows {
		byKey[r.RepoDigest] = r
	}
	var del []meta.RepoDigest
	for i, it := range items {
		if !parsed[i] {
			continue
		}
		k := keyOf[i]
		u, ok := byKey[k]
		switch {
		case !ok && slices.Contains(skippedKeys, k):
			verdicts[i] = verdict{outcome: skipped}
		case !ok:
		case u.ExpiresAt.After(p.now):
			verdicts[i] = verdict{outcome: later, until: u.ExpiresAt, why: "upload protected until " + u.ExpiresAt.Format(time.RFC3339)}
		default:
			verdicts[i] = verdict{outcome: deleted}
			del = append(del, k)
			p.deleted(ctx, Deletion{Kind: review.KindUploadedBlob, Repository: u.Repository, Digest: k.Digest, Cause: it.cause,
				Reason: "upload protection expired " + u.ExpiresAt.Format(time.RFC3339)})
			p.followUp(review.KindLink, review.RepoDigestObject(k.RepoID, k.Digest), p.now, review.CauseUploadProtectionExpired, "upload protection expired")
		}
	}
	return verdicts, p.tx.DeleteUploadedBlobs(ctx, del)
}

func (p *pass) decideLinks(ctx context.Context, items []item) ([]verdict, error) {
	verdicts := make([]verdict, len(items))
	keys, keyOf, parsed := p.parsePairs(ctx, review.KindLink, items)
	facts, skippedKeys, err := p.tx.LockLinkFacts(ctx, keys)
	if err != nil {
		return nil, err
	}
	byKey := make(map[meta.RepoDigest]meta.LinkFacts, len(facts))
	for _, f := range facts {
		byKey[f.RepoDigest] = f
	}
	var del []meta.RepoDigest
	for i, it := range items {
		if !parsed[i] {
			continue
		}
		k := keyOf[i]
		f, ok := byKey[k]
		switch {
		case !ok && slices.Contains(skippedKeys, k):
			verdicts[i] = verdict{outcome: skipped}
		case !ok:
		case f.Used || (f.Marker != nil && f.Marker.After(p.now)):
			// A manifest's deletion or the marker's review records a
			// new one.
			verdicts[i] = verdict{outcome: keep}
		default:
			verdicts[i] = verdict{outcome: deleted}
			del = append(del, k)
			p.repoNames[k.RepoID] = f.Repository
			p.deleted(ctx, Deletion{Kind: review.KindLink, Repository: f.Repository, Digest: k.Digest, Cause: it.cause,
				Reason: "no manifest of " + f.Repository + " uses it and no upload protects it"})
			p.followUp(review.KindBlob, review.BlobObject(k.Digest), p.now, review.CauseUnlinked, "unlinked from "+f.Repository)
		}
	}
	return verdicts, p.tx.DeleteLinks(ctx, del)
}

func (p *pass) decideBlobs(ctx context.Context, items []item) ([]verdict, error) {
	verdicts := make([]verdict, len(items))
	ds := make([]digest.Digest, 0, len(items))
	digestOf := make([]digest.Digest, len(items)) // "": malformed
	for i, it := range items {
		o, err := review.Parse(review.KindBlob, it.object)
		if err != nil {
			p.malformed(ctx, review.KindBlob, it.object, err)
			continue
		}
		ds = append(ds, o.Digest)
		digestOf[i] = o.Digest
	}
	facts, skippedDs, err := p.tx.LockBlobFacts(ctx, ds)
	if err != nil {
		return nil, err
	}
	byDigest := make(map[digest.Digest]meta.BlobFacts, len(facts))
	for _, f := range facts {
		byDigest[f.Digest] = f
	}
	var del []digest.Digest
	var tombs []meta.Tombstone
	for i, it := range items {
		d := digestOf[i]
		if d == "" {
			continue
		}
		b, ok := byDigest[d]
		switch {
		case !ok && slices.Contains(skippedDs, d):
			verdicts[i] = verdict{outcome: skipped}
		case !ok:
		case b.Linked:
			verdicts[i] = verdict{outcome: keep}
		default:
			verdicts[i] = verdict{outcome: deleted}
			del = append(del, d)
			ts := meta.Tombstone{StorageKey: b.StorageKey, Since: p.now}
			tombs = append(tombs, ts)
			p.tombs = append(p.tombs, ts)
			p.deleted(ctx, Deletion{Kind: review.KindBlob, Digest: d, Size: b.Size, Cause: it.cause, Reason: "no repository links it (" + it.reason + ")"})
		}
	}
	return verdicts, p.tx.DeleteBlobs(ctx, del, tombs)
}

func (p *pass) decideLabels(ctx context.Context, items []item) ([]verdict, error) {
	verdicts := make([]verdict, len(items))
	ids := make([]int64, 0, len(items))
	idOf := make([]int64, len(items))
	for i, it := range items {
		o, err := review.Parse(review.KindLabel, it.object)
		if err != nil {
			p.malformed(ctx, review.KindLabel, it.object, err)
			idOf[i] = -1
			continue
		}
		ids = append(ids, o.ID)
		idOf[i] = o.ID
	}
	facts, skippedIDs, err := p.tx.LockLabelFacts(ctx, ids)
	if err != nil {
		return nil, err
	}
	used := make(map[int64]bool, len(facts))
	for _, f := range facts {
		used[f.ID] = f.Used
	}
	var del []int64
	for i, it := range items {
		id := idOf[i]
		u, ok := used[id]
		switch {
		case id < 0:
		case !ok && slices.Contains(skippedIDs, id):
			verdicts[i] = verdict{outcome: skipped}
		case !ok:
		case u:
			verdicts[i] = verdict{outcome: keep}
		default:
			verdicts[i] = verdict{outcome: deleted}
			del = append(del, id)
			p.deleted(ctx, Deletion{Kind: review.KindLabel, Cause: it.cause, Reason: "label " + it.object + " used by no manifest"})
		}
	}
	return verdicts, p.tx.DeleteLabels(ctx, del)
}

func (p *pass) decideUploads(ctx context.Context, items []item) ([]verdict, error) {
	verdicts := make([]verdict, len(items))
	ids := make([]string, 0, len(items))
	idOf := make([]string, len(items)) // "": malformed
	for i, it := range items {
		o, err := review.Parse(review.KindUpload, it.object)
		if err != nil {
			p.malformed(ctx, review.KindUpload, it.object, err)
			continue
		}
		ids = append(ids, o.UploadID)
		idOf[i] = o.UploadID
	}
	rows, skippedIDs, err := p.tx.LockUploads(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]meta.Upload, len(rows))
	for _, u := range rows {
		byID[u.ID] = u
	}
	var del []string
	for i, it := range items {
		id := idOf[i]
		u, ok := byID[id]
		switch {
		case id == "":
		case !ok && slices.Contains(skippedIDs, id):
			verdicts[i] = verdict{outcome: skipped}
		case !ok:
		default:
			if until := u.UpdatedAt.Add(p.c.opts.Policy.UploadExpiry); until.After(p.now) {
				verdicts[i] = verdict{outcome: later, until: until, why: "upload active until " + until.Format(time.RFC3339)}
				continue
			}
			verdicts[i] = verdict{outcome: deleted}
			del = append(del, u.ID)
			p.aborts = append(p.aborts, u.ID)
			p.deleted(ctx, Deletion{Kind: review.KindUpload, Repository: p.repoName(ctx, u.RepoID), Size: u.Size, Cause: it.cause,
				Reason: "upload " + u.ID + " idle since " + u.UpdatedAt.Format(time.RFC3339)})
		}
	}
	return verdicts, p.tx.DeleteUploads(ctx, del)
}
