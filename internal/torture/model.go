package torture

import (
	"slices"
	"sync"
	"time"
)

// The model holds what berth promised the clients, and nothing more.
//
// Every promise is an interval of time during which a manifest must be
// stored (and so pull completely). Intervals come from acknowledged
// operations only, with times taken on the harness's clock so that they
// bound the server's: the server stamps a write somewhere between the
// moment the request was sent and the moment its answer arrived, so
//
//   - a protection that starts at the server's stamp starts no later than
//     the answer: a manifest PUT answered 201 at time r was stored at some
//     server time in [send, r], and a stored manifest is never lost while it
//     stays protected, so the PUT's send time is a sound "anchor" once the
//     answer came back;
//   - a protection that ends some window after the server's stamp ends no
//     earlier than that window after the send: a tag deleted by a request
//     sent at s stays recoverable until at least s+retention.
//
// An operation whose answer was lost (the process was killed, the
// connection broke, a 5xx) is "unknown": it creates no anchor, but it may
// have ended things, so it ends them (at its send time) in the model.
//
// A manifest M is promised at time t when the union of its protection
// intervals covers a stretch of time that contains t and starts with an
// anchor of M: M was stored at that anchor and has been protected ever
// since. Protections are: the untagged grace after each acknowledged PUT
// ([send, send+grace)), each tag lifetime pointing at M ([start,
// end+retention)), the promise of each index listing M (the index row
// keeps its children), and, for a referrer, the promise of its subject
// (not an anchor: the subject may predate the referrer). A purge "kills" M
// at its send time: every interval started before the kill ends there.
//
// A DELETE by digest withdraws M: M answers 404 from then on, but the time
// machine keeps it stored while a tag row on it is inside its window
// (docs/design/gc.md, "The time machine"). So the model has two promises:
// M is *served* (GET answers it) over the segments where no DELETE by
// digest cut the intervals, and M is *stored* (a restore of a row on it
// must succeed, and then M pulls completely) over the segments where the
// DELETE cut only the protections it ends — the grace of M's PUTs and its
// subject's — and left its tag rows and parents.
type model struct {
	mu     sync.Mutex
	grace  time.Duration
	ret    time.Duration
	margin time.Duration
	repos  map[string]*repoModel
}

func newModel(grace, retention, margin time.Duration) *model {
	return &model{grace: grace, ret: retention, margin: margin, repos: map[string]*repoModel{}}
}

// repoModel is one repository. lock serialises purges (writer) with every
// other operation on the repository (readers) in the harness, so that a
// purge never races the model's view of a client's sequence of requests.
type repoModel struct {
	name      string
	lock      sync.RWMutex
	tags      map[string]*tagState
	manifests map[string]*manifestRec
	parents   map[string][]string // child digest -> index digests
	referrers map[string][]string // subject digest -> referrer digests
	byDigest  map[string][]*lifetime
	// keepN is the N of the repository's keep_newest rule (0: none), and
	// creations every tag-creating request sent to it (model_rules.go).
	keepN     int
	creations []creation
}

func (m *model) repo(name string) *repoModel {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.repoLocked(name)
}

func (m *model) repoLocked(name string) *repoModel {
	r := m.repos[name]
	if r == nil {
		r = &repoModel{name: name, tags: map[string]*tagState{}, manifests: map[string]*manifestRec{},
			parents: map[string][]string{}, referrers: map[string][]string{}, byDigest: map[string][]*lifetime{}}
		m.repos[name] = r
	}
	return r
}

// lifetime is one tag row as the model knows it.
type lifetime struct {
	tag    string
	digest string
	start  time.Time // anchor: the digest was stored then
	// end is a lower bound of the server's end of the row; zero while the
	// row is (as far as the model knows) open.
	end time.Time
	// expLo is a lower bound of the row's expiry; zero without expiry.
	expLo time.Time
	// voided: the repository was purged; the row cannot be restored (a
	// DELETE by digest of the manifest does not void it).
	voided bool
	// sent is when the request that created the row was sent: the row was
	// created at a server time in [sent, start].
	sent time.Time
	// subject is the digest an attachment tag (sha256-<hex>.sig) names:
	// the collector may end the row once that manifest's promise ends.
	subject string
	// create is the row's creation in its repository's list (a keep_newest
	// repository), -1 elsewhere; rivals are the earlier creations that
	// were still unanswered when it was sent (model_rules.go).
	create int
	rivals []int
}

// protectedUntil is the end of the row's protection of its manifest:
// retention after the earliest time the row may have ended — its end, its
// expiry, or a rule's end (its subject's promise ended, a keep_newest rule
// could prune it). Callers hold m.mu.
func (m *model) protectedUntil(r *repoModel, l *lifetime, depth int) time.Time {
	e := minTime(l.end, l.expLo, m.ruleEnd(r, l, depth))
	if e.IsZero() {
		return farFuture
	}
	return e.Add(m.ret)
}

