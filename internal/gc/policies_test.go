package gc_test

// Retention policies applied by the collector (docs/design/policies.md,
// "When rules are evaluated"): the policy stage, the push trigger, the dry
// run. Policies are saved with tx.PutPolicy and their repositories
// scheduled with ExpediteReview, as a rule's change does; tags are pushed
// over HTTP.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// forEachMetaBackend runs fn on SQLite and PostgreSQL over the filesystem:
// policies are metadata, and S3 adds nothing to them.
func forEachMetaBackend(t *testing.T, fn func(t *testing.T, h *harness), opts ...option) {
	t.Helper()
	t.Parallel()
	for _, name := range []string{registryenv.SQLite, registryenv.Postgres} {
		t.Run(name, func(t *testing.T) { fn(t, newHarness(t, registryenv.ByName(t, name), opts...)) })
	}
}

// rule is a policy of kind at the scope of ref ("*", "ns" or "ns/app"),
// named name, seeing every tag.
func rule(scope, name string, kind meta.PolicyKind) meta.TagPolicy {
	p := meta.TagPolicy{Name: name, Kind: kind, PatternMatches: true}
	if scope != meta.RegistryScope {
		p.Namespace, _, _ = strings.Cut(scope, "/")
		if strings.Contains(scope, "/") {
			p.Repository = scope
		}
	}
	return p
}

func keepNewest(scope, name string, n int) meta.TagPolicy {
	p := rule(scope, name, meta.PolicyKeepNewest)
	p.Count = n
	return p
}

func olderThan(scope, name string, span time.Duration) meta.TagPolicy {
	p := rule(scope, name, meta.PolicyPruneOlderThan)
	p.Span = span
	return p
}

// savePolicy saves p and records a policy review due now for every
// repository of its scope, as a rule's change does.
func (h *harness) savePolicy(p meta.TagPolicy) {
	h.t.Helper()
	p.CreatedAt, p.CreatedBy = h.clock.Now(), meta.ActorOperator
	err := h.store.Update(h.ctx, func(tx meta.Tx) error {
		if _, _, err := tx.PutPolicy(h.ctx, p); err != nil {
			return err
		}
		return h.scheduleScope(tx, p.Namespace, p.Repository, review.CausePolicyChanged)
	})
	if err != nil {
		h.t.Fatalf("saving policy %s: %v", p.Ref(), err)
	}
}

// deletePolicy deletes a policy and schedules its scope, as a rule's
// removal does.
func (h *harness) deletePolicy(p meta.TagPolicy) {
	h.t.Helper()
	err := h.store.Update(h.ctx, func(tx meta.Tx) error {
		if _, err := tx.DeletePolicy(h.ctx, p.Namespace, p.Repository, p.Name); err != nil {
			return err
		}
		return h.scheduleScope(tx, p.Namespace, p.Repository, review.CausePolicyChanged)
	})
	if err != nil {
		h.t.Fatalf("deleting policy %s: %v", p.Ref(), err)
	}
}

func (h *harness) scheduleScope(tx meta.Tx, namespace, repository string, cause review.Cause) error {
	ids, err := tx.RepositoryIDs(h.ctx, namespace, repository, 0, 1000)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := tx.ExpediteReview(h.ctx, meta.Review{Kind: review.KindPolicy, Object: review.PolicyObject(id),
			ReviewAfter: h.clock.Now(), Cause: cause, Reason: "test"}); err != nil {
			return err
		}
	}
	return nil
}

// pushTags pushes one small image per tag to repo, a minute apart (so
// their lifetimes start in that order), and returns them by tag.
func (h *harness) pushTags(repo string, tags ...string) map[string]registryenv.Manifest {
	h.t.Helper()
	out := map[string]registryenv.Manifest{}
	for _, tag := range tags {
		h.advance(time.Minute)
		out[tag] = h.PushImage(repo, tag, []byte("layer of "+repo+":"+tag))
	}
	return out
}

// liveTags lists the names of repo's live tag rows, hidden ones included.
func (h *harness) liveTags(repo string) []string {
	h.t.Helper()
	return h.strings(`SELECT t.name FROM tag t JOIN repository r ON r.id = t.repository_id
		WHERE r.name = ? AND t.lifetime_end IS NULL ORDER BY t.name`, repo)
}

