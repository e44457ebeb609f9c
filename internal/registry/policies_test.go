package registry_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// eachMetaBackend runs fn on SQLite and PostgreSQL (policies touch no
// bytes: S3 adds nothing).
func eachMetaBackend(t *testing.T, fn func(t *testing.T, e *registryenv.Env)) {
	for _, name := range []string{registryenv.SQLite, registryenv.Postgres} {
		t.Run(name, func(t *testing.T) { fn(t, registryenv.New(t, registryenv.ByName(t, name))) })
	}
}

// policyReviews lists the repositories of names with a policy review
// pending, due at or before now, and deletes every policy review (so the
// next check starts from none).
func policyReviews(t *testing.T, e *registryenv.Env, names ...string) []string {
	t.Helper()
	var due []string
	err := e.Store.Update(e.Ctx, func(tx meta.Tx) error {
		due = nil
		for _, n := range names {
			r, err := tx.Repository(e.Ctx, n, meta.LockNone)
			if err != nil {
				return err
			}
			obj := review.PolicyObject(r.ID)
			after, pending, err := tx.PendingReview(e.Ctx, review.KindPolicy, obj)
			if err != nil {
				return err
			}
			if pending && !after.After(e.Clock.Now()) {
				due = append(due, n)
			}
			if err := tx.DeleteReview(e.Ctx, review.KindPolicy, obj); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return due
}

func TestSetPolicyValidation(t *testing.T) {
	eachMetaBackend(t, func(t *testing.T, e *registryenv.Env) {
		for _, tt := range []struct {
			p    meta.TagPolicy
			want error
		}{
			{meta.TagPolicy{Namespace: "acme", Name: "Keep", Kind: meta.PolicyKeepNewest, Count: 3}, registry.ErrInvalidArgument},
			{meta.TagPolicy{Namespace: "acme", Name: "keep", Kind: "keep_some", Count: 3}, registry.ErrInvalidArgument},
			{meta.TagPolicy{Namespace: "acme", Name: "keep", Kind: meta.PolicyKeepNewest, Count: -1}, registry.ErrInvalidArgument},
			{meta.TagPolicy{Namespace: "acme", Name: "old", Kind: meta.PolicyPruneOlderThan}, registry.ErrInvalidArgument},
			{meta.TagPolicy{Namespace: "acme", Name: "old", Kind: meta.PolicyPruneOlderThan, Span: time.Hour, TagPattern: "(", PatternMatches: true}, registry.ErrInvalidArgument},
			{meta.TagPolicy{Name: "frozen", Kind: meta.PolicyImmutable, PatternMatches: true}, registry.ErrInvalidArgument},
			{meta.TagPolicy{Namespace: "acme", Repository: "other/app", Name: "keep", Kind: meta.PolicyKeepNewest, Count: 3}, registry.ErrInvalidArgument},
			{meta.TagPolicy{Namespace: "acme/x", Repository: "acme/x/app", Name: "keep", Kind: meta.PolicyKeepNewest, Count: 3}, registry.ErrInvalidArgument},
			{meta.TagPolicy{Namespace: "acme/x", Name: "keep", Kind: meta.PolicyKeepNewest, Count: 3}, registry.ErrNameInvalid},
			{meta.TagPolicy{Namespace: "Acme", Name: "keep", Kind: meta.PolicyKeepNewest, Count: 3}, registry.ErrNameInvalid},
		} {
			_, _, _, err := e.Registry.SetPolicy(e.Ctx, tt.p)
			if !errors.Is(err, tt.want) {
				t.Errorf("SetPolicy(%+v): got %v, want %v", tt.p, err, tt.want)
			}
		}
		ps, err := e.Registry.Policies(e.Ctx, meta.PolicyFilter{})
		if err != nil || len(ps) != 0 {
			t.Errorf("policies after refusals: got %v, %v, want none", ps, err)
		}
	})
}

// TestSetPolicy: saving records who saved it, replaces a rule of the same
// name in place, schedules a policy review for exactly the repositories of
// its scope, and accepts a namespace that does not exist yet.
func TestSetPolicy(t *testing.T) {
	eachMetaBackend(t, func(t *testing.T, e *registryenv.Env) {
		for _, r := range []string{"acme/app", "acme/lib", "other/x"} {
			e.PushImage(r, "v1", []byte("layer of "+r))
		}
		all := []string{"acme/app", "acme/lib", "other/x"}
		if got := policyReviews(t, e, all...); len(got) != 0 {
			t.Fatalf("policy reviews before any policy: %v", got)
		}
		ctx := registry.WithActor(e.Ctx, meta.UserActor("alice"))
		p, created, cleared, err := e.Registry.SetPolicy(ctx, meta.TagPolicy{Namespace: "acme", Name: "keep", Kind: meta.PolicyKeepNewest, Count: 10, PatternMatches: true})
		if err != nil || !created || cleared != 0 {
			t.Fatalf("SetPolicy: got created %v, cleared %d, %v", created, cleared, err)
		}
		if p.ID == 0 || p.CreatedBy != meta.UserActor("alice") || !p.CreatedAt.Equal(e.Clock.Now()) {
			t.Errorf("saved policy: got %+v, want an id, created by user:alice now", p)
		}
		if diff := cmp.Diff([]string{"acme/app", "acme/lib"}, policyReviews(t, e, all...)); diff != "" {
			t.Errorf("reviews of a namespace policy (-want +got):\n%s", diff)
		}
		again, created, _, err := e.Registry.SetPolicy(e.Ctx, meta.TagPolicy{Namespace: "acme", Name: "keep", Kind: meta.PolicyKeepNewest, Count: 3, PatternMatches: true})
		if err != nil || created || again.ID != p.ID || again.Count != 3 || again.CreatedBy != meta.ActorOperator {
			t.Errorf("replacing: got %+v, created %v, %v; want id %d with count 3 by operator", again, created, err, p.ID)
		}
		policyReviews(t, e, all...)

		if _, _, _, err := e.Registry.SetPolicy(e.Ctx, meta.TagPolicy{Namespace: "other", Repository: "other/x", Name: "old",
			Kind: meta.PolicyPruneOlderThan, Span: 48 * time.Hour, PatternMatches: true}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"other/x"}, policyReviews(t, e, all...)); diff != "" {
			t.Errorf("reviews of a repository policy (-want +got):\n%s", diff)
		}
		if _, _, _, err := e.Registry.SetPolicy(e.Ctx, meta.TagPolicy{Name: "default", Kind: meta.PolicyKeepNewest, Count: 100, PatternMatches: true}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(all, policyReviews(t, e, all...)); diff != "" {
			t.Errorf("reviews of a registry policy (-want +got):\n%s", diff)
		}

		// A policy may precede its namespace's first push.
		fresh, created, _, err := e.Registry.SetPolicy(e.Ctx, meta.TagPolicy{Namespace: "fresh", Name: "keep", Kind: meta.PolicyKeepNewest, Count: 1, PatternMatches: true})
		if err != nil || !created || fresh.Ref() != "fresh:keep" {
			t.Errorf("policy of a namespace that does not exist: got %+v, %v, %v", fresh, created, err)
		}
		if got := policyReviews(t, e, all...); len(got) != 0 {
			t.Errorf("a policy of an empty namespace scheduled %v", got)
		}

		// Delete: reviews again, then unknown.
		d, err := e.Registry.DeletePolicy(e.Ctx, "acme", "", "keep")
		if err != nil || d.ID != p.ID {
			t.Fatalf("DeletePolicy: got %+v, %v", d, err)
		}
		if diff := cmp.Diff([]string{"acme/app", "acme/lib"}, policyReviews(t, e, all...)); diff != "" {
			t.Errorf("reviews of a deletion (-want +got):\n%s", diff)
		}
		if _, err := e.Registry.DeletePolicy(e.Ctx, "acme", "", "keep"); !errors.Is(err, registry.ErrPolicyUnknown) {
			t.Errorf("deleting it again: got %v, want ErrPolicyUnknown", err)
		}
		if _, err := e.Registry.Policy(e.Ctx, "acme", "", "keep"); !errors.Is(err, registry.ErrPolicyUnknown) {
			t.Errorf("reading it: got %v, want ErrPolicyUnknown", err)
		}
		got, err := e.Registry.Policy(e.Ctx, "other", "other/x", "old")
		if err != nil || got.Span != 48*time.Hour {
			t.Errorf("Policy(other/x:old): got %+v, %v", got, err)
		}
		var refs []string
		ps, err := e.Registry.Policies(e.Ctx, meta.PolicyFilter{Repository: "other/x", Registry: true})
		for _, p := range ps {
			refs = append(refs, p.Ref())
		}
		if diff := cmp.Diff([]string{"*:default", "other/x:old"}, refs); err != nil || diff != "" {
			t.Errorf("Policies(other/x) (-want +got): %v\n%s", err, diff)
		}
	})
}

// TestImmutablePolicyClearsExpiries: an immutable rule, when saved,
// clears the expiry of the live tags it covers and of no others.
func TestImmutablePolicyClearsExpiries(t *testing.T) {
	eachMetaBackend(t, func(t *testing.T, e *registryenv.Env) {
		for _, tag := range []string{"v1", "v2", "build-1"} {
			e.PushImage("acme/app", tag, []byte("layer "+tag))
		}
		e.PushImage("acme/lib", "v1", []byte("lib layer"))
		in := 48 * time.Hour
		for _, ref := range [][2]string{{"acme/app", "v1"}, {"acme/app", "build-1"}, {"acme/lib", "v1"}} {
			if _, err := e.Registry.SetTagExpiry(e.Ctx, ref[0], ref[1], registry.Expiry{In: &in}); err != nil {
				t.Fatal(err)
			}
		}
		_, _, cleared, err := e.Registry.SetPolicy(e.Ctx, meta.TagPolicy{Namespace: "acme", Repository: "acme/app", Name: "release",
			Kind: meta.PolicyImmutable, TagPattern: "^v[0-9]", PatternMatches: true})
		if err != nil || cleared != 1 {
			t.Fatalf("SetPolicy(immutable): got cleared %d, %v; want 1 (acme/app:v1)", cleared, err)
		}
		for _, c := range []struct {
			repo, tag string
			expires   bool
		}{{"acme/app", "v1", false}, {"acme/app", "v2", false}, {"acme/app", "build-1", true}, {"acme/lib", "v1", true}} {
			h, err := e.Registry.TagHistory(e.Ctx, c.repo, c.tag)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.Lifetimes[0].ExpiresAt != nil; got != c.expires {
				t.Errorf("%s:%s expires: got %v, want %v", c.repo, c.tag, got, c.expires)
			}
		}
	})
}

// TestSetPolicyLocksNamespace: saving a rule waits for a transaction that
// holds the namespace row FOR SHARE, as every tag write does
// (EnsureRepository), so a tag write in flight finishes first and every
// later one sees the rule.
func TestSetPolicyLocksNamespace(t *testing.T) {
	eachMetaBackend(t, func(t *testing.T, e *registryenv.Env) {
		e.PushImage("acme/app", "v1", []byte("layer"))
		holding, release := make(chan struct{}), make(chan struct{})
		writer := make(chan error, 1)
		go func() {
			writer <- e.Store.Update(e.Ctx, func(tx meta.Tx) error {
				if _, err := tx.EnsureRepository(e.Ctx, "acme/app", e.Clock.Now()); err != nil {
					return err
				}
				close(holding)
				<-release
				return nil
			})
		}()
		<-holding
		saved := make(chan error, 1)
		go func() {
			_, _, _, err := e.Registry.SetPolicy(e.Ctx, meta.TagPolicy{Namespace: "acme", Name: "release", Kind: meta.PolicyImmutable, TagPattern: "^v", PatternMatches: true})
			saved <- err
		}()
		select {
		case err := <-saved:
			t.Fatalf("SetPolicy returned (%v) while a tag write held the namespace", err)
		case <-time.After(300 * time.Millisecond):
		}
		close(release)
		if err := <-writer; err != nil {
			t.Fatal(err)
		}
		if err := <-saved; err != nil {
			t.Fatalf("SetPolicy after the write: %v", err)
		}
	})
}

// sumBlobs adds the sizes of the distinct blobs of ms, leaving out skip.
func sumBlobs(t *testing.T, skip digest.Digest, ms ...registryenv.Manifest) int64 {
	t.Helper()
	all := map[digest.Digest]int64{}
	for _, m := range ms {
		for d, n := range blobSizes(t, m) {
			all[d] = n
		}
	}
	var sum int64
	for d, n := range all {
		if d != skip {
			sum += n
		}
	}
	return sum
}

type prunedRef struct {
	Repo, Tag, Rule string
	This            bool
}

func prunedRefs(pv registry.Preview) []prunedRef {
	var out []prunedRef
	for _, p := range pv.Tags {
		out = append(out, prunedRef{p.Repository, p.Name, p.Rule, p.ThisRule})
	}
	return out
}

// TestPreviewPolicy: the preview lists what the rules would prune with the
// rule saved, and counts the bytes only the pruned tags reach: an index's
// children and a referrer included, a layer another repository uses
// left out, attachments and immutable tags protected.
func TestPreviewPolicy(t *testing.T) {
	eachMetaBackend(t, func(t *testing.T, e *registryenv.Env) {
		step := func() { e.Clock.Add(time.Minute) }
		shared := []byte("a base layer other/keep uses too")
		c1 := e.PushImage("acme/app", "", []byte("child layer 1"))
		c2 := e.PushImage("acme/app", "", []byte("child layer 2"))
		e.PushIndex("acme/app", "multi", c1, c2)
		step()
		img1 := e.PushImage("acme/app", "v1", shared, []byte("layer 1"))
		e.PushReferrer("acme/app", img1, "application/vnd.example.sig", []byte("signature of v1"))
		step()
		img2 := e.PushImage("acme/app", "v2", []byte("layer 2"))
		step()
		e.PushImage("acme/app", "v3", []byte("layer 3"))
		step()
		img4 := e.PushImage("acme/app", "v4", []byte("layer 4"))
		step()
		// A cosign signature tag of v4, the newest tag: protected while
		// v4's manifest is stored, so neither pruned nor counted.
		e.PushImage("acme/app", "sha256-"+img4.Digest.Encoded()+".sig", []byte("cosign signature"))
		keep := e.PushImage("other/keep", "latest", shared)
		sharedDigest := digest.FromBytes(shared)

		keep2 := meta.TagPolicy{Namespace: "acme", Name: "keep", Kind: meta.PolicyKeepNewest, Count: 2, PatternMatches: true}
		pv, err := e.Registry.PreviewPolicy(e.Ctx, keep2)
		if err != nil {
			t.Fatal(err)
		}
		want := []prunedRef{{"acme/app", "multi", "acme:keep", true}, {"acme/app", "v1", "acme:keep", true}, {"acme/app", "v2", "acme:keep", true}}
		if diff := cmp.Diff(want, prunedRefs(pv)); diff != "" {
			t.Errorf("keep 2 (-want +got):\n%s", diff)
		}
		// Freed: the index and its two children, v1 and its signature, v2.
		// The shared layer stays (other/keep uses it); the referrer's
		// empty config "{}" is its own.
		wantBytes := sumBlobs(t, sharedDigest, c1, c2, img1, img2) + int64(len("{}")+len("signature of v1"))
		if pv.Manifests != 6 || pv.Bytes != wantBytes || pv.Repositories != 1 || pv.TagsExamined != 6 || pv.Truncated {
			t.Errorf("keep 2: got %d manifests, %d bytes, %d repositories, %d tags (truncated %v); want 6, %d, 1, 6, false",
				pv.Manifests, pv.Bytes, pv.Repositories, pv.TagsExamined, pv.Truncated, wantBytes)
		}
		for _, p := range pv.Tags {
			if p.Name == "v1" && (p.Manifest != img1.Digest || p.PulledAt != nil || p.Start.IsZero()) {
				t.Errorf("v1 in the preview: got %+v, want its manifest, its start and no pull", p)
			}
		}

		// Saved as keep 4, previewed as keep 2: the rule given replaces
		// the saved one of its name. Without a kind, the saved one.
		if _, _, _, err := e.Registry.SetPolicy(e.Ctx, meta.TagPolicy{Namespace: "acme", Name: "keep", Kind: meta.PolicyKeepNewest, Count: 4, PatternMatches: true}); err != nil {
			t.Fatal(err)
		}
		again, err := e.Registry.PreviewPolicy(e.Ctx, keep2)
		if err != nil || len(again.Tags) != 3 || again.Bytes != wantBytes {
			t.Errorf("keep 2 over a saved keep 4: got %v (%d bytes), %v; want 3 tags, %d bytes", prunedRefs(again), again.Bytes, err, wantBytes)
		}
		saved, err := e.Registry.PreviewPolicy(e.Ctx, meta.TagPolicy{Namespace: "acme", Name: "keep"})
		if err != nil || saved.Policy.Count != 4 {
			t.Fatalf("the saved rule: got %+v, %v", saved.Policy, err)
		}
		if diff := cmp.Diff([]prunedRef{{"acme/app", "multi", "acme:keep", true}}, prunedRefs(saved)); diff != "" {
			t.Errorf("saved keep 4 (-want +got):\n%s", diff)
		}
		if saved.Manifests != 3 || saved.Bytes != sumBlobs(t, "", c1, c2) {
			t.Errorf("saved keep 4: got %d manifests, %d bytes; want 3, %d", saved.Manifests, saved.Bytes, sumBlobs(t, "", c1, c2))
		}
		if _, err := e.Registry.PreviewPolicy(e.Ctx, meta.TagPolicy{Namespace: "acme", Name: "nope"}); !errors.Is(err, registry.ErrPolicyUnknown) {
			t.Errorf("previewing an unknown saved rule: got %v, want ErrPolicyUnknown", err)
		}

		// An unnamed rule adds to the saved ones: the saved keep 4 still
		// prunes multi, named by its rule.
		old := meta.TagPolicy{Namespace: "acme", Repository: "acme/app", Kind: meta.PolicyPruneOlderThan, Span: 150 * time.Second, TagPattern: "^v", PatternMatches: true}
		pv, err = e.Registry.PreviewPolicy(e.Ctx, old)
		if err != nil {
			t.Fatal(err)
		}
		want = []prunedRef{{"acme/app", "multi", "acme:keep", false}, {"acme/app", "v1", "acme/app:(unsaved)", true}, {"acme/app", "v2", "acme/app:(unsaved)", true}}
		if diff := cmp.Diff(want, prunedRefs(pv)); diff != "" {
			t.Errorf("an unnamed age rule beside keep 4 (-want +got):\n%s", diff)
		}

		// An immutable v1 is neither pruned nor counted, and keeps what it
		// reaches: keep 2 then prunes multi and v2 only.
		if _, _, _, err := e.Registry.SetPolicy(e.Ctx, meta.TagPolicy{Namespace: "acme", Repository: "acme/app", Name: "release",
			Kind: meta.PolicyImmutable, TagPattern: "^v1$", PatternMatches: true}); err != nil {
			t.Fatal(err)
		}
		pv, err = e.Registry.PreviewPolicy(e.Ctx, keep2)
		if err != nil {
			t.Fatal(err)
		}
		want = []prunedRef{{"acme/app", "multi", "acme:keep", true}, {"acme/app", "v2", "acme:keep", true}}
		if diff := cmp.Diff(want, prunedRefs(pv)); diff != "" {
			t.Errorf("keep 2 with v1 immutable (-want +got):\n%s", diff)
		}
		if wantBytes := sumBlobs(t, "", c1, c2, img2); pv.Manifests != 4 || pv.Bytes != wantBytes {
			t.Errorf("keep 2 with v1 immutable: got %d manifests, %d bytes; want 4, %d", pv.Manifests, pv.Bytes, wantBytes)
		}

		// A registry rule does not apply where a namespace has its own:
		// only other/keep is examined.
		pv, err = e.Registry.PreviewPolicy(e.Ctx, meta.TagPolicy{Name: "default", Kind: meta.PolicyKeepNewest, Count: 0, PatternMatches: true})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]prunedRef{{"other/keep", "latest", "*:default", true}}, prunedRefs(pv)); diff != "" || pv.Repositories != 1 {
			t.Errorf("registry keep 0 (%d repositories) (-want +got):\n%s", pv.Repositories, diff)
		}
		// other/keep's image shares its base layer with acme/app's v1,
		// which stays: only its config is freed.
		if want := sumBlobs(t, sharedDigest, keep); pv.Bytes != want {
			t.Errorf("registry keep 0: got %d bytes, want %d (the shared layer is v1's too)", pv.Bytes, want)
		}
		if _, err := e.Registry.PreviewPolicy(e.Ctx, meta.TagPolicy{Namespace: "acme", Name: "x", Kind: meta.PolicyKeepNewest, Count: -2}); !errors.Is(err, registry.ErrInvalidArgument) {
			t.Errorf("previewing an invalid rule: got %v, want ErrInvalidArgument", err)
		}
	})
}