// minTime is the earliest of the non-zero times, or zero.
func minTime(ts ...time.Time) time.Time {
	var e time.Time
	for _, t := range ts {
		if !t.IsZero() && (e.IsZero() || t.Before(e)) {
			e = t
		}
	}
	return e
}

var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// tagState is one tag. Tags belong to one client (their names say which),
// which runs its operations one at a time, so at most one operation on a
// tag is in flight; version changes when one starts, so a check that read
// the tag before and after its request knows whether it raced one.
type tagState struct {
	name    string
	version int
	// known: the model knows whether the tag is live and on what. After an
	// unknown operation it does not, until an acknowledged DELETE.
	known     bool
	live      *lifetime // nil: absent (when known)
	lifetimes []*lifetime
}

// manifestRec is one manifest of a repository.
type manifestRec struct {
	repo      string
	digest    string
	mediaType string
	body      []byte
	blobs     []blobRef
	children  []string
	subject   string
	owner     int // client, or -1 for the shared pool
	kind      string
	expiry    time.Duration // berth.expires-after label: every tag PUT onto it expires
	puts      []span        // acknowledged PUTs
	kills     []time.Time   // send times of DELETEs by digest (known or unknown)
	purges    []time.Time   // send times of purges of its repository
}

// span is one request: sent and answered.
type span struct{ sent, got time.Time }

type blobRef struct {
	digest string
	size   int64
}

type interval struct {
	a, b   time.Time
	anchor bool
	// survives: a DELETE by digest does not end this protection of what
	// is stored (a tag row, a parent), only of what is served.
	survives bool
}

// promise says which promise segments computes.
type promise int

const (
	served promise = iota // GET of the manifest answers it
	stored                // the manifest is stored: a restore brings it back
)

// segments returns the promised stretches of manifest d of r: each merged
// run of protection intervals, from its first anchor on. Callers hold m.mu.
func (m *model) segments(r *repoModel, d string, depth int, p promise) []interval {
	rec := r.manifests[d]
	if rec == nil || depth > 4 {
		return nil
	}
	var iv []interval
	for _, sp := range rec.puts {
		// Stored once answered; pushed_at (>= sent) protects for the grace.
		iv = append(iv, interval{a: sp.got, b: sp.sent.Add(m.grace), anchor: true})
	}
	for _, l := range r.byDigest[d] {
		if l.voided && l.end.IsZero() {
			continue
		}
		iv = append(iv, interval{a: l.start, b: m.protectedUntil(r, l, depth), anchor: true, survives: true})
	}
	for _, pd := range r.parents[d] {
		for _, s := range m.segments(r, pd, depth+1, p) {
			iv = append(iv, interval{a: s.a, b: s.b, anchor: true, survives: true})
		}
	}
	if rec.subject != "" {
		for _, s := range m.segments(r, rec.subject, depth+1, p) {
			iv = append(iv, interval{a: s.a, b: s.b})
		}
	}
	// Purges end every interval that started before them; so do DELETEs by
	// digest, except, for what is stored, the protections that survive.
	cut := func(i int, at time.Time) {
		if !at.Before(iv[i].a) && at.Before(iv[i].b) {
			iv[i].b = at
		}
	}
	for i := range iv {
		for _, k := range rec.purges {
			cut(i, k)
		}
		if p == stored && iv[i].survives {
			continue
		}
		for _, k := range rec.kills {
			cut(i, k)
		}
	}
	return promisedSegments(iv)
}

// promisedSegments merges intervals and keeps, of each merged run, the part
// from its earliest anchor on.
func promisedSegments(iv []interval) []interval {
	iv = slices.DeleteFunc(iv, func(x interval) bool { return !x.a.Before(x.b) })
	slices.SortFunc(iv, func(x, y interval) int { return x.a.Compare(y.a) })
	var out []interval
	for i := 0; i < len(iv); {
		a, b := iv[i].a, iv[i].b
		var anchor time.Time
		j := i
		for ; j < len(iv) && !iv[j].a.After(b); j++ {
			if iv[j].b.After(b) {
				b = iv[j].b
			}
			if iv[j].anchor && anchor.IsZero() {
				anchor = iv[j].a
			}
		}
		_ = a
		if !anchor.IsZero() {
			out = append(out, interval{a: anchor, b: b, anchor: true})
		}
		i = j
	}
	return out
}

// promisedOver reports whether manifest d of r is promised over the whole
// of [from, to] (a check that sent its request at from and got its answer
// at to), with the model's margin on both ends.
func (m *model) promisedOver(r *repoModel, d string, from, to time.Time) bool {
	return m.promiseOver(r, d, from, to, served)
}

