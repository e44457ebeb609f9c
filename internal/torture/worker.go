package torture

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"
)

// worker is one client: it runs random operations one at a time. It owns
// the tags named c<id>-*, and the manifests it builds (their configs carry
// a nonce); blobs, repositories and the shared images are shared.
type worker struct {
	id  int
	rng *rand.Rand
	r   *runner
	c   *client
	n   int
	// The client's immutable tags (worker_rules.go): those acknowledged,
	// in order, and the one whose first PUT got no answer.
	releases []string
	pending  *release
}

func (w *worker) base(ctx context.Context) (string, error) {
	return w.r.cl.base(ctx, w.rng)
}

func (w *worker) nonce() string {
	w.n++
	return fmt.Sprintf("c%d-%d-%d", w.id, w.n, w.rng.Uint64())
}

func (w *worker) record(op string, r resp, result string, detail string, keys ...string) {
	w.r.hist.add(entry{client: w.id, op: op, keys: keys, sent: r.sent, got: r.got, result: result, detail: detail})
}

func (w *worker) violate(what, detail string, keys ...string) {
	w.r.hist.violate(what, detail, keys...)
	w.r.logf("VIOLATION: %s: %s", what, detail)
}

func mkey(repo, d string) string   { return repo + "@" + d }
func tkey(repo, tag string) string { return repo + ":" + tag }
func bkey(d string) string         { return "blob:" + d }

type opFunc func(ctx context.Context) string

