package registry_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// Usage reads the counters of the registry, a namespace and a repository
// with the quota in force on a namespace (its own, else the default); the
// overview lists the largest namespaces and sums the others.
func TestUsageRead(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		shared := []byte("a layer of every namespace")
		e.PushImage("big/app", "v1", shared, []byte("big one"), []byte("big two, the largest layer of all"))
		e.PushImage("big/other", "v1", shared)
		e.PushImage("mid/app", "v1", shared, []byte("mid one, a long layer"))
		e.PushImage("small/app", "v1", shared)

		for _, repo := range []string{"big/app", "mid/app"} {
			r, ns, g := usageOf(t, e, repo)
			for _, c := range []struct {
				scope string
				want  meta.Usage
			}{{"", g}, {repo[:3], ns}, {repo, r}} {
				u, err := usageIn(e, c.scope, false)
				if err != nil || u.Usage != c.want || u.Scope != c.scope || u.Split != nil {
					t.Errorf("usage of %q: got %+v, %v; want %+v", c.scope, u, err, c.want)
				}
			}
		}
		if u, _ := usageIn(e, "big", false); u.Quota != nil {
			t.Errorf("quota of big with none set: got %+v, want none", u.Quota)
		}
		def, err := e.Registry.SetQuota(e.Ctx, "", 1<<30, nil)
		if err != nil || !def.Default || def.Limit != 1<<30 {
			t.Fatalf("setting the default quota: %+v, %v", def, err)
		}
		warn := 80
		if _, err := e.Registry.SetQuota(registry.WithActor(e.Ctx, "user:alice"), "big", 1<<20, &warn); err != nil {
			t.Fatal(err)
		}
		big, _ := usageIn(e, "big", false)
		mid, _ := usageIn(e, "mid", false)
		if big.Quota == nil || big.QuotaDefault || big.Quota.Limit != 1<<20 || *big.Quota.WarnPercent != 80 || big.Quota.CreatedBy != "user:alice" {
			t.Errorf("quota of big: got %+v (default %v), want its own 1 MiB, 80%%, by user:alice", big.Quota, big.QuotaDefault)
		}
		if mid.Quota == nil || !mid.QuotaDefault || mid.Quota.Limit != 1<<30 {
			t.Errorf("quota of mid: got %+v (default %v), want the registry default", mid.Quota, mid.QuotaDefault)
		}

		o, err := e.Registry.UsageOverview(e.Ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		_, smallNS, g := usageOf(t, e, "small/app")
		if o.Registry != g || len(o.Top) != 2 || o.Top[0].Scope != "big" || o.Top[1].Scope != "mid" || o.Top[0].Usage != big.Usage {
			t.Errorf("overview: got %+v, want the registry %+v and big, mid largest first", o, g)
		}
		if o.Others != smallNS {
			t.Errorf("overview: others hold %+v, want small's %+v", o.Others, smallNS)
		}
		if o.Top[0].Quota == nil || o.Top[0].QuotaDefault || o.Top[1].Quota == nil || !o.Top[1].QuotaDefault {
			t.Errorf("overview quotas: got %+v and %+v, want big's own and the default for mid", o.Top[0].Quota, o.Top[1].Quota)
		}

		// A repository named like its namespace is read as a repository
		// when named so.
		e.PushImage("solo", "v1", []byte("solo layer"))
		r, _, _ := usageOf(t, e, "solo")
		if u, err := e.Registry.Usage(e.Ctx, "", "solo", false); err != nil || u.Usage != r || u.Scope != "solo" || u.Quota != nil {
			t.Errorf("usage of repository solo: %+v, %v; want %+v", u, err, r)
		}
		for _, c := range []struct {
			scope string
			want  error
		}{{"nobody", registry.ErrNamespaceUnknown}, {"big/nothing", registry.ErrNameUnknown}, {"Big", registry.ErrNameInvalid}} {
			if _, err := usageIn(e, c.scope, false); !errors.Is(err, c.want) {
				t.Errorf("usage of %q: got %v, want %v", c.scope, err, c.want)
			}
		}
	})
}

// Quotas are set, read, listed and deleted by namespace name (a namespace
// not pushed to yet too), the default as namespace ""; refusals say why; a
// quota set takes effect at the next push.
func TestQuotaAdmin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		e.PushImage("team/app", "v1", []byte("a layer"))
		_, ns, _ := usageOf(t, e, "team/app")
		pct := func(n int) *int { return &n }
		for _, c := range []struct {
			ns    string
			limit int64
			warn  *int
			want  error
		}{
			{"team", -1, nil, registry.ErrInvalidArgument},
			{"team", 10, pct(0), registry.ErrInvalidArgument},
			{"team", 10, pct(101), registry.ErrInvalidArgument},
			{"Team", 10, nil, registry.ErrNameInvalid},
			{"team/app", 10, nil, registry.ErrNameInvalid},
		} {
			if _, err := e.Registry.SetQuota(e.Ctx, c.ns, c.limit, c.warn); !errors.Is(err, c.want) {
				t.Errorf("SetQuota(%q, %d, %v): got %v, want %v", c.ns, c.limit, c.warn, err, c.want)
			}
		}
		if _, err := e.Registry.Quota(e.Ctx, "team"); !errors.Is(err, registry.ErrQuotaUnknown) {
			t.Errorf("quota of team with none: got %v, want ErrQuotaUnknown", err)
		}
		q, err := e.Registry.SetQuota(e.Ctx, "team", ns.Bytes+10, pct(50))
		if err != nil || q.Default || q.Used != ns.Bytes || q.Namespace != "team" {
			t.Fatalf("SetQuota(team): %+v, %v; want its own, %d bytes used", q, err, ns.Bytes)
		}
		if q, err := e.Registry.SetQuota(e.Ctx, "future", 1<<30, nil); err != nil || q.Used != 0 {
			t.Errorf("SetQuota of a namespace not pushed to yet: %+v, %v", q, err)
		}
		if _, err := e.Registry.SetQuota(e.Ctx, "", 1<<40, nil); err != nil {
			t.Fatal(err)
		}
		if q, err := e.Registry.Quota(e.Ctx, "other"); err != nil || !q.Default || q.Limit != 1<<40 {
			t.Errorf("quota of a namespace without one: %+v, %v; want the default", q, err)
		}
		qs, err := e.Registry.Quotas(e.Ctx)
		if err != nil || len(qs) != 3 || qs[0].Namespace != "" || !qs[0].Default || qs[1].Namespace != "future" || qs[2].Namespace != "team" || qs[2].Used != ns.Bytes {
			t.Errorf("quotas: %+v, %v; want the default, future, team", qs, err)
		}

		// In force at the next push: one more layer passes the limit.
		st, body := e.PutManifest("team/app", "v2", registryenv.MediaImage, registryenv.ImageManifest(e.PushBlob("team/app", []byte("more than ten bytes")), 19, nil))
		if st != http.StatusForbidden {
			t.Errorf("push past the quota: got %d %s, want 403", st, body)
		}
		if err := e.Registry.DeleteQuota(e.Ctx, "team"); err != nil {
			t.Fatal(err)
		}
		if err := e.Registry.DeleteQuota(e.Ctx, "team"); !errors.Is(err, registry.ErrQuotaUnknown) {
			t.Errorf("deleting a quota twice: got %v, want ErrQuotaUnknown", err)
		}
		if q, err := e.Registry.Quota(e.Ctx, "team"); err != nil || !q.Default {
			t.Errorf("quota of team after deleting its own: %+v, %v; want the default", q, err)
		}
	})
}