func (h *harness) assertLiveSet(repo string, want ...string) {
	h.t.Helper()
	slices.Sort(want)
	if got := h.liveTags(repo); !slices.Equal(got, want) {
		h.t.Fatalf("live tags of %s: got %v, want %v", repo, got, want)
	}
}

// endOf is how the last lifetime of repo's tag ended: "cause rule".
func (h *harness) endOf(repo, tag string) string {
	h.t.Helper()
	got := h.strings(`SELECT t.end_actor || ' ' || t.end_cause || ' ' || t.end_rule FROM tag t JOIN repository r ON r.id = t.repository_id
		WHERE r.name = ? AND t.name = ? AND t.lifetime_end IS NOT NULL ORDER BY t.id DESC`, repo, tag)
	if len(got) == 0 {
		return ""
	}
	return got[0]
}

// assertPruned checks that each tag of repo ended, pruned by rule.
func (h *harness) assertPruned(repo, rule string, tags ...string) {
	h.t.Helper()
	for _, tag := range tags {
		if got, want := h.endOf(repo, tag), "collector policy "+rule; got != want {
			h.t.Errorf("end of %s:%s: got %q, want %q", repo, tag, got, want)
		}
	}
}

// policyReview reads repo's pending policy review.
func (h *harness) policyReview(repo string) (at time.Time, cause string, ok bool) {
	h.t.Helper()
	rows, err := h.store.DB().QueryContext(h.ctx, h.rebind(`SELECT review_after, cause FROM review WHERE kind = ? AND object = ?`),
		string(review.KindPolicy), review.PolicyObject(h.repoID(repo)))
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		return time.Time{}, "", false
	}
	var us int64
	if err := rows.Scan(&us, &cause); err != nil {
		h.t.Fatal(err)
	}
	return time.UnixMicro(us).UTC(), cause, true
}

func (h *harness) assertNoPolicyReview(repo string) {
	h.t.Helper()
	if at, cause, ok := h.policyReview(repo); ok {
		h.t.Fatalf("%s has a policy review at %s (%s), want none", repo, at, cause)
	}
}

// recordPull records a pull of repo's live tag at the clock's time, as the
// pull path does.
func (h *harness) recordPull(repo, tag string) {
	h.t.Helper()
	err := h.store.Update(h.ctx, func(tx meta.Tx) error {
		t, err := tx.LiveTag(h.ctx, h.repoID(repo), tag, h.clock.Now())
		if err != nil {
			return err
		}
		_, err = tx.RecordPull(h.ctx, t.ID, h.clock.Now(), 0)
		return err
	})
	if err != nil {
		h.t.Fatalf("recording a pull of %s:%s: %v", repo, tag, err)
	}
}

// prunedKeys lists the tag ends of cause policy, sorted.
func prunedKeys(ends []gc.TagEnd) []string {
	var out []string
	for _, e := range ends {
		if e.Cause == meta.CausePolicy {
			out = append(out, fmt.Sprintf("%s:%s %s %s", e.Repository, e.Tag, e.Digest, e.Rule))
		}
	}
	slices.Sort(out)
	return out
}

