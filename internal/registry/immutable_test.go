package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/policy"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// forEachBackend runs fn on SQLite and on PostgreSQL (skipped when not
// configured); bytes live on the filesystem, which immutability and pull
// tracking never touch.
func forEachBackend(t *testing.T, fn func(t *testing.T, e *registryenv.Env), opts ...registryenv.Option) {
	t.Helper()
	for _, name := range []string{registryenv.SQLite, registryenv.Postgres} {
		t.Run(name, func(t *testing.T) { fn(t, registryenv.New(t, registryenv.ByName(t, name), opts...)) })
	}
}

// withCollector serves the env with a collector, for the purge endpoint.
func withCollector(t *testing.T, e *registryenv.Env) {
	t.Helper()
	e.Serve(api.Options{Collector: gc.New(e.Store, e.Blobs, gc.Options{Now: e.Clock.Now, Policy: review.DefaultPolicy()})})
}

// saveRule saves p as registry.SetPolicy will: the namespace row locked
// FOR UPDATE, then the policy.
func saveRule(t *testing.T, e *registryenv.Env, p meta.TagPolicy) {
	t.Helper()
	if _, err := policy.Compile(p); err != nil {
		t.Fatal(err)
	}
	err := e.Store.Update(e.Ctx, func(tx meta.Tx) error {
		if _, err := tx.Namespace(e.Ctx, p.Namespace, meta.LockUpdate); err != nil {
			return err
		}
		_, _, err := tx.PutPolicy(e.Ctx, p)
		return err
	})
	if err != nil {
		t.Fatalf("saving policy %s: %v", p.Ref(), err)
	}
}

func deleteRule(t *testing.T, e *registryenv.Env, p meta.TagPolicy) {
	t.Helper()
	err := e.Store.Update(e.Ctx, func(tx meta.Tx) error {
		if _, err := tx.Namespace(e.Ctx, p.Namespace, meta.LockUpdate); err != nil {
			return err
		}
		_, err := tx.DeletePolicy(e.Ctx, p.Namespace, p.Repository, p.Name)
		return err
	})
	if err != nil {
		t.Fatalf("deleting policy %s: %v", p.Ref(), err)
	}
}

// ociError is the first error of an OCI error body.
func ociError(t *testing.T, body []byte) (code, message string) {
	t.Helper()
	var b struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &b); err != nil || len(b.Errors) == 0 {
		t.Fatalf("not an OCI error body: %s", body)
	}
	return b.Errors[0].Code, b.Errors[0].Message
}

// history reads the history of repo:tag through the management API.
func history(t *testing.T, e *registryenv.Env, repo, tag string) []api.TagLifetime {
	t.Helper()
	resp, body := e.Do("GET", "/berth/v1/repositories/"+repo+"/_tags/"+tag+"/history", nil, nil)
	e.Expect(resp, body, http.StatusOK)
	var h api.TagHistory
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("history of %s:%s: %v\n%s", repo, tag, err, body)
	}
	return h.Lifetimes
}

// denied checks that resp is 403 DENIED naming tag and rule as immutable.
func denied(t *testing.T, what string, resp *http.Response, body []byte, tag, rule string) {
	t.Helper()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("%s: got status %d, want 403; body %s", what, resp.StatusCode, body)
		return
	}
	code, msg := ociError(t, body)
	if want := fmt.Sprintf("tag %q is immutable (rule %s)", tag, rule); code != "DENIED" || !strings.HasPrefix(msg, want) {
		t.Errorf("%s: got %s %q, want DENIED with a message starting %q", what, code, msg, want)
	}
}