// run executes random operations until ctx ends.
func (w *worker) run(ctx context.Context) {
	ops := []struct {
		name   string
		weight int
		fn     opFunc
	}{
		{"push-image", 20, w.opPushImage},
		{"push-index", 6, w.opPushIndex},
		{"push-referrer", 6, w.opPushReferrer},
		{"push-shared", 6, w.opPushShared},
		{"push-untagged", 4, w.opPushUntagged},
		{"move-tag", 8, w.opMoveTag},
		{"delete-tag", 6, w.opDeleteTag},
		{"restore-tag", 6, w.opRestoreTag},
		{"expire-tag", 4, w.opExpireTag},
		{"delete-manifest", 5, w.opDeleteManifest},
		{"blobs-only", 3, w.opBlobsOnly},
		{"head-skip-edge", 2, w.opHeadSkipEdge},
		{"abandon-upload", 3, w.opAbandonUpload},
		{"verify", 14, w.opVerify},
		{"purge", 1, w.opPurge},
		{"push-release", 3, w.opPushRelease},
		{"release-denied", 3, w.opReleaseDenied},
		{"push-signature", 5, w.opPushSignature},
		{"restore-ended", 4, w.opRestoreEnded},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	for ctx.Err() == nil {
		x := w.rng.IntN(total)
		for _, o := range ops {
			if x < o.weight {
				res := o.fn(ctx)
				if ctx.Err() == nil && res != "" {
					w.r.st.op(o.name, res)
				}
				if res == "unknown" {
					// Probably a crash: let the cluster come back.
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
				break
			}
			x -= o.weight
		}
	}
}

// pick helpers.

func (w *worker) anyRepo() *repoModel {
	all := append(slices.Clone(w.r.repos), w.r.purgeable...)
	return w.r.m.repo(all[w.rng.IntN(len(all))])
}

func (w *worker) ownTag(r *repoModel) string {
	return fmt.Sprintf("c%d-t%d", w.id, w.rng.IntN(4))
}

func (w *worker) pickLayers() []blobData {
	n := 1 + w.rng.IntN(3)
	var ls []blobData
	for len(ls) < n {
		l := w.r.layers[w.rng.IntN(len(w.r.layers))]
		if !slices.ContainsFunc(ls, func(b blobData) bool { return b.digest == l.digest }) {
			ls = append(ls, l)
		}
	}
	if w.rng.IntN(3) == 0 {
		ls = append(ls, newBlob(randomBytes(w.rng, 64+w.rng.IntN(16<<10)), mediaLayer))
	}
	return ls
}

// ensureBlob makes blob b available in repo and returns until when berth
// promised to keep it for a manifest that references it: by HEAD (and
// skipping the upload: a grace after the HEAD was sent, gc.md
// scenario 29), by a cross-repository mount or an upload (monolithic or
// chunked: a full grace after the request was sent). ok is false when the
// blob could not be confirmed.
func (w *worker) ensureBlob(ctx context.Context, repo string, b blobData, allowHead bool) (time.Time, bool) {
	base, err := w.base(ctx)
	if err != nil {
		return time.Time{}, false
	}
	keys := []string{repo, bkey(b.digest)}
	// HEAD-then-skip: a client that sees the blob does not upload it.
	if allowHead && w.rng.IntN(2) == 0 {
		h := w.c.headBlob(ctx, base, repo, b.digest)
		w.record("head-blob", h, h.String(), "", keys...)
		w.r.st.op("head-blob", h.outcome().String())
		if h.status == http.StatusOK {
			w.r.st.op("head-skip", "ok")
			return h.sent.Add(w.r.cfg.readGrace()), true
		}
		if h.outcome() == outUnknown {
			return time.Time{}, false
		}
	}
	// Cross-repository mount from a repository that had it.
	if from := w.r.seenIn(b.digest, repo, w.rng); from != "" && w.rng.IntN(3) == 0 {
		loc, m := w.c.mount(ctx, base, repo, from, b.digest)
		w.record("mount", m, m.String(), "from "+from, append(keys, from)...)
		w.r.st.op("mount", map[int]string{201: "mounted", 202: "upload-instead"}[m.status]+m.outcome().String())
		switch {
		case m.status == http.StatusCreated:
			w.r.saw(b.digest, repo)
			return m.sent.Add(w.r.cfg.Grace), true
		case m.status == http.StatusAccepted && loc != "":
			f := w.c.finishUpload(ctx, base, loc, b.digest, b.data)
			w.record("upload-after-mount", f, f.String(), "", keys...)
			if f.status == http.StatusCreated {
				w.r.saw(b.digest, repo)
				return f.sent.Add(w.r.cfg.Grace), true
			}
			return time.Time{}, false
		default:
			return time.Time{}, false
		}
	}
	if w.rng.IntN(3) == 0 && len(b.data) > 1 {
		loc, s := w.c.startUpload(ctx, base, repo)
		if loc == "" {
			w.record("upload-start", s, s.String(), "", keys...)
			return time.Time{}, false
		}
		cut := 1 + w.rng.IntN(len(b.data)-1)
		p := w.c.patchUpload(ctx, base, loc, 0, b.data[:cut])
		if p.status != http.StatusAccepted {
			w.record("upload-chunked", p, p.String(), "patch", keys...)
			w.r.st.op("upload-chunked", p.outcome().String())
			return time.Time{}, false
		}
		if w.r.cfg.Replicas > 1 {
			base, _ = w.base(ctx) // continue on any replica
		}
		f := w.c.finishUpload(ctx, base, loc, b.digest, b.data[cut:])
		w.record("upload-chunked", f, f.String(), "", keys...)
		w.r.st.op("upload-chunked", f.outcome().String())
		if f.status == http.StatusCreated {
			w.r.saw(b.digest, repo)
			return f.sent.Add(w.r.cfg.Grace), true
		}
		return time.Time{}, false
	}
	u := w.c.pushMonolithic(ctx, base, repo, b.digest, b.data)
	w.record("upload", u, u.String(), "", keys...)
	w.r.st.op("upload", u.outcome().String())
	if u.status == http.StatusCreated {
		w.r.saw(b.digest, repo)
		return u.sent.Add(w.r.cfg.Grace), true
	}
	return time.Time{}, false
}

// ensureBlobs confirms every blob and returns the earliest promise's end.
func (w *worker) ensureBlobs(ctx context.Context, repo string, bs []blobData) (time.Time, bool) {
	var earliest time.Time
	for _, b := range bs {
		t, ok := w.ensureBlob(ctx, repo, b, true)
		if !ok {
			return time.Time{}, false
		}
		if earliest.IsZero() || t.Before(earliest) {
			earliest = t
		}
	}
	return earliest, true
}

// maybeDawdle waits, now and then, most of the grace between the blobs and
// the manifest: the window the collector must respect.
func (w *worker) maybeDawdle(ctx context.Context) {
	if w.rng.IntN(7) != 0 {
		return
	}
	d := time.Duration(w.rng.Int64N(int64(w.r.cfg.Grace) * 9 / 10))
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// putManifest PUTs rec under ref (a tag or its digest) and updates the
// model. mustBy is the time until which berth promised to accept it (the
// earliest confirmation of its blobs or children plus the grace; zero: no
// promise); promisedWhy says where the promise comes from.
func (w *worker) putManifest(ctx context.Context, r *repoModel, rec *manifestRec, tag string, mustBy time.Time, promisedWhy string) outcome {
	expiry := rec.expiry
	base, err := w.base(ctx)
	if err != nil {
		return outUnknown
	}
	ref := rec.digest
	keys := []string{r.name, mkey(r.name, rec.digest)}
	for _, b := range rec.blobs {
		keys = append(keys, bkey(b.digest))
	}
	for _, c := range rec.children {
		keys = append(keys, mkey(r.name, c))
	}
	if rec.subject != "" {
		keys = append(keys, mkey(r.name, rec.subject))
	}
	var snap tagSnapshot
	create := -1
	if tag != "" {
		ref = tag
		keys = append(keys, tkey(r.name, tag))
		snap = w.r.m.beginTagOp(r, tag, time.Now())
		create, _ = w.r.m.beginCreate(r)
	}
	p := w.c.putManifest(ctx, base, r.name, ref, rec.mediaType, rec.body)
	w.r.m.endCreate(r, create, p.outcome(), p.got)
	detail := rec.kind
	if expiry > 0 {
		detail += fmt.Sprintf(" expires-after %s", expiry)
	}
	w.record("put-manifest", p, p.String(), detail, keys...)
	w.r.st.op("put-manifest", p.outcome().String())
	switch p.outcome() {
	case outOK:
		if got := p.header.Get("Docker-Content-Digest"); got != "" && got != rec.digest {
			w.violate("manifest PUT answered another digest", fmt.Sprintf("%s: sent %s, answered %s", r.name, rec.digest, got), keys...)
		}
		w.r.m.ackPut(r, rec.digest, span{p.sent, p.got})
		if tag != "" {
			w.r.m.ackTagPut(r, snap, rec.digest, span{p.sent, p.got}, expiry, create)
		}
		return outOK
	case outFailed:
		if tag != "" {
			w.r.m.undoTagOp(r, snap)
		}
		if !mustBy.IsZero() && p.got.Add(w.r.cfg.Margin).Before(mustBy) {
			w.violate("manifest PUT refused inside the grace",
				fmt.Sprintf("PUT %s/manifests/%s (%s) answered %s at %s, but %s until %s",
					r.name, ref, rec.digest, p.String(), w.r.hist.rel(p.got), promisedWhy, w.r.hist.rel(mustBy)), keys...)
		}
		return outFailed
	}
	return outUnknown
}

func result(o outcome) string { return o.String() }

// opPushImage pushes a new image (blobs, then the manifest by tag).
func (w *worker) opPushImage(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	labels := map[string]string{"torture.client": fmt.Sprint(w.id)}
	var ann map[string]string
	var expiry time.Duration
	if w.rng.IntN(10) == 0 {
		expiry = time.Duration(1+w.rng.IntN(3)) * time.Second
		ann = map[string]string{"berth.expires-after": fmt.Sprintf("%ds", int(expiry/time.Second))}
	}
	b := buildImage(imageConfig(w.nonce(), labels), w.pickLayers(), ann)
	rec := w.r.m.addManifest(r, w.own(r, b.rec))
	first, ok := w.ensureBlobs(ctx, r.name, b.blobs)
	if !ok {
		return "unknown"
	}
	w.maybeDawdle(ctx)
	tag := w.ownTag(r)
	if !w.tagKnown(ctx, r, tag) {
		return "unknown"
	}
	return result(w.putManifest(ctx, r, rec, tag, first, blobsConfirmed))
}

func (w *worker) own(r *repoModel, rec *manifestRec) *manifestRec {
	rec.repo = r.name
	rec.owner = w.id
	return rec
}

// tagKnown makes sure the model knows the tag's state before a write that
// sets it, resynchronising with a DELETE after an unknown operation.
func (w *worker) tagKnown(ctx context.Context, r *repoModel, tag string) bool {
	w.r.m.mu.Lock()
	t := w.r.m.tag(r, tag)
	known := t.known
	w.r.m.mu.Unlock()
	if known {
		return true
	}
	base, err := w.base(ctx)
	if err != nil {
		return false
	}
	snap := w.r.m.beginTagOp(r, tag, time.Now())
	d := w.c.deleteManifest(ctx, base, r.name, tag)
	w.record("resync-tag", d, d.String(), "", r.name, tkey(r.name, tag))
	if d.status == http.StatusAccepted || d.code == "MANIFEST_UNKNOWN" || d.code == "TAG_UNKNOWN" || d.status == http.StatusNotFound {
		w.r.m.ackTagGone(r, snap)
		return true
	}
	return false
}

// opPushUntagged pushes an image by digest only: it lives on the grace.
func (w *worker) opPushUntagged(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	b := buildImage(imageConfig(w.nonce(), nil), w.pickLayers(), nil)
	rec := w.r.m.addManifest(r, w.own(r, b.rec))
	first, ok := w.ensureBlobs(ctx, r.name, b.blobs)
	if !ok {
		return "unknown"
	}
	w.maybeDawdle(ctx)
	return result(w.putManifest(ctx, r, rec, "", first, blobsConfirmed))
}

// opPushIndex pushes 2-3 child images by digest, then an index by tag.
func (w *worker) opPushIndex(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	var children []*manifestRec
	mustBy := time.Time{}
	for i := 0; i < 2+w.rng.IntN(2); i++ {
		b := buildImage(imageConfig(w.nonce(), nil), w.pickLayers(), nil)
		rec := w.r.m.addManifest(r, w.own(r, b.rec))
		first, ok := w.ensureBlobs(ctx, r.name, b.blobs)
		if !ok {
			return "unknown"
		}
		sent := time.Now()
		if o := w.putManifest(ctx, r, rec, "", first, blobsConfirmed); o != outOK {
			return result(o)
		}
		if by := sent.Add(w.r.cfg.Grace); mustBy.IsZero() || by.Before(mustBy) {
			mustBy = by
		}
		children = append(children, rec)
	}
	idx := w.r.m.addManifest(r, w.own(r, buildIndex(children, nil)))
	w.maybeDawdle(ctx)
	tag := w.ownTag(r)
	if !w.tagKnown(ctx, r, tag) {
		return "unknown"
	}
	return result(w.putManifest(ctx, r, idx, tag, mustBy, "every child was pushed (201) by then plus the grace"))
}

// opPushReferrer attaches a signature to one of the client's tagged
// manifests, with or without a tag of its own.
func (w *worker) opPushReferrer(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	tag := w.ownTag(r)
	d, _, ok := w.r.m.liveDigest(r, tag, time.Now().Add(w.r.cfg.Grace))
	if !ok {
		return ""
	}
	w.r.m.mu.Lock()
	subject := r.manifests[d]
	w.r.m.mu.Unlock()
	if subject == nil || subject.kind == "referrer" {
		return ""
	}
	b := buildReferrer(subject, newBlob(randomBytes(w.rng, 32+w.rng.IntN(512)), "application/vnd.berth.torture.sig.v1"), w.nonce())
	rec := w.r.m.addManifest(r, w.own(r, b.rec))
	first, ok := w.ensureBlobs(ctx, r.name, b.blobs)
	if !ok {
		return "unknown"
	}
	rtag := ""
	if w.rng.IntN(3) == 0 {
		rtag = fmt.Sprintf("c%d-sig%d", w.id, w.rng.IntN(2))
		if !w.tagKnown(ctx, r, rtag) {
			return "unknown"
		}
	}
	return result(w.putManifest(ctx, r, rec, rtag, first, blobsConfirmed))
}

// opPushShared pushes one of the shared images (same digest for every
// client and repository), by tag or by digest.
func (w *worker) opPushShared(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	s := w.r.shared[w.rng.IntN(len(w.r.shared))]
	rec := *s.rec
	rec.repo, rec.owner = r.name, -1
	rp := w.r.m.addManifest(r, &rec)
	first, ok := w.ensureBlobs(ctx, r.name, s.blobs)
	if !ok {
		return "unknown"
	}
	w.maybeDawdle(ctx)
	tag := ""
	if w.rng.IntN(2) == 0 {
		tag = w.ownTag(r)
		if !w.tagKnown(ctx, r, tag) {
			return "unknown"
		}
	}
	return result(w.putManifest(ctx, r, rp, tag, first, blobsConfirmed))
}

// opMoveTag re-PUTs an existing manifest (the client's own or a shared one)
// under one of the client's tags. A manifest that is promised (stored) has
// all its blobs and children, so berth must accept it.
func (w *worker) opMoveTag(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	w.r.m.mu.Lock()
	var cands []*manifestRec
	for _, rec := range r.manifests {
		if (rec.owner == w.id || rec.owner < 0) && rec.kind != "referrer" && len(rec.puts) > 0 {
			cands = append(cands, rec)
		}
	}
	w.r.m.mu.Unlock()
	if len(cands) == 0 {
		return ""
	}
	slices.SortFunc(cands, func(a, b *manifestRec) int { return compareStrings(a.digest, b.digest) })
	if w.rng.IntN(3) != 0 {
		// Mostly manifests berth promised: a refusal is then a violation.
		now := time.Now()
		w.r.m.mu.Lock()
		promised := slices.DeleteFunc(slices.Clone(cands), func(x *manifestRec) bool { return w.r.m.promisedUntil(r, x.digest, now).IsZero() })
		w.r.m.mu.Unlock()
		if len(promised) > 0 {
			cands = promised
		}
	}
	rec := cands[w.rng.IntN(len(cands))]
	tag := w.ownTag(r)
	if !w.tagKnown(ctx, r, tag) {
		return "unknown"
	}
	now := time.Now()
	w.r.m.mu.Lock()
	until := w.r.m.promisedUntil(r, rec.digest, now)
	w.r.m.mu.Unlock()
	return result(w.putManifest(ctx, r, rec, tag, until, "the manifest is promised (stored, with its blobs and children)"))
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// opDeleteTag deletes one of the client's tags.
func (w *worker) opDeleteTag(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	tag := w.ownTag(r)
	base, err := w.base(ctx)
	if err != nil {
		return ""
	}
	expect, _, live := w.r.m.liveDigest(r, tag, time.Now().Add(5*time.Second))
	snap := w.r.m.beginTagOp(r, tag, time.Now())
	d := w.c.deleteManifest(ctx, base, r.name, tag)
	keys := []string{r.name, tkey(r.name, tag)}
	if expect != "" {
		keys = append(keys, mkey(r.name, expect))
	}
	w.record("delete-tag", d, d.String(), "", keys...)
	switch d.outcome() {
	case outOK:
		w.r.m.ackTagGone(r, snap)
	case outFailed:
		if d.status == http.StatusNotFound {
			if _, _, still := w.r.m.liveDigestSnap(r, snap, d.got); live && still {
				w.violate("live tag vanished", fmt.Sprintf("DELETE %s/manifests/%s answered %s, but the tag was acknowledged on %s and never ended", r.name, tag, d.String(), expect), keys...)
			}
			w.r.m.ackTagGone(r, snap)
		} else {
			w.r.m.undoTagOp(r, snap)
		}
	}
	return d.outcome().String()
}

// opRestoreTag restores one of the client's tags onto a digest it pointed
// at before, through the management API.
func (w *worker) opRestoreTag(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	tag := w.ownTag(r)
	past := w.r.m.pastDigests(r, tag)
	if len(past) == 0 {
		return ""
	}
	if !w.tagKnown(ctx, r, tag) {
		return "unknown"
	}
	d := past[w.rng.IntN(len(past))]
	if w.rng.IntN(3) != 0 {
		// Mostly lifetimes still inside the time machine.
		for _, x := range past {
			if w.r.m.restorable(r, tag, x, time.Now().Add(200*time.Millisecond)) {
				d = x
				break
			}
		}
	}
	return w.restoreAndVerify(ctx, r, tag, d, time.Time{}, "")
}

// restoreAndVerify restores tag onto d and checks the time machine's
// promise: a lifetime that ended less than its window ago — deleted, moved,
// expired, or its manifest deleted by digest — is restored, and the
// restored tag then pulls completely. mustBy, when set, is a further bound
// until which the restore must succeed (the end berth itself reported for
// a row the collector ended, plus the window; why says so). The caller
// holds r.lock and knows the tag's state.
func (w *worker) restoreAndVerify(ctx context.Context, r *repoModel, tag, d string, mustBy time.Time, why string) string {
	if cur, _, ok := w.r.m.liveDigest(r, tag, time.Now()); ok && cur == d {
		return ""
	}
	base, err := w.base(ctx)
	if err != nil {
		return ""
	}
	snap := w.r.m.beginTagOp(r, tag, time.Now())
	// Whether the server must restore is decided at the answer; compute
	// the promise without this operation's own tentative end.
	create, _ := w.r.m.beginCreate(r)
	x := w.c.restoreTag(ctx, base, r.name, tag, d)
	w.r.m.endCreate(r, create, x.outcome(), x.got)
	keys := []string{r.name, tkey(r.name, tag), mkey(r.name, d)}
	w.record("restore-tag", x, x.String(), "onto "+d, keys...)
	switch x.outcome() {
	case outOK:
		w.r.m.ackTagRestore(r, snap, d, span{x.sent, x.got}, create)
		if v := w.verifyTag(ctx, r, tag); v == "violation" {
			return v
		}
	case outFailed:
		w.r.m.undoTagOp(r, snap)
		if x.status == http.StatusNotFound && (x.code == "NAME_UNKNOWN" || x.code == "UNSUPPORTED") {
			return "unsupported"
		}
		if !mustBy.IsZero() && x.got.Add(w.r.cfg.Margin).Before(mustBy) {
			w.violate("restore refused inside the time machine",
				fmt.Sprintf("POST restore %s:%s onto %s answered %s at %s, but %s, until %s — %s", r.name, tag, d, x.String(), w.r.hist.rel(x.got), why, w.r.hist.rel(mustBy), w.r.explain(r, d)), keys...)
			return "violation"
		}
		if w.r.m.restorable(r, tag, d, x.got) {
			w.violate("restore refused inside the time machine",
				fmt.Sprintf("POST restore %s:%s onto %s answered %s at %s, but that lifetime is within the retention window (whatever ended it) — %s", r.name, tag, d, x.String(), w.r.hist.rel(x.got), w.r.explain(r, d)), keys...)
			return "violation"
		}
	}
	return x.outcome().String()
}

// opExpireTag sets a short expiry on one of the client's live tags, or
// clears it.
func (w *worker) opExpireTag(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	tag := w.ownTag(r)
	if _, _, ok := w.r.m.liveDigest(r, tag, time.Now().Add(time.Second)); !ok {
		return ""
	}
	base, err := w.base(ctx)
	if err != nil {
		return ""
	}
	clear := w.rng.IntN(4) == 0
	in := time.Duration(w.rng.IntN(5)) * 500 * time.Millisecond
	snap := w.r.m.beginTagOp(r, tag, time.Now())
	var x resp
	if clear {
		x = w.c.clearExpiry(ctx, base, r.name, tag)
	} else {
		x = w.c.setExpiry(ctx, base, r.name, tag, in)
	}
	keys := []string{r.name, tkey(r.name, tag)}
	detail := "in " + in.String()
	if clear {
		detail = "clear"
	}
	w.record("expire-tag", x, x.String(), detail, keys...)
	switch x.outcome() {
	case outOK:
		w.r.m.ackTagExpiry(r, snap, x.sent.Add(in), clear)
	case outFailed:
		if x.status == http.StatusNotFound && x.code == "TAG_UNKNOWN" {
			if _, _, still := w.r.m.liveDigestSnap(r, snap, x.got); still {
				w.violate("live tag vanished", fmt.Sprintf("expiry of %s:%s answered %s, but the tag was acknowledged live and never ended", r.name, tag, x.String()), keys...)
			}
			w.r.m.ackTagGone(r, snap)
		} else {
			w.r.m.undoTagOp(r, snap)
			if x.status == http.StatusNotFound {
				return "unsupported"
			}
		}
	}
	return x.outcome().String()
}

// opDeleteManifest deletes one of the client's manifests by digest.
func (w *worker) opDeleteManifest(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	w.r.m.mu.Lock()
	var cands []*manifestRec
	for _, rec := range r.manifests {
		if rec.owner == w.id && len(rec.puts) > 0 && rec.kind != kindRelease {
			cands = append(cands, rec)
		}
	}
	w.r.m.mu.Unlock()
	if len(cands) == 0 {
		return ""
	}
	slices.SortFunc(cands, func(a, b *manifestRec) int { return compareStrings(a.digest, b.digest) })
	rec := cands[w.rng.IntN(len(cands))]
	base, err := w.base(ctx)
	if err != nil {
		return ""
	}
	now := time.Now()
	w.r.m.mu.Lock()
	until := w.r.m.promisedUntil(r, rec.digest, now)
	w.r.m.mu.Unlock()
	u := w.r.m.beginKill(r, rec.digest, now)
	d := w.c.deleteManifest(ctx, base, r.name, rec.digest)
	keys := []string{r.name, mkey(r.name, rec.digest)}
	for _, s := range u.snaps {
		keys = append(keys, tkey(r.name, s.t.name))
	}
	w.record("delete-manifest", d, d.String(), rec.kind, keys...)
	switch d.outcome() {
	case outOK:
		w.r.m.ackKill(r, u)
	case outFailed:
		w.r.m.undoKill(r, u)
		if d.status == http.StatusNotFound && d.got.Add(w.r.cfg.Margin).Before(until) {
			w.violate("promised manifest vanished", fmt.Sprintf("DELETE %s/manifests/%s answered %s at %s, but the manifest is promised until %s", r.name, rec.digest, d.String(), w.r.hist.rel(d.got), w.r.hist.rel(until)), keys...)
		}
	}
	return d.outcome().String()
}

// opBlobsOnly uploads blobs and never pushes the manifest: the links live
// on the upload grace, and other clients may HEAD them and skip uploading.
func (w *worker) opBlobsOnly(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	for _, b := range w.pickLayers() {
		if _, ok := w.ensureBlob(ctx, r.name, b, false); !ok {
			return "unknown"
		}
	}
	return "ok"
}

// opAbandonUpload opens an upload session, maybe sends a chunk, and walks
// away: the session must be collected after the upload expiry.
func (w *worker) opAbandonUpload(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	base, err := w.base(ctx)
	if err != nil {
		return ""
	}
	loc, s := w.c.startUpload(ctx, base, r.name)
	w.record("abandon-upload", s, s.String(), loc, r.name)
	if loc == "" {
		return s.outcome().String()
	}
	switch {
	case w.r.cfg.Blob == "s3" && w.rng.IntN(6) == 0:
		// More than a part: the store leaves a multipart upload to abort.
		p := w.c.patchUpload(ctx, base, loc, 0, randomBytes(w.rng, s3PartSize+1+w.rng.IntN(64<<10)))
		w.record("abandon-upload", p, p.String(), "multipart chunk", r.name)
	case w.rng.IntN(2) == 0:
		p := w.c.patchUpload(ctx, base, loc, 0, randomBytes(w.rng, 1+w.rng.IntN(8<<10)))
		w.record("abandon-upload", p, p.String(), "chunk", r.name)
	}
	return "ok"
}

// opPurge purges a purgeable repository, retrying until berth says it is
// done (a purge is resumable), with the repository locked in the harness.
func (w *worker) opPurge(ctx context.Context) string {
	if len(w.r.purgeable) == 0 || !w.r.purgeAllowed() {
		return ""
	}
	r := w.r.m.repo(w.r.purgeable[w.rng.IntN(len(w.r.purgeable))])
	return w.r.purgeRepo(ctx, w.id, r)
}

// blobsConfirmed is the promise a manifest PUT relies on when each of its
// blobs was confirmed before it (gc.md: a 201 or a HEAD 200 keeps a blob a
// full grace).
const blobsConfirmed = "every blob was confirmed by then (upload/mount 201 or HEAD 200: a grace)"

// opHeadSkipEdge aims at scenario 2 of the failure list (HEAD-then-skip):
// it uploads an image's blobs, abandons the push until their upload grace
// is nearly over, then — like a second client that finds the blobs
// present — HEADs them, skips uploading, and pushes the manifest most of a
// grace later. gc.md promises a client that saw a blob alive a full grace
// to reference it.
func (w *worker) opHeadSkipEdge(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	layer := newBlob(randomBytes(w.rng, 64+w.rng.IntN(4<<10)), mediaLayer)
	b := buildImage(imageConfig(w.nonce(), nil), []blobData{layer}, nil)
	rec := w.r.m.addManifest(r, w.own(r, b.rec))
	first, ok := time.Time{}, true
	for _, x := range b.blobs {
		t, ok2 := w.ensureBlob(ctx, r.name, x, false)
		if !ok2 {
			ok = false
			break
		}
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	if !ok {
		return "unknown"
	}
	uploaded := first.Add(-w.r.cfg.Grace) // the earliest upload's send time
	sleepUntil(ctx, uploaded.Add(w.r.cfg.Grace-w.r.cfg.Grace/10))
	base, err := w.base(ctx)
	if err != nil {
		return ""
	}
	var seen time.Time
	for _, x := range b.blobs {
		h := w.c.headBlob(ctx, base, r.name, x.digest)
		w.record("head-blob", h, h.String(), "edge of the upload grace", r.name, bkey(x.digest), mkey(r.name, rec.digest))
		switch {
		case h.outcome() == outUnknown:
			return "unknown"
		case h.status != http.StatusOK:
			if h.got.Add(w.r.cfg.Margin).Before(first) {
				w.violate("uploaded blob gone inside its grace", fmt.Sprintf("HEAD %s/blobs/%s answered %s at %s; uploaded (201) at %s, protected until %s",
					r.name, x.digest, h.String(), w.r.hist.rel(h.got), w.r.hist.rel(uploaded), w.r.hist.rel(first)), r.name, bkey(x.digest))
				return "violation"
			}
			return "late"
		}
		if seen.IsZero() {
			seen = h.sent
		}
	}
	// The upload markers expire now; the client references the blobs it
	// saw most of the read protection (a grace) later.
	sleepUntil(ctx, seen.Add(w.r.cfg.readGrace()*8/10))
	return result(w.putManifest(ctx, r, rec, "", seen.Add(w.r.cfg.readGrace()), "its blobs answered HEAD 200 (client skipped the upload) by then plus the grace (gc.md scenario 29)"))
}

func sleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(t)):
	}
}
