package metatest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// Policies: saving replaces a rule in place, the scopes resolve as
// docs/design/policies.md says (the registry's only where a repository has
// none of its own or its namespace's), and deleting reports what it deleted.
func testPolicies(t *testing.T, s meta.Store) {
	ctx := context.Background()
	put := func(p meta.TagPolicy) meta.TagPolicy {
		t.Helper()
		var row meta.TagPolicy
		update(t, s, func(tx meta.Tx) error {
			var err error
			row, _, err = tx.PutPolicy(ctx, p)
			return err
		})
		return row
	}
	def := put(meta.TagPolicy{Name: "default", Kind: meta.PolicyKeepNewest, Count: 50, CreatedAt: t0, CreatedBy: meta.ActorOperator})
	ns := put(meta.TagPolicy{Namespace: "team", Name: "old", Kind: meta.PolicyPruneOlderThan, Span: 30 * 24 * time.Hour,
		TagPattern: "^build-", PatternMatches: true, CreatedAt: t0})
	rp := put(meta.TagPolicy{Namespace: "team", Repository: "team/app", Name: "release", Kind: meta.PolicyImmutable,
		TagPattern: `^v[0-9]`, PatternMatches: true, CreatedAt: t0})
	put(meta.TagPolicy{Namespace: "other", Repository: "other/x", Name: "pulls", Kind: meta.PolicyKeepRecentlyPulled, Count: 3, CreatedAt: t0})
	if def.Ref() != "*:default" || ns.Ref() != "team:old" || rp.Ref() != "team/app:release" {
		t.Errorf("refs: got %s, %s, %s", def.Ref(), ns.Ref(), rp.Ref())
	}
	if ns.Span != 30*24*time.Hour || !ns.PatternMatches || ns.TagPattern != "^build-" || !ns.CreatedAt.Equal(t0) {
		t.Errorf("namespace policy read back as %+v", ns)
	}

	names := func(ps []meta.TagPolicy) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Ref())
		}
		return out
	}
	view(t, s, func(tx meta.Tx) error {
		for _, tt := range []struct {
			ns, repo string
			want     []string
		}{
			{"team", "team/app", []string{"team:old", "team/app:release"}},
			{"team", "team/lib", []string{"team:old"}},
			{"other", "other/x", []string{"other/x:pulls"}},
			{"other", "other/y", []string{"*:default"}},
			{"fresh", "fresh/z", []string{"*:default"}},
		} {
			got, err := tx.PoliciesFor(ctx, tt.ns, tt.repo)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(tt.want, names(got)); diff != "" {
				t.Errorf("PoliciesFor(%s) (-want +got):\n%s", tt.repo, diff)
			}
		}
		all, err := tx.ListPolicies(ctx, meta.PolicyFilter{})
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{"*:default", "other/x:pulls", "team:old", "team/app:release"}, names(all)); diff != "" {
			t.Errorf("ListPolicies all (-want +got):\n%s", diff)
		}
		team, err := tx.ListPolicies(ctx, meta.PolicyFilter{Namespace: "team", Repository: "team/lib", Registry: true})
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{"*:default", "team:old"}, names(team)); diff != "" {
			t.Errorf("ListPolicies team/lib with registry (-want +got):\n%s", diff)
		}
		return nil
	})

	// Saving again replaces the rule and keeps the id.
	again := put(meta.TagPolicy{Namespace: "team", Name: "old", Kind: meta.PolicyPruneNotPulled, Span: time.Hour, CreatedAt: t0.Add(time.Minute)})
	if again.ID != ns.ID || again.Kind != meta.PolicyPruneNotPulled || again.TagPattern != "" || again.PatternMatches {
		t.Errorf("replaced policy: got %+v, want id %d, kind prune_not_pulled, no pattern", again, ns.ID)
	}
	update(t, s, func(tx meta.Tx) error {
		_, created, err := tx.PutPolicy(ctx, again)
		if created {
			t.Error("PutPolicy of an existing name reported created")
		}
		return err
	})
	update(t, s, func(tx meta.Tx) error {
		gone, err := tx.DeletePolicy(ctx, "team", "team/app", "release")
		if err != nil {
			return err
		}
		if gone.Kind != meta.PolicyImmutable {
			t.Errorf("DeletePolicy returned %+v", gone)
		}
		if _, err := tx.DeletePolicy(ctx, "team", "team/app", "release"); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("second DeletePolicy: got %v, want ErrNotFound", err)
		}
		if _, err := tx.Policy(ctx, "team", "", "nope"); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("Policy of a missing name: got %v, want ErrNotFound", err)
		}
		return nil
	})
}

