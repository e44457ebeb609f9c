package torture

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Operations on berth's rules (docs/design/torture.md, "Rules"): immutable
// tags, cosign-style signature tags that follow their subject, and a
// keep_newest retention policy, with the restores of what the collector
// ended on its own.

// release is an immutable tag and the image it was first pushed with: the
// only digest the client ever sends for it, until a move is attempted.
type release struct {
	tag string
	b   built
}

// ruleSetup saves the run's rules before any client starts: an immutable
// rule on the releases' repository and a keep_newest rule on the pruned
// one. The model counts the keep_newest rule only once berth acknowledged
// it.
func (rn *runner) ruleSetup(ctx context.Context) error {
	c := (&client0{rn: rn}).http()
	rng := rand.New(rand.NewPCG(rn.cfg.Seed, 5))
	rules := []struct {
		repo, name string
		rule       map[string]any
	}{
		{rn.relRepo, "releases", map[string]any{"kind": "immutable", "tag_pattern": "^rel-"}},
		{rn.keepRepo, "keep-newest", map[string]any{"kind": "keep_newest", "count": rn.cfg.KeepNewest}},
	}
	for _, x := range rules {
		var last resp
		for attempt := 0; attempt < 20; attempt++ {
			base, err := rn.cl.base(ctx, rng)
			if err != nil {
				return err
			}
			last = c.putPolicy(ctx, base, x.repo, x.name, x.rule)
			if last.outcome() != outUnknown {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if last.outcome() != outOK {
			return fmt.Errorf("saving policy %s of %s: %s %.200s", x.name, x.repo, last.String(), last.body)
		}
		rn.logf("policy %s of %s saved: %v", x.name, x.repo, x.rule)
	}
	r := rn.m.repo(rn.keepRepo)
	rn.m.mu.Lock()
	r.keepN = rn.cfg.KeepNewest
	rn.m.mu.Unlock()
	return nil
}

// opPushRelease pushes a new image under a new immutable tag
// rel-c<id>-<n>, or pushes again the one whose first PUT got no answer
// (same digest: allowed whether the first PUT created the tag or not).
func (w *worker) opPushRelease(ctx context.Context) string {
	r := w.r.m.repo(w.r.relRepo)
	r.lock.RLock()
	defer r.lock.RUnlock()
	rel := w.pending
	if rel == nil {
		b := buildImage(imageConfig(w.nonce(), map[string]string{"torture.release": "yes"}), w.pickLayers(), nil)
		b.rec.kind = kindRelease
		b.rec = w.r.m.addManifest(r, w.own(r, b.rec))
		rel = &release{tag: fmt.Sprintf("rel-c%d-%d", w.id, len(w.releases)), b: b}
		w.r.noteRelease(rel.tag, b.rec.digest)
	}
	w.pending = rel
	first, ok := w.ensureBlobs(ctx, r.name, rel.b.blobs)
	if !ok {
		return "unknown"
	}
	base, err := w.base(ctx)
	if err != nil {
		return ""
	}
	rec := rel.b.rec
	keys := []string{r.name, tkey(r.name, rel.tag), mkey(r.name, rec.digest)}
	p := w.c.putManifest(ctx, base, r.name, rel.tag, rec.mediaType, rec.body)
	w.record("put-release", p, p.String(), "", keys...)
	w.r.st.op("put-manifest", p.outcome().String())
	switch p.outcome() {
	case outOK:
		w.r.m.ackPut(r, rec.digest, span{p.sent, p.got})
		w.r.m.ackImmutable(r, rel.tag, rec.digest, span{p.sent, p.got})
		w.releases = append(w.releases, rel.tag)
		w.pending = nil
	case outFailed:
		switch {
		case p.code == "DENIED":
			w.violate("immutable tag's first push refused", fmt.Sprintf("PUT %s/manifests/%s (%s) answered %s: the tag was never sent another digest", r.name, rel.tag, rec.digest, p.String()), keys...)
			return "violation"
		case p.got.Add(w.r.cfg.Margin).Before(first):
			w.violate("manifest PUT refused inside the grace", fmt.Sprintf("PUT %s/manifests/%s (%s) answered %s at %s, but %s until %s",
				r.name, rel.tag, rec.digest, p.String(), w.r.hist.rel(p.got), blobsConfirmed, w.r.hist.rel(first)), keys...)
			return "violation"
		}
	default:
		w.r.m.pendingImmutable(r, rel.tag)
	}
	return p.outcome().String()
}

// opReleaseDenied tries what an immutable tag allows and refuses: a re-PUT
// of its digest (201, no new lifetime), a move onto another stored
// manifest, a DELETE and an expiry (each 403 DENIED). An answer lost leaves
// the model unchanged: berth must not have moved or ended the tag, which
// the pulls and the final history check verify.
func (w *worker) opReleaseDenied(ctx context.Context) string {
	r := w.r.m.repo(w.r.relRepo)
	r.lock.RLock()
	defer r.lock.RUnlock()
	if len(w.releases) == 0 {
		return ""
	}
	tag := w.releases[w.rng.IntN(len(w.releases))]
	d, _, ok := w.r.m.liveDigest(r, tag, time.Now())
	if !ok {
		return ""
	}
	base, err := w.base(ctx)
	if err != nil {
		return ""
	}
	keys := []string{r.name, tkey(r.name, tag), mkey(r.name, d)}
	w.r.m.mu.Lock()
	rec := r.manifests[d]
	w.r.m.mu.Unlock()
	var x resp
	var what string
	switch w.rng.IntN(4) {
	case 0:
		x = w.c.putManifest(ctx, base, r.name, tag, rec.mediaType, rec.body)
		w.record("put-release", x, x.String(), "re-PUT of its digest", keys...)
		switch x.outcome() {
		case outOK:
			w.r.m.ackPut(r, d, span{x.sent, x.got})
			return "re-put"
		case outFailed:
			w.violate("re-PUT of an immutable tag's own digest refused", fmt.Sprintf("PUT %s/manifests/%s (%s, the digest it names) answered %s; the tag keeps the manifest stored, and a PUT of the digest a tag already names changes nothing", r.name, tag, d, x.String()), keys...)
			return "violation"
		}
		return x.outcome().String()
	case 1:
		target := w.promisedOther(r, d)
		if target == nil {
			return ""
		}
		keys = append(keys, mkey(r.name, target.digest))
		x = w.c.putManifest(ctx, base, r.name, tag, target.mediaType, target.body)
		what = "move onto " + target.digest
		w.record("move-release", x, x.String(), what, keys...)
		if x.outcome() == outFailed && x.code != "DENIED" {
			w.r.m.mu.Lock()
			promised := w.r.m.promisedOver(r, target.digest, x.sent, x.got)
			w.r.m.mu.Unlock()
			if !promised {
				return "refused-other"
			}
		}
	case 2:
		x = w.c.deleteManifest(ctx, base, r.name, tag)
		what = "delete"
		w.record("delete-release", x, x.String(), what, keys...)
	default:
		x = w.c.setExpiry(ctx, base, r.name, tag, time.Second)
		what = "expiry in 1s"
		w.record("expire-release", x, x.String(), what, keys...)
	}
	switch {
	case x.outcome() == outUnknown:
		return "unknown"
	case x.status == http.StatusForbidden && x.code == "DENIED":
		if w.rng.IntN(3) == 0 {
			if v := w.verifyTag(ctx, r, tag); v == "violation" {
				return v
			}
		}
		return "denied"
	}
	w.violate("immutable tag not refused", fmt.Sprintf("%s of immutable tag %s:%s (on %s) answered %s, want 403 DENIED", what, r.name, tag, d, x.String()), keys...)
	return "violation"
}

// promisedOther picks a manifest of r other than d that berth promised
// now (so a PUT of it can only be refused for the tag's sake).
func (w *worker) promisedOther(r *repoModel, d string) *manifestRec {
	now := time.Now()
	w.r.m.mu.Lock()
	defer w.r.m.mu.Unlock()
	var cands []*manifestRec
	for _, rec := range r.manifests {
		if rec.digest != d && rec.kind != "referrer" && w.r.m.promisedUntil(r, rec.digest, now).After(now.Add(time.Second)) {
			cands = append(cands, rec)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	slices.SortFunc(cands, func(a, b *manifestRec) int { return compareStrings(a.digest, b.digest) })
	return cands[w.rng.IntN(len(cands))]
}

// opPushSignature signs one of the client's tagged manifests the cosign
// way: a small signature manifest under the tag sha256-<hex>.sig in the
// same repository. A second signature moves the tag, as cosign does.
func (w *worker) opPushSignature(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	d, _, ok := w.r.m.liveDigest(r, w.ownTag(r), time.Now().Add(w.r.cfg.Grace))
	if !ok {
		return ""
	}
	w.r.m.mu.Lock()
	subject := r.manifests[d]
	w.r.m.mu.Unlock()
	if subject == nil || subject.owner != w.id || subject.kind == "referrer" || subject.kind == kindSignature {
		return ""
	}
	b := buildSignature(d, newBlob(randomBytes(w.rng, 64+w.rng.IntN(512)), mediaCosignSig), w.nonce())
	rec := w.r.m.addManifest(r, w.own(r, b.rec))
	first, ok := w.ensureBlobs(ctx, r.name, b.blobs)
	if !ok {
		return "unknown"
	}
	tag := sigTag(d)
	if !w.tagKnown(ctx, r, tag) {
		return "unknown"
	}
	return result(w.putManifest(ctx, r, rec, tag, first, blobsConfirmed))
}

// ownsTag: the client is the only one that writes tag of r — its own
// c<id>-… tags, and the signature tags of its manifests.
func (w *worker) ownsTag(r *repoModel, tag string) bool {
	if strings.HasPrefix(tag, fmt.Sprintf("c%d-", w.id)) {
		return true
	}
	s := attachmentSubject(tag)
	if s == "" {
		return false
	}
	w.r.m.mu.Lock()
	defer w.r.m.mu.Unlock()
	rec := r.manifests[s]
	return rec != nil && rec.owner == w.id
}

// opRestoreEnded lists a repository's tag history (checking every row the
// collector ended on its own: ruleEnds) and restores one of the client's
// rows the collector ended — a signature whose subject it collected, a tag
// a keep_newest rule pruned — that berth's own history says is inside its
// window: the restore must succeed until the end berth reported plus the
// window, whatever the model's lower bound of that end.
func (w *worker) opRestoreEnded(ctx context.Context) string {
	r := w.anyRepo()
	switch w.rng.IntN(3) {
	case 0:
		r = w.r.m.repo(w.r.keepRepo)
	case 1:
		if orphans := w.orphanedSignatures(); len(orphans) > 0 {
			r = orphans[w.rng.IntN(len(orphans))]
		}
	}
	r.lock.RLock()
	defer r.lock.RUnlock()
	base, err := w.base(ctx)
	if err != nil {
		return ""
	}
	h := w.c.tagHistory(ctx, base, r.name, "")
	w.record("tag-history", h, h.String(), "", r.name)
	if h.status != http.StatusOK {
		return "history-" + h.outcome().String() // a purged repository answers 404
	}
	rows, err := parseHistory(h.body)
	if err != nil {
		w.violate("tag history does not parse", err.Error(), r.name)
		return "violation"
	}
	if v := w.r.checkRuleEnds(r, rows, h); v > 0 {
		return "violation"
	}
	type cand struct {
		tag, digest, cause string
		end                time.Time
	}
	var cands []cand
	soon := time.Now().Add(300*time.Millisecond + w.r.cfg.Margin)
	for _, x := range rows {
		if x.Live || x.End == nil || (x.EndCause != causePolicy && x.EndCause != causeSubjectCollected) {
			continue
		}
		if !soon.Before(x.End.Add(w.r.cfg.Retention)) || !newestOn(rows, x) || !w.ownsTag(r, x.Tag) {
			continue
		}
		cands = append(cands, cand{x.Tag, x.Digest, x.EndCause, *x.End})
	}
	if len(cands) == 0 {
		return "none"
	}
	c := cands[w.rng.IntN(len(cands))]
	if !w.tagKnown(ctx, r, c.tag) {
		return "unknown"
	}
	return w.restoreAndVerify(ctx, r, c.tag, c.digest, c.end.Add(w.r.cfg.Retention),
		fmt.Sprintf("berth's history says the collector ended that lifetime (cause %s) at %s", c.cause, w.r.hist.rel(c.end)))
}

// End causes of the rows the collector ends on its own (meta.EndCause).
const (
	causePolicy           = "policy"
	causeSubjectCollected = "subject_collected"
)

// newestOn reports whether x is the newest row of its tag on its digest,
// the one a restore by digest brings back.
func newestOn(rows []historyRow, x historyRow) bool {
	for _, y := range rows {
		if y.Tag == x.Tag && y.Digest == x.Digest && y.Start.After(x.Start) {
			return false
		}
	}
	return true
}

// orphanedSignatures lists the repositories where one of the client's
// signature tags may have been ended by the collector within the window:
// its subject's promise ended less than a window ago.
func (w *worker) orphanedSignatures() []*repoModel {
	now := time.Now()
	var out []*repoModel
	for _, name := range append(slices.Clone(w.r.repos), w.r.purgeable...) {
		r := w.r.m.repo(name)
		w.r.m.mu.Lock()
		for _, t := range r.tags {
			if t.live == nil || t.live.subject == "" || !strings.HasPrefix(t.name, "sha256-") {
				continue
			}
			if rec := r.manifests[t.live.subject]; rec == nil || rec.owner != w.id {
				continue
			}
			if e := w.r.m.subjectEnd(r, t.live, 0); e.Before(now) && now.Before(e.Add(w.r.cfg.Retention)) {
				out = append(out, r)
				break
			}
		}
		w.r.m.mu.Unlock()
	}
	return out
}