// logRecorder keeps the collector's log lines of one message.
type logRecorder struct {
	mu    sync.Mutex
	lines []map[string]string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]string{"msg": rec.Message, "level": rec.Level.String()}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	l.mu.Lock()
	l.lines = append(l.lines, m)
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) of(msg string) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, m := range l.lines {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// loggingCollector is another collector on the harness's stores whose log
// lines are kept and whose metrics are registered in reg.
func (h *harness) loggingCollector() (c *gc.Collector, logs *logRecorder, reg *prometheus.Registry) {
	logs, reg = &logRecorder{}, prometheus.NewRegistry()
	o := h.opts
	o.Logger, o.Registerer = slog.New(logs), reg
	return gc.New(h.store, h.blobs, o), logs, reg
}

// counter reads the counter name{label=value} of reg.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// keep_newest keeps the N newest tags and ends the others with cause
// policy and the rule's ref, logged and emitted one by one; the review is
// then done.
func TestPolicyKeepNewest(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		ms := h.pushTags("ns/app", "t1", "t2", "t3", "t4", "t5")
		h.savePolicy(keepNewest("ns/app", "keep-2", 2))
		c, logs, reg := h.loggingCollector()
		s := h.collectWith(c, gc.RunOptions{})
		if s.Pruned != 3 || s.Errors != 0 {
			t.Fatalf("summary: %d pruned, %d errors; want 3, 0", s.Pruned, s.Errors)
		}
		h.assertLiveSet("ns/app", "t4", "t5")
		h.assertPruned("ns/app", "ns/app:keep-2", "t1", "t2", "t3")
		h.assertNoPolicyReview("ns/app")

		evs := h.eventsOf(event.TagPruned)
		var tags []string
		for _, e := range evs {
			tags = append(tags, e.Tag)
			if e.Repository != "ns/app" || e.Actor != meta.ActorCollector || e.Digest != ms[e.Tag].Digest || !strings.Contains(e.Reason, "ns/app:keep-2") {
				t.Errorf("event %+v: want repository ns/app, actor collector, the tag's digest, the rule in the reason", e)
			}
		}
		if slices.Sort(tags); !slices.Equal(tags, []string{"t1", "t2", "t3"}) {
			t.Errorf("tag.pruned events for %v, want t1 t2 t3", tags)
		}
		if n := counter(t, reg, "berth_gc_tags_ended_total", "cause", "policy"); n != 3 {
			t.Errorf("berth_gc_tags_ended_total{cause=policy}: got %v, want 3", n)
		}
		lines := logs.of("gc ended tag")
		if len(lines) != 3 {
			t.Fatalf("%d 'gc ended tag' log lines, want 3: %v", len(lines), lines)
		}
		for _, l := range lines {
			if l["repository"] != "ns/app" || l["cause"] != "policy" || l["rule"] != "ns/app:keep-2" || l["digest"] != ms[l["tag"]].Digest.String() {
				t.Errorf("log line %v: want repository, tag, digest and rule", l)
			}
		}
	})
}

// A pattern narrows a rule to the tags it matches, or to those it does not
// match; the other tags are neither counted nor pruned.
func TestPolicyPattern(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		for _, repo := range []string{"ns/match", "ns/other"} {
			h.pushTags(repo, "v1", "v2", "v3", "dev", "latest")
		}
		match := keepNewest("ns/match", "releases", 1)
		match.TagPattern = "^v[0-9]+$"
		other := keepNewest("ns/other", "not-releases", 1)
		other.TagPattern, other.PatternMatches = "^v[0-9]+$", false
		h.savePolicy(match)
		h.savePolicy(other)
		h.collect()
		h.assertLiveSet("ns/match", "v3", "dev", "latest")
		h.assertPruned("ns/match", "ns/match:releases", "v1", "v2")
		h.assertLiveSet("ns/other", "v1", "v2", "v3", "latest")
		h.assertPruned("ns/other", "ns/other:not-releases", "dev")
	})
}

// An age rule: nothing happens before a tag's start plus the span; the
// push recorded the review due then, and only the repositories it applies
// to have one (no scan of the others).
func TestPolicyPruneOlderThan(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		const span = 24 * time.Hour
		h.savePolicy(olderThan("ns/app", "old", span))
		h.pushTags("ns/app", "a")
		start := h.clock.Now()
		h.pushTags("ns/other", "x")
		h.pushTags("team/app", "y")
		at, cause, ok := h.policyReview("ns/app")
		if !ok || !at.Equal(start.Add(span).Truncate(time.Microsecond)) || cause != string(review.CauseTagPushed) {
			t.Fatalf("policy review of ns/app: %v %s %v; want at %s, cause tag_pushed", at, cause, ok, start.Add(span))
		}
		h.assertNoPolicyReview("ns/other")
		h.assertNoPolicyReview("team/app")

		h.advance(span / 2)
		h.pushTags("ns/app", "b") // its review would be later: the pending one stays
		bStart := h.clock.Now()
		if at2, _, _ := h.policyReview("ns/app"); !at2.Equal(at) {
			t.Fatalf("a later push moved the review from %s to %s", at, at2)
		}
		h.advance(start.Add(span).Sub(h.clock.Now()) - time.Second)
		if s := h.collect(); s.Pruned != 0 {
			t.Fatalf("pruned %d before the span passed", s.Pruned)
		}
		h.advance(time.Second)
		if s := h.collect(); s.Pruned != 1 {
			t.Fatalf("pruned %d at the span, want 1", s.Pruned)
		}
		h.assertLiveSet("ns/app", "b")
		h.assertPruned("ns/app", "ns/app:old", "a")
		at, cause, ok = h.policyReview("ns/app")
		if !ok || !at.Equal(bStart.Add(span).Truncate(time.Microsecond)) || cause != string(review.CausePolicyDue) {
			t.Fatalf("next policy review: %v %s %v; want at %s, cause policy_due", at, cause, ok, bStart.Add(span))
		}
		h.advance(bStart.Add(span).Sub(h.clock.Now()))
		h.collect()
		h.assertLiveSet("ns/app")
		h.assertNoPolicyReview("ns/app")
		h.assertLiveSet("ns/other", "x")
		h.assertLiveSet("team/app", "y")
	})
}

