package api_test

import (
	"testing"

	"github.com/berth/berth/internal/api"
)

// TestUsageAndQuotaEndpoints, with access control on: the read role reads a
// namespace's and a repository's usage (with ?split=true) and the quota in
// force; the namespace's admin sets and deletes its quota; the write role
// cannot; the registry's usage, its default quota and the list of quotas
// are a registry administrator's.
func TestUsageAndQuotaEndpoints(t *testing.T) {
	eachAccountsEnv(t, true, func(t *testing.T, e *accountsEnv) {
		e.createNamespace("acme")
		e.roleUsers("acme")
		as := func(user string) (string, string) { return user, user + " password" }
		push := &mgmtEnv{t: t, reg: e.reg}
		push.push("acme/app", "v1", "layer one")
		push.push("acme/app", "v2", "layer two")

		// Reading, with the read role.
		u, p := as("bob")
		var ns, repo api.Usage
		e.call("GET", "/berth/v1/namespaces/acme/usage", "", u, p, 200, &ns)
		if ns.Scope != "namespace" || ns.Name != "acme" || ns.Bytes <= 0 || ns.Manifests != 2 || ns.Blobs != 3 || ns.Quota != nil || ns.Split != nil {
			t.Errorf("usage of acme: got %+v, want 2 manifests, 3 blobs (a shared config), no quota, no split", ns)
		}
		e.call("GET", "/berth/v1/repositories/acme/app/_usage?split=true", "", u, p, 200, &repo)
		if repo.Scope != "repository" || repo.Name != "acme/app" || repo.Bytes != ns.Bytes || repo.Split == nil ||
			repo.Split.Live.Bytes != repo.Bytes || repo.Split.Live.Manifests != 2 || repo.Split.Reclaimable.Bytes != 0 {
			t.Errorf("usage of acme/app with its split: got %+v, want everything held live", repo)
		}
		if code := e.call("GET", "/berth/v1/namespaces/acme/usage?split=maybe", "", u, p, 400, nil); code != "INVALID_ARGUMENT" {
			t.Errorf("split=maybe: got %s, want INVALID_ARGUMENT", code)
		}
		if code := e.call("GET", "/berth/v1/namespaces/acme/quota", "", u, p, 404, nil); code != "QUOTA_UNKNOWN" {
			t.Errorf("quota of acme with none: got %s, want QUOTA_UNKNOWN", code)
		}

		// Setting, by the namespace's admin; not by the read or write role.
		for _, who := range []string{"bob", "carol"} {
			u, p = as(who)
			if code := e.call("PUT", "/berth/v1/namespaces/acme/quota", `{"limit":"1GiB"}`, u, p, 403, nil); code != "DENIED" {
				t.Errorf("%s setting a quota: got %s, want DENIED", who, code)
			}
		}
		u, p = as("alice")
		var q api.Quota
		e.call("PUT", "/berth/v1/namespaces/acme/quota", `{"limit":"1 GiB","warn_percent":80}`, u, p, 200, &q)
		if q.Namespace != "acme" || q.Default || q.LimitBytes != 1<<30 || q.Limit != "1.0 GiB" || q.WarnPercent == nil || *q.WarnPercent != 80 ||
			q.UsedBytes != ns.Bytes || q.CreatedBy != "user:alice" {
			t.Errorf("quota set: got %+v", q)
		}
		for _, body := range []string{`{"limit":"1GB"}`, `{"limit":""}`, `{"limit":"1GiB","warn_percent":0}`, `{"limit":"1GiB","warn":80}`} {
			if code := e.call("PUT", "/berth/v1/namespaces/acme/quota", body, u, p, 400, nil); code != "INVALID_ARGUMENT" {
				t.Errorf("PUT quota %s: got %s, want INVALID_ARGUMENT", body, code)
			}
		}
		u, p = as("bob")
		e.call("GET", "/berth/v1/namespaces/acme/usage", "", u, p, 200, &ns)
		if ns.Quota == nil || ns.Quota.LimitBytes != 1<<30 || ns.Quota.UsedBytes != ns.Bytes {
			t.Errorf("usage of acme with a quota: got %+v", ns.Quota)
		}
		for _, path := range []string{"/berth/v1/usage", "/berth/v1/quota", "/berth/v1/quotas"} {
			if code := e.call("GET", path, "", u, p, 403, nil); code != "DENIED" {
				t.Errorf("GET %s by the read role: got %s, want DENIED", path, code)
			}
		}

		// The registry's, by a registry administrator.
		u, p = as("root")
		e.call("PUT", "/berth/v1/quota", `{"limit":"10GiB"}`, u, p, 200, &q)
		if q.Namespace != "" || !q.Default || q.LimitBytes != 10<<30 {
			t.Errorf("default quota set: got %+v", q)
		}
		var qs api.Quotas
		e.call("GET", "/berth/v1/quotas", "", u, p, 200, &qs)
		if len(qs.Quotas) != 2 || qs.Quotas[0].Namespace != "" || qs.Quotas[1].Namespace != "acme" {
			t.Errorf("quotas: got %+v, want the default and acme's", qs)
		}
		var o api.UsageOverview
		e.call("GET", "/berth/v1/usage?top=5", "", u, p, 200, &o)
		if o.Registry.Scope != "registry" || o.Registry.Bytes != ns.Bytes || len(o.Namespaces) != 1 || o.Namespaces[0].Name != "acme" ||
			o.Namespaces[0].Quota == nil || o.Others.Bytes != 0 {
			t.Errorf("overview: got %+v, want acme alone, with its quota", o)
		}
		if code := e.call("GET", "/berth/v1/usage?top=-1", "", u, p, 400, nil); code != "INVALID_ARGUMENT" {
			t.Errorf("top=-1: got %s, want INVALID_ARGUMENT", code)
		}

		// Deleting: acme falls back to the default; twice is QUOTA_UNKNOWN.
		u, p = as("alice")
		e.call("DELETE", "/berth/v1/namespaces/acme/quota", "", u, p, 204, nil)
		if code := e.call("DELETE", "/berth/v1/namespaces/acme/quota", "", u, p, 404, nil); code != "QUOTA_UNKNOWN" {
			t.Errorf("deleting twice: got %s, want QUOTA_UNKNOWN", code)
		}
		e.call("GET", "/berth/v1/namespaces/acme/quota", "", u, p, 200, &q)
		if !q.Default || q.LimitBytes != 10<<30 || q.UsedBytes != ns.Bytes {
			t.Errorf("quota of acme after deleting its own: got %+v, want the default", q)
		}
		if code := e.call("GET", "/berth/v1/namespaces/acme/usage", "", "", "", 401, nil); code != "UNAUTHORIZED" {
			t.Errorf("anonymous usage of a private namespace: got %s, want UNAUTHORIZED", code)
		}
	})
}
