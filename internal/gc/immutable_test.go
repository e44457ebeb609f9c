package gc_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
)

// An immutable attachment tag outlives its subject (docs/design/policies.md,
// "Immutable tags"): when the subject is collected, its other attachment
// tags end and the covered one stays live and pullable; the dry run says
// the same.
func TestImmutableAttachmentOutlivesSubject(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		a := h.pushAttached("ns/app", "v1")
		err := h.store.Update(h.ctx, func(tx meta.Tx) error {
			if _, err := tx.Namespace(h.ctx, "ns", meta.LockUpdate); err != nil {
				return err
			}
			_, _, err := tx.PutPolicy(h.ctx, meta.TagPolicy{Namespace: "ns", Name: "signatures", Kind: meta.PolicyImmutable,
				TagPattern: `\.sig$`, PatternMatches: true})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		sig := "sha256-" + a.subject.Hex + ".sig"
		h.deleteRef(h.tag("ns/app", "v1"))
		h.advance(retention + time.Minute)

		dry, err := h.gc.RunOnce(h.ctx, gc.RunOptions{DryRun: true})
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
		real := h.collect()
		want := slices.DeleteFunc(a.wantEnds(), func(e string) bool { return strings.HasPrefix(e, "ns/app:"+sig+" ") })
		if got := endKeys(real.Ends); !slices.Equal(got, want) {
			t.Errorf("real run ended\n%v\nwant\n%v", got, want)
		}
		if got := endKeys(dry.Ends); !slices.Equal(got, want) {
			t.Errorf("dry run said it would end\n%v\nwant\n%v", got, want)
		}
		h.assertGone("ns/app", []v1.Hash{a.subject})
		h.assertLive("ns/app", sig)
		h.assertPullable(h.tag("ns/app", sig))
		h.settle()
		h.assertFixedPoint(nil)
	})
}