// PolicyTags: LiveTags, EndTags with a rule, RecordPull's interval, and
// RepositoryIDs by scope.
func testPolicyTags(t *testing.T, s meta.Store) {
	ctx := context.Background()
	r := withManifest(t, s, "team/app")
	other := withManifest(t, s, "other/x")
	var ids []int64
	update(t, s, func(tx meta.Tx) error {
		for i, name := range []string{"a", "b", "c"} {
			if _, err := tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: name, Manifest: dg("team/app"), Start: t0.Add(time.Duration(i) * time.Second)}); err != nil {
				return err
			}
		}
		exp := t0.Add(time.Minute)
		_, err := tx.PutTag(ctx, meta.Tag{RepoID: r.ID, Name: "expiring", Manifest: dg("team/app"), Start: t0, ExpiresAt: &exp})
		return err
	})
	view(t, s, func(tx meta.Tx) error {
		live, err := tx.LiveTags(ctx, r.ID, t0.Add(2*time.Minute))
		if err != nil {
			return err
		}
		for _, tg := range live {
			ids = append(ids, tg.ID)
		}
		if len(live) != 3 || live[0].Name != "a" || live[2].Name != "c" {
			t.Errorf("LiveTags after the expiry: got %+v, want a, b, c", live)
		}
		return nil
	})
	// In id order, not by name, and each row whole, as TagHistory reads it.
	update(t, s, func(tx meta.Tx) error {
		for i, name := range []string{"z", "y", "x"} {
			exp := t0.Add(time.Duration(i+1) * time.Hour)
			if _, err := tx.PutTag(ctx, meta.Tag{RepoID: other.ID, Name: name, Manifest: dg("other/x"), Start: t0, ExpiresAt: &exp,
				StartActor: meta.ActorOperator, Hidden: name == "y"}); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx meta.Tx) error {
		live, err := tx.LiveTags(ctx, other.ID, t0.Add(-time.Minute))
		if err != nil {
			return err
		}
		var want []meta.Tag
		for _, name := range []string{"z", "y", "x"} {
			h, err := tx.TagHistory(ctx, other.ID, name, 1)
			if err != nil {
				return err
			}
			want = append(want, h...)
		}
		if diff := cmp.Diff(want, live); diff != "" {
			t.Errorf("LiveTags of other/x (-want +got):\n%s", diff)
		}
		return nil
	})
	update(t, s, func(tx meta.Tx) error {
		wrote, err := tx.RecordPull(ctx, ids[0], t0.Add(time.Hour), 10*time.Minute)
		if err != nil || !wrote {
			t.Errorf("first RecordPull: wrote %v, %v", wrote, err)
		}
		if wrote, _ := tx.RecordPull(ctx, ids[0], t0.Add(time.Hour+5*time.Minute), 10*time.Minute); wrote {
			t.Error("RecordPull within the interval wrote")
		}
		if wrote, _ := tx.RecordPull(ctx, ids[0], t0.Add(time.Hour+10*time.Minute), 10*time.Minute); !wrote {
			t.Error("RecordPull one interval later did not write")
		}
		ended, err := tx.EndTags(ctx, ids[1:], t0.Add(2*time.Hour), meta.ActorCollector, meta.CausePolicy, "team:keep-1")
		if err != nil {
			return err
		}
		if len(ended) != 2 {
			t.Fatalf("EndTags: ended %d rows, want 2", len(ended))
		}
		for _, tg := range ended {
			if tg.End == nil || !tg.End.Equal(t0.Add(2*time.Hour)) || tg.EndCause != meta.CausePolicy || tg.EndRule != "team:keep-1" || tg.EndActor != meta.ActorCollector {
				t.Errorf("ended row %+v", tg)
			}
		}
		again, err := tx.EndTags(ctx, ids[1:], t0.Add(3*time.Hour), meta.ActorCollector, meta.CausePolicy, "x")
		if err != nil || len(again) != 0 {
			t.Errorf("EndTags of ended rows: got %d rows, %v; want none", len(again), err)
		}
		if wrote, _ := tx.RecordPull(ctx, ids[1], t0.Add(4*time.Hour), time.Minute); wrote {
			t.Error("RecordPull of an ended row wrote")
		}
		return nil
	})
	view(t, s, func(tx meta.Tx) error {
		live, err := tx.LiveTags(ctx, r.ID, t0)
		if err != nil {
			return err
		}
		if len(live) != 2 || live[0].PulledAt == nil || !live[0].PulledAt.Equal(t0.Add(time.Hour+10*time.Minute)) {
			t.Errorf("LiveTags after EndTags: got %+v, want a (pulled at +1h10m) and expiring", live)
		}
		for _, tt := range []struct {
			ns, repo string
			want     []int64
		}{
			{"", "", []int64{r.ID, other.ID}},
			{"team", "", []int64{r.ID}},
			{"other", "other/x", []int64{other.ID}},
			{"team", "team/none", nil},
		} {
			got, err := tx.RepositoryIDs(ctx, tt.ns, tt.repo, 0, 10)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("RepositoryIDs(%q, %q) (-want +got):\n%s", tt.ns, tt.repo, diff)
			}
		}
		return nil
	})
}

// ExpediteReview brings a pending review earlier, never later.
func testExpediteReview(t *testing.T, s meta.Store) {
	ctx := context.Background()
	obj := review.PolicyObject(7)
	at := func() time.Time {
		var after time.Time
		view(t, s, func(tx meta.Tx) error {
			var err error
			after, _, err = tx.PendingReview(ctx, review.KindPolicy, obj)
			return err
		})
		return after
	}
	update(t, s, func(tx meta.Tx) error {
		return tx.ExpediteReview(ctx, meta.Review{Kind: review.KindPolicy, Object: obj, ReviewAfter: t0.Add(time.Hour), Cause: review.CausePolicyDue})
	})
	if got := at(); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("new review due %v, want %v", got, t0.Add(time.Hour))
	}
	update(t, s, func(tx meta.Tx) error {
		return tx.ExpediteReview(ctx, meta.Review{Kind: review.KindPolicy, Object: obj, ReviewAfter: t0.Add(2 * time.Hour), Cause: review.CausePolicyDue})
	})
	if got := at(); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("a later ExpediteReview moved the review to %v", got)
	}
	update(t, s, func(tx meta.Tx) error {
		return tx.ExpediteReview(ctx, meta.Review{Kind: review.KindPolicy, Object: obj, ReviewAfter: t0, Cause: review.CauseTagPushed})
	})
	if got := at(); !got.Equal(t0) {
		t.Errorf("an earlier ExpediteReview left the review at %v, want %v", got, t0)
	}
}
