package torture

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// opVerify pulls something berth promised: one of the client's live tags,
// or any promised manifest of a repository (tagged, in the time machine,
// inside its grace, a child or a referrer), completely.
func (w *worker) opVerify(ctx context.Context) string {
	r := w.anyRepo()
	r.lock.RLock()
	defer r.lock.RUnlock()
	if w.rng.IntN(2) == 0 {
		tag := w.ownTag(r)
		if _, _, ok := w.r.m.liveDigest(r, tag, time.Now().Add(3*time.Second)); ok {
			return w.verifyTag(ctx, r, tag)
		}
	}
	now := time.Now()
	w.r.m.mu.Lock()
	var cands []string
	for d := range r.manifests {
		if !w.r.m.promisedUntil(r, d, now).IsZero() {
			cands = append(cands, d)
		}
	}
	w.r.m.mu.Unlock()
	if len(cands) == 0 {
		return ""
	}
	slices.Sort(cands)
	return w.verifyManifest(ctx, r, cands[w.rng.IntN(len(cands))], 0)
}

// verifyTag pulls tag and checks it still points where the client left it.
func (w *worker) verifyTag(ctx context.Context, r *repoModel, tag string) string {
	want, ver, ok := w.r.m.liveDigest(r, tag, time.Now().Add(3*time.Second))
	if !ok {
		return ""
	}
	base, err := w.base(ctx)
	if err != nil {
		return ""
	}
	g := w.c.getManifest(ctx, base, r.name, tag)
	keys := []string{r.name, tkey(r.name, tag), mkey(r.name, want)}
	w.record("get-tag", g, g.String(), "", keys...)
	if g.outcome() == outUnknown {
		return "unknown"
	}
	// The tag must not have been touched meanwhile (only its owner, this
	// client, touches it) and must not have been able to expire.
	if w.r.m.tagVersion(r, tag) != ver {
		return ""
	}
	if _, _, still := w.r.m.liveDigest(r, tag, g.got); !still {
		return ""
	}
	switch {
	case g.status == http.StatusNotFound:
		w.violate("live tag does not pull", fmt.Sprintf("GET %s/manifests/%s answered %s; the tag was acknowledged on %s and never ended", r.name, tag, g.String(), want), keys...)
		return "violation"
	case g.status != http.StatusOK:
		return g.outcome().String()
	}
	if got := sha256Digest(g.body); got != want {
		w.violate("live tag points elsewhere", fmt.Sprintf("GET %s/manifests/%s returned %s, the client left it on %s", r.name, tag, got, want), keys...)
		return "violation"
	}
	return w.verifyManifest(ctx, r, want, 0)
}