// promiseOver is promisedOver for either promise.
func (m *model) promiseOver(r *repoModel, d string, from, to time.Time, p promise) bool {
	for _, s := range m.segments(r, d, 0, p) {
		if !s.a.After(from.Add(-m.margin)) && s.b.After(to.Add(m.margin)) {
			return true
		}
	}
	return false
}

// addManifest registers the content of a manifest before it is pushed.
func (m *model) addManifest(r *repoModel, rec *manifestRec) *manifestRec {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := r.manifests[rec.digest]; old != nil {
		return old
	}
	r.manifests[rec.digest] = rec
	return rec
}

// ackPut records an acknowledged PUT of manifest d.
func (m *model) ackPut(r *repoModel, d string, sp span) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := r.manifests[d]
	rec.puts = append(rec.puts, sp)
	for _, c := range rec.children {
		if !slices.Contains(r.parents[c], d) {
			r.parents[c] = append(r.parents[c], d)
		}
	}
	if rec.subject != "" && !slices.Contains(r.referrers[rec.subject], d) {
		r.referrers[rec.subject] = append(r.referrers[rec.subject], d)
	}
}

func (m *model) tag(r *repoModel, name string) *tagState {
	t := r.tags[name]
	if t == nil {
		t = &tagState{name: name, known: true}
		r.tags[name] = t
	}
	return t
}

// tagSnapshot is what undo needs to put a tag back after an operation that
// certainly did not apply.
type tagSnapshot struct {
	t       *tagState
	known   bool
	live    *lifetime
	liveEnd time.Time
	liveExp time.Time
}

// beginTagOp marks an operation on tag sent at s: the live row may end at
// s from now on.
func (m *model) beginTagOp(r *repoModel, name string, s time.Time) tagSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.beginTagOpLocked(r, name, s)
}

func (m *model) beginTagOpLocked(r *repoModel, name string, s time.Time) tagSnapshot {
	t := m.tag(r, name)
	snap := tagSnapshot{t: t, known: t.known, live: t.live}
	if t.live != nil {
		snap.liveEnd, snap.liveExp = t.live.end, t.live.expLo
		if t.live.end.IsZero() {
			t.live.end = s
		}
	}
	t.version++
	t.known = false
	return snap
}

// undoTagOp puts the tag back: the operation certainly did not apply.
func (m *model) undoTagOp(r *repoModel, snap tagSnapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := snap.t
	t.known, t.live = snap.known, snap.live
	if t.live != nil {
		t.live.end, t.live.expLo = snap.liveEnd, snap.liveExp
	}
}

// ackTagPut: the tag now points at d, by the request sp. A live row
// already on d is kept by the server (no new lifetime); if that row may
// have expired meanwhile the model no longer knows which row is live.
func (m *model) ackTagPut(r *repoModel, snap tagSnapshot, d string, sp span, expiry time.Duration, create int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := snap.t
	if snap.known && snap.live != nil && snap.live.digest == d {
		t.live.end, t.live.expLo = snap.liveEnd, snap.liveExp
		t.known = snap.liveExp.IsZero() && m.ruleEnd(r, t.live, 0).IsZero()
		return
	}
	l := m.newLifetime(r, t.name, d, sp, create)
	if expiry > 0 {
		l.expLo = sp.sent.Add(expiry)
	}
	t.lifetimes = append(t.lifetimes, l)
	r.byDigest[d] = append(r.byDigest[d], l)
	t.live = l
	t.known = snap.known
}

// ackTagRestore: the tag was restored onto d by the request sp (the
// manifest existed when the server restored it, at or before sp.got).
func (m *model) ackTagRestore(r *repoModel, snap tagSnapshot, d string, sp span, create int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := snap.t
	if snap.known && snap.live != nil && snap.live.digest == d {
		t.live.end, t.live.expLo = snap.liveEnd, snap.liveExp
		t.known = snap.liveExp.IsZero() && m.ruleEnd(r, t.live, 0).IsZero()
		return
	}
	l := m.newLifetime(r, t.name, d, sp, create)
	t.lifetimes = append(t.lifetimes, l)
	r.byDigest[d] = append(r.byDigest[d], l)
	t.live = l
	t.known = snap.known
}

// ackTagGone: the tag has no live row any more (deleted, or found absent).
func (m *model) ackTagGone(r *repoModel, snap tagSnapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap.t.live = nil
	snap.t.known = true
}

// ackTagExpiry: the live row's expiry was set to at least lo (zero: cleared).
func (m *model) ackTagExpiry(r *repoModel, snap tagSnapshot, lo time.Time, cleared bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := snap.t
	t.known = snap.known
	if t.live == nil {
		return
	}
	t.live.end = snap.liveEnd
	if cleared {
		t.live.expLo = time.Time{}
		return
	}
	if snap.liveExp.IsZero() || lo.Before(snap.liveExp) {
		t.live.expLo = lo
	} else {
		t.live.expLo = snap.liveExp
	}
}