// prune_not_pulled counts a tag never pulled as pulled when it started; a
// recorded pull postpones its prune to the pull plus the span.
func TestPolicyPruneNotPulled(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		const span = 7 * 24 * time.Hour
		p := rule("ns/app", "unpulled", meta.PolicyPruneNotPulled)
		p.Span = span
		h.savePolicy(p)
		h.pushTags("ns/app", "a", "b")
		h.advance(5 * 24 * time.Hour)
		h.recordPull("ns/app", "a")
		pulled := h.clock.Now()
		h.advance(2*24*time.Hour + time.Minute)
		h.collect()
		h.assertLiveSet("ns/app", "a")
		h.assertPruned("ns/app", "ns/app:unpulled", "b")
		if at, cause, ok := h.policyReview("ns/app"); !ok || !at.Equal(pulled.Add(span).Truncate(time.Microsecond)) || cause != string(review.CausePolicyDue) {
			t.Fatalf("next policy review: %v %s %v; want at the pull + %s", at, cause, ok, span)
		}
		h.advance(pulled.Add(span).Sub(h.clock.Now()))
		h.collect()
		h.assertLiveSet("ns/app")
		h.assertPruned("ns/app", "ns/app:unpulled", "a")
	})
}

// keep_recently_pulled keeps the N most recently pulled, a tag never
// pulled ranking by its start.
func TestPolicyKeepRecentlyPulled(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		h.pushTags("ns/app", "a", "b", "c")
		h.advance(time.Hour)
		h.recordPull("ns/app", "a")
		p := rule("ns", "pulled", meta.PolicyKeepRecentlyPulled)
		p.Count = 2
		h.savePolicy(p)
		h.collect()
		h.assertLiveSet("ns/app", "a", "c")
		h.assertPruned("ns/app", "ns:pulled", "b")
	})
}

// Several policies apply at once: a tag is pruned when any of them prunes
// it, and is named by the first in scope order.
func TestPolicySeveral(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		h.pushTags("ns/app", "p1", "p2", "p3", "p4")
		h.advance(3 * time.Hour)
		h.pushTags("ns/app", "q1")
		h.savePolicy(keepNewest("ns/app", "keep-4", 4))
		h.savePolicy(olderThan("ns", "two-hours", 2*time.Hour))
		s := h.collect()
		if s.Pruned != 4 {
			t.Fatalf("pruned %d, want 4", s.Pruned)
		}
		h.assertLiveSet("ns/app", "q1")
		h.assertPruned("ns/app", "ns:two-hours", "p1", "p2", "p3", "p4")
	})
}

// The registry's default applies to a repository only when neither it nor
// its namespace has a policy (PoliciesFor).
func TestPolicyScopes(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		for _, repo := range []string{"one/app", "two/app", "three/app", "three/other"} {
			h.pushTags(repo, "a", "b", "c")
		}
		h.savePolicy(keepNewest(meta.RegistryScope, "default", 1))
		h.savePolicy(keepNewest("two", "keep-2", 2))
		h.savePolicy(keepNewest("three/app", "keep-3", 3))
		h.collect()
		h.assertLiveSet("one/app", "c")
		h.assertPruned("one/app", "*:default", "a", "b")
		h.assertLiveSet("two/app", "b", "c")
		h.assertPruned("two/app", "two:keep-2", "a")
		h.assertLiveSet("three/app", "a", "b", "c")
		h.assertLiveSet("three/other", "c")
		h.assertPruned("three/other", "*:default", "a", "b")
	})
}

// Immutable tags are never pruned, nor counted.
func TestPolicyImmutableNeverPruned(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		h.pushTags("ns/app", "dev1", "v1", "v2", "dev2")
		imm := rule("ns", "releases", meta.PolicyImmutable)
		imm.TagPattern = "^v"
		h.savePolicy(imm)
		h.savePolicy(keepNewest("ns/app", "keep-1", 1))
		h.collect()
		h.assertLiveSet("ns/app", "v1", "v2", "dev2")
		h.assertPruned("ns/app", "ns/app:keep-1", "dev1")
	})
}