// verifyManifest pulls manifest d of r by digest with its blobs, its
// children and its referrers, and checks every promise that covers the
// pull. depth bounds the recursion.
func (w *worker) verifyManifest(ctx context.Context, r *repoModel, d string, depth int) string {
	base, err := w.base(ctx)
	if err != nil {
		return ""
	}
	m := w.r.m
	mk := mkey(r.name, d)
	g := w.c.getManifest(ctx, base, r.name, d)
	w.record("get-manifest", g, g.String(), "", r.name, mk)
	promised := func(from, to time.Time) bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.promisedOver(r, d, from, to)
	}
	switch {
	case g.outcome() == outUnknown:
		return "unknown"
	case g.status == http.StatusNotFound:
		if promised(g.sent, g.got) {
			w.violate("promised manifest does not pull", fmt.Sprintf("GET %s/manifests/%s answered %s at %s: %s", r.name, d, g.String(), w.r.hist.rel(g.got), w.r.explain(r, d)), r.name, mk)
			return "violation"
		}
		return "gone"
	case g.status != http.StatusOK:
		return g.outcome().String()
	}
	if got := sha256Digest(g.body); got != d {
		w.violate("manifest bytes do not match their digest", fmt.Sprintf("GET %s/manifests/%s returned bytes hashing to %s", r.name, d, got), r.name, mk)
		return "violation"
	}
	m.mu.Lock()
	rec := r.manifests[d]
	m.mu.Unlock()
	if rec != nil && !bytes.Equal(rec.body, g.body) {
		w.violate("manifest body changed", fmt.Sprintf("GET %s/manifests/%s differs from what was pushed", r.name, d), r.name, mk)
	}
	p, err := parseManifest(g.body)
	if err != nil {
		w.violate("stored manifest does not parse", err.Error(), r.name, mk)
		return "violation"
	}
	res := "ok"
	// Blobs: a manifest seen stored keeps its links for at least the grace
	// (links of a deleted manifest are reviewed after the grace), and as
	// long as the manifest itself is promised.
	for _, b := range p.blobs {
		bk := bkey(b.Digest)
		x := w.c.getBlob(ctx, base, r.name, b.Digest)
		if x.outcome() == outUnknown {
			return "unknown"
		}
		if x.status == http.StatusOK {
			if got := sha256Digest(x.body); got != b.Digest || int64(len(x.body)) != b.Size {
				w.record("get-blob", x, x.String(), "CORRUPT", r.name, mk, bk)
				w.violate("blob bytes do not match their digest", fmt.Sprintf("GET %s/blobs/%s returned %d bytes hashing to %s", r.name, b.Digest, len(x.body), got), r.name, mk, bk)
				res = "violation"
			}
			continue
		}
		w.record("get-blob", x, x.String(), "", r.name, mk, bk)
		if x.got.Add(w.r.cfg.Margin).Before(g.sent.Add(w.r.cfg.Grace)) || promised(g.sent, x.got) {
			w.violate("blob of a stored manifest does not pull", fmt.Sprintf("GET %s/blobs/%s answered %s at %s; manifest %s was served at %s (its links live at least a grace after that) — %s",
				r.name, b.Digest, x.String(), w.r.hist.rel(x.got), d, w.r.hist.rel(g.sent), w.r.explain(r, d)), r.name, mk, bk)
			res = "violation"
		}
	}
	if depth > 1 {
		return res
	}
	for _, c := range p.children {
		if v := w.verifyManifest(ctx, r, c.Digest, depth+1); v == "violation" {
			res = v
		}
	}
	// Referrers: every promised referrer of d is listed, and each listed
	// one pulls.
	l := w.c.referrers(ctx, base, r.name, d)
	if l.status != http.StatusOK {
		return res
	}
	var idx manifestJSON
	if err := json.Unmarshal(l.body, &idx); err != nil {
		w.violate("referrers list does not parse", err.Error(), r.name, mk)
		return "violation"
	}
	listed := map[string]bool{}
	for _, x := range idx.Manifests {
		listed[x.Digest] = true
	}
	m.mu.Lock()
	var missing []string
	for _, rf := range r.referrers[d] {
		if !listed[rf] && m.promisedOver(r, rf, l.sent, l.got) {
			missing = append(missing, rf)
		}
	}
	m.mu.Unlock()
	for _, rf := range missing {
		w.record("referrers", l, l.String(), "missing "+rf, r.name, mk, mkey(r.name, rf))
		w.violate("promised referrer not listed", fmt.Sprintf("GET %s/referrers/%s does not list %s — %s", r.name, d, rf, w.r.explain(r, rf)), r.name, mk, mkey(r.name, rf))
		res = "violation"
	}
	for i, x := range idx.Manifests {
		if i >= 3 {
			break
		}
		if v := w.verifyManifest(ctx, r, x.Digest, depth+1); v == "violation" {
			res = v
		}
	}
	return res
}

// explain says why the model promised manifest d: its promised stretch
// now and its history in the model.
func (rn *runner) explain(r *repoModel, d string) string {
	m := rn.m
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := r.manifests[d]
	if rec == nil {
		return "not in the model"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s, owner c%d;", rec.kind, d, rec.owner)
	for _, p := range rec.puts {
		fmt.Fprintf(&b, " PUT acked %s..%s;", rn.hist.rel(p.sent), rn.hist.rel(p.got))
	}
	for _, l := range r.byDigest[d] {
		end := "open"
		if !l.end.IsZero() {
			end = rn.hist.rel(l.end)
		}
		exp := ""
		if !l.expLo.IsZero() {
			exp = " expires>=" + rn.hist.rel(l.expLo)
		}
		fmt.Fprintf(&b, " tag %s from %s end>=%s%s voided=%v;", l.tag, rn.hist.rel(l.start), end, exp, l.voided)
	}
	for _, p := range r.parents[d] {
		fmt.Fprintf(&b, " child of %s;", p)
	}
	if rec.subject != "" {
		fmt.Fprintf(&b, " referrer of %s;", rec.subject)
	}
	for _, k := range rec.kills {
		fmt.Fprintf(&b, " deleted by digest at %s;", rn.hist.rel(k))
	}
	for _, k := range rec.purges {
		fmt.Fprintf(&b, " purged at %s;", rn.hist.rel(k))
	}
	for _, s := range m.segments(r, d, 0, served) {
		fmt.Fprintf(&b, " served %s..%s;", rn.hist.rel(s.a), rn.hist.rel(s.b))
	}
	for _, s := range m.segments(r, d, 0, stored) {
		fmt.Fprintf(&b, " stored %s..%s;", rn.hist.rel(s.a), rn.hist.rel(s.b))
	}
	return b.String()
}