// TestImmutableTags: an immutable rule, at namespace or repository scope,
// matching its pattern or not, refuses every write that would end or move
// a live tag it covers — and nothing else; deleting the rule lifts it.
func TestImmutableTags(t *testing.T) {
	tests := []struct {
		name string
		rule meta.TagPolicy
		// otherCovered: the rule also covers v1 of acme/other.
		otherCovered bool
	}{
		{"namespace", meta.TagPolicy{Namespace: "acme", Name: "releases", Kind: meta.PolicyImmutable, TagPattern: `^v[0-9]`, PatternMatches: true}, true},
		{"repository", meta.TagPolicy{Namespace: "acme", Repository: "acme/app", Name: "releases", Kind: meta.PolicyImmutable, TagPattern: `^v[0-9]`, PatternMatches: true}, false},
		{"not matching", meta.TagPolicy{Namespace: "acme", Name: "all-but-latest", Kind: meta.PolicyImmutable, TagPattern: `^latest`, PatternMatches: false}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
				withCollector(t, e)
				ref := tt.rule.Ref()
				a := e.PushImage("acme/app", "", []byte("layer a"))
				b := e.PushImage("acme/app", "", []byte("layer b"))
				e.Tag("acme/app", "v1", b)
				e.Tag("acme/app", "v1", a) // v1: b (ended, restorable), then a (live)
				e.PushImage("acme/other", "v1", []byte("layer o"))
				oNext := e.PushImage("acme/other", "", []byte("layer o2"))
				saveRule(t, e, tt.rule)

				// Creating a covered tag is how a release is made; a
				// re-PUT of its digest changes nothing.
				if st, body := e.PutManifest("acme/app", "v2", a.MediaType, a.Body); st != http.StatusCreated {
					t.Fatalf("creating v2 under the rule: got %d, want 201; %s", st, body)
				}
				if st, body := e.PutManifest("acme/app", "v1", a.MediaType, a.Body); st != http.StatusCreated {
					t.Fatalf("re-PUT of v1's digest: got %d, want 201; %s", st, body)
				}
				if h := history(t, e, "acme/app", "v1"); len(h) != 2 || !h[0].Live || h[0].Digest != a.Digest {
					t.Fatalf("history of v1 after a re-PUT: got %+v, want 2 lifetimes, live on %s", h, a.Digest)
				}

				resp, body := e.Do("PUT", "/v2/acme/app/manifests/v1", map[string]string{"Content-Type": b.MediaType}, b.Body)
				denied(t, "moving v1", resp, body, "v1", ref)
				resp, body = e.Do("POST", "/berth/v1/repositories/acme/app/_tags/v1/restore", nil, []byte(`{"digest":"`+b.Digest.String()+`"}`))
				denied(t, "restoring v1 over its live lifetime", resp, body, "v1", ref)
				resp, body = e.Do("DELETE", "/v2/acme/app/manifests/v1", nil, nil)
				denied(t, "deleting v1", resp, body, "v1", ref)
				resp, body = e.Do("DELETE", "/v2/acme/app/manifests/"+a.Digest.String(), nil, nil)
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "is immutable (rule "+ref+")") {
					t.Errorf("deleting v1's manifest by digest: got %d %s, want 403 naming the rule", resp.StatusCode, body)
				}
				resp, body = e.Do("PUT", "/berth/v1/repositories/acme/app/_tags/v1/expiry", nil, []byte(`{"in":"1h"}`))
				denied(t, "giving v1 an expiry", resp, body, "v1", ref)
				resp, body = e.Do("DELETE", "/berth/v1/repositories/acme/app/_tags/v1/expiry", nil, nil)
				e.Expect(resp, body, http.StatusOK) // clearing none is harmless
				resp, body = e.Do("POST", "/berth/v1/purge/acme/app", nil, nil)
				denied(t, "purging acme/app", resp, body, "v1", ref)
				resp, body = e.Do("POST", "/berth/v1/purge/acme", nil, nil)
				if code, msg := ociError(t, body); resp.StatusCode != http.StatusForbidden || code != "DENIED" || !strings.Contains(msg, "(rule "+ref+")") {
					t.Errorf("purging acme: got %d %s %q, want 403 DENIED naming the rule", resp.StatusCode, code, msg)
				}
				for _, repo := range []string{"acme/app", "acme/other"} {
					if resp, body := e.Do("GET", "/v2/"+repo+"/manifests/v1", nil, nil); resp.StatusCode != http.StatusOK {
						t.Errorf("GET %s:v1 after the refused purges: got %d, want 200; %s", repo, resp.StatusCode, body)
					}
				}
				if h := history(t, e, "acme/app", "v1"); len(h) != 2 || !h[0].Live || h[0].Digest != a.Digest || h[0].ExpiresAt != nil {
					t.Fatalf("history of v1 after the refusals: got %+v, want it unchanged, live on %s without expiry", h, a.Digest)
				}

				// A tag the rule does not cover is free.
				e.Tag("acme/app", "latest", a)
				e.Tag("acme/app", "latest", b)
				resp, body = e.Do("DELETE", "/v2/acme/app/manifests/latest", nil, nil)
				e.Expect(resp, body, http.StatusAccepted)
				st, body := e.PutManifest("acme/other", "v1", oNext.MediaType, oNext.Body)
				switch {
				case tt.otherCovered && st != http.StatusForbidden:
					t.Errorf("moving acme/other:v1: got %d, want 403; %s", st, body)
				case !tt.otherCovered && st != http.StatusCreated:
					t.Errorf("moving acme/other:v1, outside the repository's rule: got %d, want 201; %s", st, body)
				}

				// Deleting the rule lifts immutability.
				deleteRule(t, e, tt.rule)
				e.Tag("acme/app", "v1", b)
				resp, body = e.Do("DELETE", "/v2/acme/app/manifests/v2", nil, nil)
				e.Expect(resp, body, http.StatusAccepted)
				resp, body = e.Do("PUT", "/berth/v1/repositories/acme/app/_tags/v1/expiry", nil, []byte(`{"in":"1h"}`))
				e.Expect(resp, body, http.StatusOK)
				resp, body = e.Do("POST", "/berth/v1/purge/acme", nil, nil)
				e.Expect(resp, body, http.StatusOK)
			})
		})
	}
}

