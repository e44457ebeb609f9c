package torture

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Checks of the rows berth's rules ended, read from its tag history, and of
// the usage counters (docs/design/torture.md, "Rules" and "Usage").

// noteRelease remembers the one digest an immutable tag was pushed with.
func (rn *runner) noteRelease(tag, d string) {
	rn.relMu.Lock()
	defer rn.relMu.Unlock()
	rn.rel[tag] = d
}

// checkRuleEnds checks, once each, the rows of r's history h (listed by
// the request h) that the collector ended on its own, and returns how many
// violations it found:
//
//   - subject_collected: the tag is an attachment tag, and the model did
//     not promise its subject at the end (the collector deletes only what
//     nothing keeps);
//   - policy: r has a keep_newest N rule; the row was pruned no earlier
//     than the N-th tag-creating request sent after it (model), and, when
//     the listing is early enough to hold every row the evaluation saw,
//     there was a moment before the end when the row and N newer rows
//     were live together (history).
func (rn *runner) checkRuleEnds(r *repoModel, rows []historyRow, h resp) int {
	n := 0
	bad := func(what, detail string, keys ...string) {
		n++
		rn.hist.violate(what, detail, keys...)
		rn.logf("VIOLATION: %s: %s", what, detail)
	}
	for _, x := range rows {
		if x.Live || x.End == nil || (x.EndCause != causePolicy && x.EndCause != causeSubjectCollected) {
			continue
		}
		id := fmt.Sprintf("%s:%s@%s/%d", r.name, x.Tag, x.Digest, x.Start.UnixNano())
		rn.relMu.Lock()
		seen := rn.checked[id]
		rn.checked[id] = true
		rn.relMu.Unlock()
		if seen {
			continue
		}
		end := *x.End
		keys := []string{r.name, tkey(r.name, x.Tag), mkey(r.name, x.Digest)}
		if x.EndCause == causeSubjectCollected {
			s := attachmentSubject(x.Tag)
			if s == "" {
				bad("a tag that is no attachment ended as one", fmt.Sprintf("%s:%s ended at %s with cause %s", r.name, x.Tag, rn.hist.rel(end), x.EndCause), keys...)
				continue
			}
			rn.m.mu.Lock()
			promised := rn.m.promiseOver(r, s, end, end, stored)
			rn.m.mu.Unlock()
			if promised {
				bad("attachment ended while its subject was promised", fmt.Sprintf("%s:%s ended at %s with cause %s, but its subject is promised then — %s",
					r.name, x.Tag, rn.hist.rel(end), x.EndCause, rn.explain(r, s)), append(keys, mkey(r.name, s))...)
			}
			continue
		}
		rn.m.mu.Lock()
		keepN := r.keepN
		early := rn.prunedEarly(r, x)
		rn.m.mu.Unlock()
		if keepN == 0 {
			bad("tag pruned without a rule", fmt.Sprintf("%s:%s ended at %s with cause policy; no rule applies to %s", r.name, x.Tag, rn.hist.rel(end), r.name), keys...)
			continue
		}
		if early != "" {
			bad("tag pruned before its rule allowed", fmt.Sprintf("%s:%s (%s, started %s) ended at %s with cause policy, but %s",
				r.name, x.Tag, x.Digest, rn.hist.rel(x.Start), rn.hist.rel(end), early), keys...)
			continue
		}
		// A row live when the evaluation read the repository stays listed
		// for the window after its end; an evaluation ends what it read
		// well within half a window (its transactions are bounded), so a
		// listing before end + window/2 holds every row it saw.
		if h.got.Before(end.Add(rn.cfg.Retention / 2)) {
			if most := newerLive(rows, x); most < keepN {
				bad("tag pruned with fewer newer tags than its rule keeps", fmt.Sprintf("%s:%s (%s, started %s) ended at %s with cause policy; keep_newest %d, but at most %d newer tags were live with it before that (history listed at %s)",
					r.name, x.Tag, x.Digest, rn.hist.rel(x.Start), rn.hist.rel(end), keepN, most, rn.hist.rel(h.sent)), keys...)
			}
		}
	}
	return n
}

// prunedEarly returns why the pruning of row x of r came before the
// model's lower bound (policyEnd), or "" when it did not or the model
// does not know the row (its creation's answer was lost). Callers hold
// m.mu.
func (rn *runner) prunedEarly(r *repoModel, x historyRow) string {
	t := r.tags[x.Tag]
	if t == nil {
		return ""
	}
	m := rn.m
	why := ""
	for _, l := range t.lifetimes {
		if l.digest != x.Digest || x.Start.Before(l.sent.Add(-m.margin)) || x.Start.After(l.start.Add(m.margin)) {
			continue
		}
		pe := m.policyEnd(r, l)
		if !pe.IsZero() && !x.End.Add(m.margin).Before(pe) {
			return "" // one matching row could be pruned then
		}
		if pe.IsZero() {
			why = fmt.Sprintf("fewer than %d tag-creating requests to %s were sent after it", r.keepN, r.name)
		} else {
			why = fmt.Sprintf("the %d-th tag-creating request to %s after it was sent only at %s", r.keepN, r.name, rn.hist.rel(pe))
		}
	}
	return why
}