// An attachment tag whose subject is stored and not withdrawn is neither
// pruned nor counted; once its subject is withdrawn it is an ordinary tag.
func TestPolicyAttachmentsFollowTheirSubject(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		ms := h.pushTags("ns/app", "a", "b")
		sig := "sha256-" + ms["a"].Digest.Encoded() + ".sig"
		h.pushTags("ns/app", sig)
		h.savePolicy(keepNewest("ns/app", "keep-1", 1))
		h.collect()
		// Counted, the signature would have been the one newest kept.
		h.assertLiveSet("ns/app", "b", sig)
		h.assertPruned("ns/app", "ns/app:keep-1", "a")

		// a's manifest is still stored (the time machine): its signature
		// stays protected until a DELETE by digest withdraws it.
		h.savePolicy(keepNewest("ns/app", "keep-1", 1))
		h.collect()
		h.assertLiveSet("ns/app", "b", sig)
		resp, body := h.do("DELETE", "/v2/ns/app/manifests/"+ms["a"].Digest.String(), nil, nil)
		h.expect(resp, body, http.StatusAccepted)
		h.savePolicy(keepNewest("ns/app", "keep-1", 1))
		h.collect()
		h.assertLiveSet("ns/app", sig)
		h.assertPruned("ns/app", "ns/app:keep-1", "b")
	})
}

// Hidden tags are neither pruned nor counted.
func TestPolicyHiddenTagsIgnored(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		ms := h.pushTags("ns/app", "a", "b")
		h.advance(time.Minute)
		err := h.store.Update(h.ctx, func(tx meta.Tx) error {
			_, err := tx.PutTag(h.ctx, meta.Tag{RepoID: h.repoID("ns/app"), Name: "internal", Manifest: ms["b"].Digest, Start: h.clock.Now(), Hidden: true})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		h.savePolicy(keepNewest("ns/app", "keep-1", 1))
		h.collect()
		h.assertLiveSet("ns/app", "b", "internal")
		h.assertPruned("ns/app", "ns/app:keep-1", "a")
	})
}

// A pruned tag is in the history as ended by the collector for the rule,
// restores within the window, and is collected with its manifest and blobs
// after it.
func TestPolicyPrunedTagTimeMachine(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		img1, img2, img3 := ociImage(t, 1), ociImage(t, 2), ociImage(t, 1)
		d1 := h.pushImage("ns/app", "old1", img1)
		d2 := h.pushImage("ns/app", "old2", img2)
		h.advance(2 * 24 * time.Hour)
		h.pushImage("ns/app", "new", img3)
		p := olderThan("ns/app", "older-than-a-day", 24*time.Hour)
		p.TagPattern = "^old"
		h.savePolicy(p)
		if s := h.collect(); s.Pruned != 2 {
			t.Fatalf("pruned %d, want 2", s.Pruned)
		}
		hist, err := h.reg.TagHistory(h.ctx, "ns/app", "old1")
		if err != nil || len(hist.Lifetimes) != 1 {
			t.Fatalf("history of old1: %+v, %v", hist, err)
		}
		if l := hist.Lifetimes[0]; l.Live || !l.Restorable || l.EndedBy != meta.ActorCollector || l.EndCause != meta.CausePolicy || l.EndRule != "ns/app:older-than-a-day" {
			t.Fatalf("lifetime of old1: live %v restorable %v ended by %q cause %q rule %q; want pruned by the rule, restorable",
				l.Live, l.Restorable, l.EndedBy, l.EndCause, l.EndRule)
		}
		h.advance(retention - time.Hour)
		h.collect()
		if _, err := h.reg.RestoreTag(h.ctx, "ns/app", "old1", registry.RestoreTarget{Digest: d1.String()}); err != nil {
			t.Fatalf("restoring a pruned tag inside the window: %v", err)
		}
		h.assertPullable(h.tag("ns/app", "old1"))
		h.deletePolicy(p) // or the restored tag is a day from its next prune
		h.settle()
		h.assertLiveSet("ns/app", "new", "old1")
		h.assertGone("ns/app", []v1.Hash{d2}, layerDigests(t, img2)...)
		h.assertPullable(h.tag("ns/app", "old1"))
		h.assertPullable(h.tag("ns/app", "new"))
		h.assertFixedPoint(nil)
	})
}