// TestImmutableExpiryLabel: an expiry label on push gives a covered tag no
// expiry (it would end it); an uncovered tag gets its expiry.
func TestImmutableExpiryLabel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		e.PushImage("acme/app", "seed", []byte("seed")) // creates the namespace
		saveRule(t, e, meta.TagPolicy{Namespace: "acme", Name: "releases", Kind: meta.PolicyImmutable, TagPattern: `^v`, PatternMatches: true})
		cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"berth.expires-after":"2h"}}}`)
		cd := e.PushBlob("acme/app", cfg)
		ld := e.PushBlob("acme/app", []byte("labelled layer"))
		m := registryenv.ImageManifest(cd, int64(len(cfg)), map[digest.Digest]int64{ld: int64(len("labelled layer"))})
		for _, tag := range []string{"v1", "pr-1"} {
			if st, body := e.PutManifest("acme/app", tag, registryenv.MediaImage, m); st != http.StatusCreated {
				t.Fatalf("PUT %s: got %d, want 201; %s", tag, st, body)
			}
		}
		if h := history(t, e, "acme/app", "v1"); len(h) != 1 || h[0].ExpiresAt != nil {
			t.Errorf("v1, immutable, pushed with an expiry label: got %+v, want one lifetime without expiry", h)
		}
		want := e.Clock.Now().Add(2 * time.Hour)
		if h := history(t, e, "acme/app", "pr-1"); len(h) != 1 || h[0].ExpiresAt == nil || !h[0].ExpiresAt.Equal(want) {
			t.Errorf("pr-1, not covered, pushed with an expiry label: got %+v, want it to expire at %s", h, want)
		}
	})
}

// TestImmutableRuleRace: saving an immutable rule (namespace row locked FOR
// UPDATE, as registry.SetPolicy will) while tags are moved: no move of the
// tag commits after the rule — in the history, no row was inserted after
// the rule's transaction locked the namespace — and moves begun after its
// commit are refused.
func TestImmutableRuleRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		// Each mover its own two manifests: concurrent re-PUTs of one
		// manifest deadlock on PostgreSQL (each locks the row FOR SHARE,
		// then updates it), which is not this test's race.
		const movers, late = 3, 30
		var ms [movers][2]registryenv.Manifest
		for i := range movers {
			for j := range 2 {
				ms[i][j] = e.PushImage("acme/app", "", []byte(fmt.Sprintf("race %d %d", i, j)))
			}
		}
		e.Tag("acme/app", "v1", ms[0][0])
		ctx := context.Background()
		rule := meta.TagPolicy{Namespace: "acme", Name: "releases", Kind: meta.PolicyImmutable, PatternMatches: true}
		var moved atomic.Int64
		var saving atomic.Bool
		var committed atomic.Pointer[time.Time]
		var wg sync.WaitGroup
		errs := make(chan error, movers)
		refused := make([]int, movers)
		for i := range movers {
			wg.Go(func() {
				// Alternate the digests until late moves have begun after
				// the rule's commit returned.
				for k, n := 0, 0; n < late; k++ {
					c := committed.Load()
					m := ms[i][k%2]
					_, err := e.Registry.PutManifest(ctx, "acme/app", "v1", m.MediaType, m.Body)
					switch {
					case err == nil:
						moved.Add(1)
					case errors.Is(err, registry.ErrImmutable) && saving.Load():
						refused[i]++
					default:
						errs <- fmt.Errorf("mover %d: %w", i, err)
						return
					}
					if c != nil {
						n++
					}
				}
			})
		}
		for moved.Load() < 10 {
			time.Sleep(time.Millisecond)
		}
		// The rule's transaction stays open a while after it locked the
		// namespace: moves begun meanwhile wait for its commit, and must
		// see the rule. Once it holds the lock, every move that took the
		// namespace's lock before it has committed: a tag row inserted
		// after that (a higher id than any it sees) is a move that did
		// not see the rule.
		saving.Store(true)
		var lastID int64
		err := e.Store.Update(ctx, func(tx meta.Tx) error {
			if _, err := tx.Namespace(ctx, rule.Namespace, meta.LockUpdate); err != nil {
				return err
			}
			rows, err := tagRows(ctx, tx)
			if err != nil {
				return err
			}
			for _, r := range rows {
				lastID = max(lastID, r.ID)
			}
			if _, _, err := tx.PutPolicy(ctx, rule); err != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
			return nil
		})
		if err != nil {
			t.Fatalf("saving the rule: %v", err)
		}
		now := time.Now()
		committed.Store(&now)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		total := 0
		for _, n := range refused {
			total += n
		}
		if total == 0 {
			t.Fatal("no move was refused after the rule was saved")
		}
		var h []meta.Tag
		err = e.Store.View(ctx, func(tx meta.Tx) (err error) {
			h, err = tagRows(ctx, tx)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		live := 0
		for _, l := range h {
			if l.ID > lastID {
				t.Errorf("tag row %d (on %s, started %s) was inserted after the rule's transaction locked the namespace (last row then: %d)", l.ID, l.Manifest, l.Start, lastID)
			}
			if l.End == nil {
				live++
			}
		}
		if live != 1 || len(h) < 2 {
			t.Errorf("history: %d lifetimes, %d live; want moves before the rule, and one live lifetime", len(h), live)
		}
		t.Logf("%d lifetimes; %d moves refused after the rule", len(h), total)
	}, func(o *registryenv.Options) { o.Registry.Now = time.Now })
}

// tagRows reads every row of acme/app:v1.
func tagRows(ctx context.Context, tx meta.Tx) ([]meta.Tag, error) {
	rp, err := tx.Repository(ctx, "acme/app", meta.LockNone)
	if err != nil {
		return nil, err
	}
	return tx.TagHistory(ctx, rp.ID, "v1", 100000)
}