// newerLive is the largest number of rows of other tags, started no
// earlier than x, live together with x at some moment before x's end
// (ties of start counted as newer: berth breaks them by row id).
func newerLive(rows []historyRow, x historyRow) int {
	var newer []historyRow
	for _, y := range rows {
		if y.Tag != x.Tag && !y.Start.Before(x.Start) && !y.Start.After(*x.End) {
			newer = append(newer, y)
		}
	}
	most := 0
	for _, at := range newer {
		n := 0
		for _, y := range newer {
			if !y.Start.After(at.Start) && (y.End == nil || !y.End.Before(at.Start)) {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// finalRuleChecks runs, right after writes stop, the history checks of
// every repository (checkRuleEnds) and of every immutable tag: exactly one
// lifetime, live, on the digest it was first pushed with (at most one, on
// that digest, when no PUT of it was acknowledged).
func (rn *runner) finalRuleChecks(ctx context.Context, w *worker) {
	for _, name := range append(slices.Clone(rn.repos), rn.purgeable...) {
		r := rn.m.repo(name)
		base, err := w.base(ctx)
		if err != nil {
			return
		}
		h := w.c.tagHistory(ctx, base, name, "")
		w.record("tag-history", h, h.String(), "final", name)
		if h.status != 200 {
			rn.st.op("final-rule-ends", h.outcome().String())
			continue
		}
		rows, err := parseHistory(h.body)
		if err != nil {
			rn.hist.violate("tag history does not parse", err.Error(), name)
			continue
		}
		res := "ok"
		if rn.checkRuleEnds(r, rows, h) > 0 {
			res = "violation"
		}
		rn.st.op("final-rule-ends", res)
	}
	r := rn.m.repo(rn.relRepo)
	rn.relMu.Lock()
	tags := make([]string, 0, len(rn.rel))
	for t := range rn.rel {
		tags = append(tags, t)
	}
	rn.relMu.Unlock()
	slices.Sort(tags)
	for _, tag := range tags {
		rn.st.op("final-release", rn.checkRelease(ctx, w, r, tag))
	}
}

// checkRelease checks the history of immutable tag tag.
func (rn *runner) checkRelease(ctx context.Context, w *worker, r *repoModel, tag string) string {
	rn.relMu.Lock()
	d := rn.rel[tag]
	rn.relMu.Unlock()
	acked, _, _ := rn.m.liveDigest(r, tag, time.Now())
	base, err := w.base(ctx)
	if err != nil {
		return "unknown"
	}
	h := w.c.tagHistory(ctx, base, r.name, tag)
	keys := []string{r.name, tkey(r.name, tag), mkey(r.name, d)}
	w.record("tag-history", h, h.String(), "final", keys...)
	if h.status != 200 && !(h.status == 404 && acked == "") {
		return h.outcome().String()
	}
	var rows []historyRow
	if h.status == 200 {
		if rows, err = parseHistory(h.body); err != nil {
			rn.hist.violate("tag history does not parse", err.Error(), keys...)
			return "violation"
		}
	}
	var got []string
	for _, x := range rows {
		end := "live"
		if !x.Live {
			end = "ended " + x.EndCause
		}
		got = append(got, fmt.Sprintf("%s from %s %s", x.Digest, rn.hist.rel(x.Start), end))
	}
	ok := len(rows) == 1 && rows[0].Live && rows[0].Digest == d
	if acked == "" {
		ok = len(rows) == 0 || ok
	}
	if !ok {
		why := "pushed (201)"
		if acked == "" {
			why = "pushed without an answer"
		}
		rn.hist.violate("immutable tag moved or ended", fmt.Sprintf("%s:%s was %s on %s only; its history: [%s]", r.name, tag, why, d, strings.Join(got, "; ")), keys...)
		return "violation"
	}
	return "ok"
}

// verifyUsage runs "berth usage verify --json" on the run's database: every
// usage counter must equal its recomputation from the rows.
func (rn *runner) verifyUsage(ctx context.Context, lv *liveness) {
	if !rn.cl.hasUsage {
		return
	}
	out, _, err := rn.cl.cli(ctx, 0, "usage", "verify", "--json")
	var rep struct {
		Namespaces  int               `json:"namespaces"`
		Differences []json.RawMessage `json:"differences"`
	}
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		lv.Problems = append(lv.Problems, fmt.Sprintf("berth usage verify: %v (%v): %.300s", err, jerr, out))
		return
	}
	lv.UsageNamespaces = rep.Namespaces
	for _, d := range rep.Differences {
		lv.Problems = append(lv.Problems, "USAGE counter differs from the rows: "+string(d))
	}
	if err != nil && len(rep.Differences) == 0 {
		lv.Problems = append(lv.Problems, fmt.Sprintf("berth usage verify failed without a difference: %v", err))
	}
}