// With a zero window a pruned tag and the manifest only it reached go in
// the same run: the policy stage comes first.
func TestPolicyZeroWindowCollectsInTheSameRun(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		ms := h.pushTags("ns/app", "a", "b")
		zero := time.Duration(0)
		if _, err := h.reg.SetNamespaceRetention(h.ctx, "ns", &zero); err != nil {
			t.Fatal(err)
		}
		h.advance(grace + time.Minute)
		h.savePolicy(keepNewest("ns/app", "keep-1", 1))
		s, err := h.gc.RunOnce(h.ctx, gc.RunOptions{KeepDeletions: true})
		if err != nil {
			t.Fatal(err)
		}
		if s.Pruned != 1 || s.Deleted[review.KindTag] != 1 || s.Deleted[review.KindManifest] != 1 {
			t.Fatalf("one run: pruned %d, deleted %v; want 1 tag pruned, its row and manifest deleted", s.Pruned, s.Deleted)
		}
		if h.hasManifest("ns/app", toHash(t, ms["a"].Digest)) {
			t.Fatal("the pruned tag's manifest is still stored")
		}
		h.settle()
		h.assertLiveSet("ns/app", "b")
		h.assertFixedPoint(nil)
	})
}

// A push beyond keep_newest N expedites the repository's review: the next
// run prunes the oldest.
func TestPolicyPushExpeditesCountRule(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		h.savePolicy(keepNewest("ns", "keep-2", 2))
		h.pushTags("ns/app", "a", "b")
		h.collect()
		h.assertLiveSet("ns/app", "a", "b")
		h.assertNoPolicyReview("ns/app")

		h.pushTags("ns/app", "c")
		at, cause, ok := h.policyReview("ns/app")
		if !ok || at.After(h.clock.Now()) || cause != string(review.CauseTagPushed) {
			t.Fatalf("policy review after the push: %v %s %v; want due now, cause tag_pushed", at, cause, ok)
		}
		h.collect()
		h.assertLiveSet("ns/app", "b", "c")
		h.assertPruned("ns/app", "ns:keep-2", "a")

		// Moving a tag is a push too.
		h.Tag("ns/app", "b", h.pushTags("ns/app", "d")["d"])
		h.collect()
		h.assertLiveSet("ns/app", "b", "d")
		h.assertPruned("ns/app", "ns:keep-2", "c")
	})
}

// berth gc --repo evaluates only its repository's policies.
func TestPolicyRunForOneRepository(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		h.pushTags("ns/a", "x", "y")
		h.pushTags("ns/b", "x", "y")
		h.savePolicy(keepNewest("ns", "keep-1", 1))
		s := h.collectWith(h.gc, gc.RunOptions{Repo: "ns/a"})
		if s.Pruned != 1 {
			t.Fatalf("gc --repo ns/a pruned %d, want 1", s.Pruned)
		}
		h.assertLiveSet("ns/a", "y")
		h.assertLiveSet("ns/b", "x", "y")
		if _, _, ok := h.policyReview("ns/b"); !ok {
			t.Fatal("gc --repo ns/a settled ns/b's policy review")
		}
		h.collect()
		h.assertLiveSet("ns/b", "y")
	})
}