// liveDigest returns what the tag certainly points at over [now, until):
// ok is false when the model does not know or the row may expire before
// until.
func (m *model) liveDigest(r *repoModel, name string, until time.Time) (d string, version int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := r.tags[name]
	if t == nil || !t.known || t.live == nil || !t.live.end.IsZero() {
		return "", 0, false
	}
	if !t.live.expLo.IsZero() && !until.Add(m.margin).Before(t.live.expLo) {
		return "", 0, false
	}
	if re := m.ruleEnd(r, t.live, 0); !re.IsZero() && !until.Add(m.margin).Before(re) {
		return "", 0, false
	}
	return t.live.digest, t.version, true
}

func (m *model) tagVersion(r *repoModel, name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := r.tags[name]; t != nil {
		return t.version
	}
	return 0
}

// kill records a DELETE by digest (or a purge) of d sent at s; the live
// tags on d (owned by the caller) end with it. It returns what undo needs.
type killUndo struct {
	rec   *manifestRec
	n     int
	snaps []tagSnapshot
}

func (m *model) beginKill(r *repoModel, d string, s time.Time) killUndo {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := r.manifests[d]
	rec.kills = append(rec.kills, s)
	u := killUndo{rec: rec, n: len(rec.kills) - 1}
	for _, t := range r.tags {
		if t.live != nil && t.live.digest == d && t.live.end.IsZero() {
			u.snaps = append(u.snaps, m.beginTagOpLocked(r, t.name, s))
		}
	}
	return u
}

func (m *model) undoKill(r *repoModel, u killUndo) {
	m.mu.Lock()
	u.rec.kills = slices.Delete(u.rec.kills, u.n, u.n+1)
	m.mu.Unlock()
	for _, s := range u.snaps {
		m.undoTagOp(r, s)
	}
}

// ackKill: the manifest answers 404 and its tags ended; the rows on it stay
// restorable for the window (the time machine keeps the manifest stored).
func (m *model) ackKill(r *repoModel, u killUndo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range u.snaps {
		s.t.live = nil
		s.t.known = true
	}
}

// beginPurge kills every manifest and ends every tag of r at s.
func (m *model) beginPurge(r *repoModel, s time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rec := range r.manifests {
		rec.purges = append(rec.purges, s)
	}
	for _, t := range r.tags {
		t.version++
		if t.live != nil && t.live.end.IsZero() {
			t.live.end = s
		}
		t.known = false
		for _, l := range t.lifetimes {
			l.voided = true
		}
	}
}

// ackPurge: the repository is gone with its tag history.
func (m *model) ackPurge(r *repoModel) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range r.tags {
		t.live = nil
		t.known = true
	}
}

// restorable returns the newest ended row of tag on d and whether the
// server must restore it for a request answered at resp.
func (m *model) restorable(r *repoModel, name, d string, resp time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := r.tags[name]
	if t == nil {
		return false
	}
	var newest *lifetime
	for _, l := range t.lifetimes {
		if l.digest == d && l != t.live {
			newest = l
		}
	}
	if newest == nil || newest.voided {
		return false
	}
	return resp.Add(m.margin).Before(m.protectedUntil(r, newest, 0)) && m.promiseOver(r, d, resp, resp, stored)
}

// pastDigests lists digests tag pointed at in ended, unvoided rows.
func (m *model) pastDigests(r *repoModel, name string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := r.tags[name]
	if t == nil {
		return nil
	}
	var out []string
	for _, l := range t.lifetimes {
		if l != t.live && !l.voided && !slices.Contains(out, l.digest) {
			out = append(out, l.digest)
		}
	}
	return out
}

// promisedUntil returns the end of the promised stretch of d that contains
// t, or the zero time. Callers hold m.mu.
func (m *model) promisedUntil(r *repoModel, d string, t time.Time) time.Time {
	for _, s := range m.segments(r, d, 0, served) {
		if !s.a.After(t) && s.b.After(t) {
			return s.b
		}
	}
	return time.Time{}
}

// liveDigestSnap reports what the tag certainly pointed at, as the model
// knew it before an operation (snap), if it was certainly live until t.
func (m *model) liveDigestSnap(r *repoModel, snap tagSnapshot, t time.Time) (string, int, bool) {
	if !snap.known || snap.live == nil || !snap.liveEnd.IsZero() {
		return "", 0, false
	}
	if !snap.liveExp.IsZero() && !t.Add(m.margin).Before(snap.liveExp) {
		return "", 0, false
	}
	m.mu.Lock()
	re := m.ruleEnd(r, snap.live, 0)
	m.mu.Unlock()
	if !re.IsZero() && !t.Add(m.margin).Before(re) {
		return "", 0, false
	}
	return snap.live.digest, 0, true
}
