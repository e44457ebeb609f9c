package torture

import (
	"regexp"
	"time"
)

// Rules in the model (docs/design/torture.md, "Rules: immutable tags,
// attachments, retention policies"). Besides its explicit end and its
// expiry, a tag row may be ended by the collector on its own:
//
//   - an attachment tag (sha256-<hex>.sig) when the collector deletes its
//     subject, which it may do once the subject's stored promise ends;
//   - a tag of a repository with a keep_newest N rule once N tags of the
//     repository are newer than it (their lifetimes started later).
//
// ruleEnd is a lower bound of the first of those moments, on the harness's
// clock; the row then protects its manifest for the window after it, like
// an expiry. Immutable tags need nothing here: the model trusts that berth
// never ends them, and the checks verify it.

// creation is one tag-creating request (a manifest PUT by tag or a
// restore) sent to a keep_newest repository: the row it may have created
// started at a server time in [sent, got]. got is zero while the request
// is unanswered and farFuture when its answer was lost; refused requests
// created nothing.
type creation struct {
	sent, got time.Time
	refused   bool
}

// rivalHorizon bounds how far back a request may still be unanswered: the
// harness's HTTP client gives up after 90 s.
const rivalHorizon = 100 * time.Second

// beginCreate registers a tag-creating request to r sent now; it returns
// the creation's index (-1 when r has no keep_newest rule) and its send
// time, taken under the model's lock so that creations are ordered by it.
func (m *model) beginCreate(r *repoModel) (int, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if r.keepN == 0 {
		return -1, now
	}
	r.creations = append(r.creations, creation{sent: now})
	return len(r.creations) - 1, now
}

// endCreate records the answer to creation i of r.
func (m *model) endCreate(r *repoModel, i int, o outcome, got time.Time) {
	if i < 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := &r.creations[i]
	switch o {
	case outOK:
		c.got = got
	case outFailed:
		c.refused = true
	default:
		c.got = farFuture
	}
}

// newLifetime makes the row a request sp created for tag on d (create: its
// creation in r, or -1). Callers hold m.mu.
func (m *model) newLifetime(r *repoModel, tag, d string, sp span, create int) *lifetime {
	l := &lifetime{tag: tag, digest: d, start: sp.got, sent: sp.sent, subject: attachmentSubject(tag), create: create}
	if create >= 0 {
		l.sent = r.creations[create].sent
		for j := create - 1; j >= 0; j-- {
			c := r.creations[j]
			if c.sent.Before(l.sent.Add(-rivalHorizon)) {
				break
			}
			if c.got.IsZero() || !c.got.Before(l.sent) {
				l.rivals = append(l.rivals, j)
			}
		}
	}
	return l
}

// ruleEnd is the earliest time the collector may end l on its own (zero:
// never). Callers hold m.mu.
func (m *model) ruleEnd(r *repoModel, l *lifetime, depth int) time.Time {
	return minTime(m.subjectEnd(r, l, depth), m.policyEnd(r, l))
}

// subjectEnd: an attachment row may end once its subject may be collected,
// that is at the end of the subject's stored promise that covered the
// row's whole creation; a row created while the subject was not promised
// may end at once. Zero for a tag that is no attachment.
func (m *model) subjectEnd(r *repoModel, l *lifetime, depth int) time.Time {
	if l.subject == "" {
		return time.Time{}
	}
	for _, s := range m.segments(r, l.subject, depth+1, stored) {
		if !s.a.After(l.sent) && s.b.After(l.start) {
			return s.b
		}
	}
	return l.sent
}

// policyEnd: under keep_newest N, a row may be pruned once N rows of the
// repository are newer. A row created by another request is newer only if
// that request was answered after l's was sent (or never), and it existed
// no earlier than its request's send time; so the N-th earliest send time
// among those requests bounds the prune from below. Zero while fewer than
// N such requests were sent.
func (m *model) policyEnd(r *repoModel, l *lifetime) time.Time {
	if r.keepN == 0 || l.create < 0 {
		return time.Time{}
	}
	n := 0
	for k := len(l.rivals) - 1; k >= 0; k-- { // rivals are newest first
		if c := r.creations[l.rivals[k]]; !c.refused {
			if n++; n == r.keepN {
				return c.sent
			}
		}
	}
	for j := l.create + 1; j < len(r.creations); j++ {
		if c := r.creations[j]; !c.refused {
			if n++; n == r.keepN {
				return c.sent
			}
		}
	}
	return time.Time{}
}

// attachmentTagRE is cosign's signature tag; berth also knows .att, .sbom
// and the referrers tag schema, which the harness does not push.
var attachmentTagRE = regexp.MustCompile(`^sha256-([0-9a-f]{64})\.sig$`)

// attachmentSubject returns the digest an attachment tag names, or "".
func attachmentSubject(tag string) string {
	if m := attachmentTagRE.FindStringSubmatch(tag); m != nil {
		return "sha256:" + m[1]
	}
	return ""
}

// sigTag is the cosign signature tag of subject digest d.
func sigTag(d string) string { return "sha256-" + d[len("sha256:"):] + ".sig" }

// ackImmutable records the acknowledged PUT sp of an immutable tag onto d.
// The first one starts its only row, which nothing may end; a later one
// (a re-PUT of the same digest) changes nothing.
func (m *model) ackImmutable(r *repoModel, tag, d string, sp span) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tag(r, tag)
	if t.live != nil {
		return
	}
	l := m.newLifetime(r, tag, d, sp, -1)
	t.lifetimes = append(t.lifetimes, l)
	r.byDigest[d] = append(r.byDigest[d], l)
	t.live, t.known = l, true
}

// pendingImmutable marks an immutable tag whose first PUT got no answer:
// it may exist (on the one digest ever sent for it) or not.
func (m *model) pendingImmutable(r *repoModel, tag string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.tag(r, tag); t.live == nil {
		t.known = false
	}
}