// The dry run lists exactly the tags a real run then prunes, and with a
// zero window the same deletions; it changes nothing.
func TestPolicyDryRunEqualsRealRun(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		h.pushTags("ns/app", "v1", "v2", "v3", "latest")
		h.pushTags("zero/app", "a", "b", "c")
		zero := time.Duration(0)
		if _, err := h.reg.SetNamespaceRetention(h.ctx, "zero", &zero); err != nil {
			t.Fatal(err)
		}
		h.advance(2 * time.Hour)
		h.pushTags("zero/app", "d")
		rel := keepNewest("ns/app", "releases", 1)
		rel.TagPattern = "^v"
		h.savePolicy(rel)
		h.savePolicy(olderThan("zero", "hour", time.Hour))
		h.savePolicy(keepNewest("zero/app", "keep-2", 2))

		before := h.snapshot()
		dry, err := h.gc.RunOnce(h.ctx, gc.RunOptions{DryRun: true})
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
		if fmt.Sprint(h.snapshot()) != fmt.Sprint(before) {
			t.Fatal("the dry run changed the metadata")
		}
		if dry.Pruned != 5 || len(prunedKeys(dry.Ends)) != 5 {
			t.Fatalf("dry run: %d pruned, listed %v; want 5", dry.Pruned, prunedKeys(dry.Ends))
		}
		real, err := h.gc.RunOnce(h.ctx, gc.RunOptions{KeepDeletions: true})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := prunedKeys(real.Ends), prunedKeys(dry.Ends); !slices.Equal(got, want) {
			t.Errorf("real run pruned\n%v\ndry run said\n%v", got, want)
		}
		if got, want := deletionKeys(real.Deletions), deletionKeys(dry.Deletions); !slices.Equal(got, want) || len(got) == 0 {
			t.Errorf("real run deleted\n%v\ndry run said\n%v", got, want)
		}
		h.assertLiveSet("ns/app", "v3", "latest")
		h.assertLiveSet("zero/app", "d")
	})
}

// A stored rule that does not compile is logged once per evaluation and
// never applied; the others still are.
func TestPolicyInvalidStoredRuleNotApplied(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		h.pushTags("ns/app", "a", "b", "c")
		bad := keepNewest("ns/app", "broken", 0)
		bad.TagPattern = "("
		h.savePolicy(bad)
		h.savePolicy(keepNewest("ns/app", "keep-2", 2))
		c, logs, _ := h.loggingCollector()
		h.collectWith(c, gc.RunOptions{})
		h.assertLiveSet("ns/app", "b", "c")
		h.assertPruned("ns/app", "ns/app:keep-2", "a")
		warns := logs.of("gc: a stored retention policy is invalid and is not applied")
		if len(warns) != 1 || warns[0]["level"] != "WARN" || !strings.Contains(warns[0]["err"], "ns/app:broken") {
			t.Fatalf("warnings: %v; want one naming ns/app:broken", warns)
		}
	})
}

// An evaluation that prunes more tags than a transaction's share ends them
// over several transactions in the same run, without evaluating again, and
// then settles its review.
func TestPolicyPrunesInBatches(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		tags := []string{"t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"}
		h.pushTags("ns/app", tags...)
		h.advance(grace)
		h.savePolicy(olderThan("ns/app", "hour", time.Hour))
		s, err := h.gc.RunOnce(h.ctx, gc.RunOptions{})
		if err != nil || s.Pruned != 8 || s.Errors != 0 {
			t.Fatalf("one run: %d pruned, %d errors, %v; want all 8 pruned", s.Pruned, s.Errors, err)
		}
		h.assertLiveSet("ns/app")
		h.assertPruned("ns/app", "ns/app:hour", tags...)
		h.assertNoPolicyReview("ns/app")
	}, withBatch(3))
}

// A push while an evaluation is still ending its tags brings the leased
// review forward: the evaluation does not settle it, and another one
// prunes the pushed tag in the same run.
func TestPolicyPushDuringPruningEvaluatedAgain(t *testing.T) {
	forEachMetaBackend(t, func(t *testing.T, h *harness) {
		ms := h.pushTags("ns/app", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8")
		h.savePolicy(keepNewest("ns/app", "none", 0))
		var once sync.Once
		o := h.opts
		o.Hooks = []func(gc.Event){func(e gc.Event) {
			if e.Kind != event.TagPruned {
				return
			}
			// After the first of the evaluation's transactions.
			once.Do(func() {
				if _, err := h.reg.PutManifest(h.ctx, "ns/app", "late", registryenv.MediaImage, ms["t1"].Body); err != nil {
					t.Errorf("push during the evaluation: %v", err)
				}
			})
		}}
		s, err := gc.New(h.store, h.blobs, o).RunOnce(h.ctx, gc.RunOptions{KeepDeletions: true})
		if err != nil || s.Errors != 0 {
			t.Fatalf("run: %+v, %v", s, err)
		}
		var late int
		for _, p := range s.Ends {
			if p.Tag == "late" {
				late++
			}
		}
		if s.Pruned != 9 || late != 1 {
			t.Fatalf("pruned %v; want the 8 tags and then late", prunedKeys(s.Ends))
		}
		h.assertLiveSet("ns/app")
		h.assertNoPolicyReview("ns/app")
	}, withBatch(3))
}
