package api

import "testing"

func TestParseMgmtRoute(t *testing.T) {
	tests := []struct {
		path string
		want mgmtRoute
	}{
		{"/berth/v1/repositories/acme/app/_tags/history", mgmtRoute{Kind: mgmtHistory, Name: "acme/app"}},
		{"/berth/v1/repositories/a/b/c/_tags/latest/history", mgmtRoute{Kind: mgmtHistory, Name: "a/b/c", Tag: "latest"}},
		{"/berth/v1/repositories/a/_tags/history/history", mgmtRoute{Kind: mgmtHistory, Name: "a", Tag: "history"}},
		{"/berth/v1/repositories/a/b/_tags/_x/restore", mgmtRoute{Kind: mgmtRestore, Name: "a/b", Tag: "_x"}},
		{"/berth/v1/repositories/a/b/_tags/v1/expiry", mgmtRoute{Kind: mgmtExpiry, Name: "a/b", Tag: "v1"}},
		{"/berth/v1/namespaces/acme/retention", mgmtRoute{Kind: mgmtRetention, Name: "acme"}},
		{"/berth/v1/namespaces/acme", mgmtRoute{Kind: mgmtNamespace, Name: "acme"}},
		{"/berth/v1/purge/acme", mgmtRoute{Kind: mgmtPurge, Name: "acme"}},
		{"/berth/v1/purge/acme/app/x", mgmtRoute{Kind: mgmtPurge, Name: "acme/app/x"}},
		{"/berth/v1/gc/status", mgmtRoute{Kind: mgmtGCStatus}},
		{"/berth/v1/users", mgmtRoute{Kind: mgmtUsers}},
		{"/berth/v1/users/alice", mgmtRoute{Kind: mgmtUser, Account: "alice"}},
		{"/berth/v1/users/alice/password", mgmtRoute{Kind: mgmtUserPassword, Account: "alice"}},
		{"/berth/v1/namespaces/acme/robots", mgmtRoute{Kind: mgmtRobots, Name: "acme"}},
		{"/berth/v1/namespaces/acme/robots/ci", mgmtRoute{Kind: mgmtRobot, Name: "acme", Account: "ci"}},
		{"/berth/v1/namespaces/acme/grants", mgmtRoute{Kind: mgmtGrants, Name: "acme"}},
		{"/berth/v1/namespaces/acme/visibility", mgmtRoute{Kind: mgmtVisibility, Name: "acme"}},
		{"/berth/v1/auth/rotate-key", mgmtRoute{Kind: mgmtRotateKey}},
		{"/berth/v1/usage", mgmtRoute{Kind: mgmtUsage}},
		{"/berth/v1/namespaces/acme/usage", mgmtRoute{Kind: mgmtNSUsage, Name: "acme"}},
		{"/berth/v1/repositories/acme/team/app/_usage", mgmtRoute{Kind: mgmtRepoUsage, Name: "acme/team/app"}},
		{"/berth/v1/repositories/usage/_usage", mgmtRoute{Kind: mgmtRepoUsage, Name: "usage"}},
		{"/berth/v1/namespaces/acme/quota", mgmtRoute{Kind: mgmtQuota, Name: "acme"}},
		{"/berth/v1/quota", mgmtRoute{Kind: mgmtQuota}},
		{"/berth/v1/quotas", mgmtRoute{Kind: mgmtQuotas}},
		{"/berth/v1/policies", mgmtRoute{Kind: mgmtPolicies}},
		{"/berth/v1/policies/_preview", mgmtRoute{Kind: mgmtPolicies, Preview: true}},
		{"/berth/v1/policies/default", mgmtRoute{Kind: mgmtRegPolicy, Policy: "default"}},
		{"/berth/v1/policies/preview", mgmtRoute{Kind: mgmtRegPolicy, Policy: "preview"}},
		{"/berth/v1/namespaces/acme/policies/keep-10", mgmtRoute{Kind: mgmtNSPolicy, Name: "acme", Policy: "keep-10"}},
		{"/berth/v1/repositories/acme/app/x/_policies/release", mgmtRoute{Kind: mgmtRepoPolicy, Name: "acme/app/x", Policy: "release"}},
		// Nothing.
		{"/berth/v1/policies/", mgmtRoute{}},
		{"/berth/v1/policies/keep/x", mgmtRoute{}},
		{"/berth/v1/namespaces/acme/policies", mgmtRoute{}},
		{"/berth/v1/namespaces/acme/policies/", mgmtRoute{}},
		{"/berth/v1/repositories/acme/app/_policies", mgmtRoute{}},
		{"/berth/v1/repositories/acme/app/_policies/", mgmtRoute{}},
		{"/berth/v1/repositories/acme/app/_policies/keep/preview", mgmtRoute{}},
		{"/berth/v1/purge/", mgmtRoute{}},
		{"/berth/v1/purge/acme//app", mgmtRoute{}},
		{"/berth/v1/repositories/_tags/history", mgmtRoute{}},
		{"/berth/v1/repositories/a//b/_tags/history", mgmtRoute{}},
		{"/berth/v1/repositories/a/_tags//history", mgmtRoute{}},
		{"/berth/v1/repositories/a/_tags/v1/delete", mgmtRoute{}},
		{"/berth/v1/repositories/a/_blobs/history", mgmtRoute{}},
		{"/berth/v1/repositories/a/b", mgmtRoute{}},
		{"/berth/v1/namespaces/a/b/retention", mgmtRoute{}},
		{"/berth/v1/namespaces/", mgmtRoute{}},
		{"/berth/v1/gc/status/", mgmtRoute{}},
		{"/berth/v1/users/", mgmtRoute{}},
		{"/berth/v1/users//password", mgmtRoute{}},
		{"/berth/v1/users/alice/secret", mgmtRoute{}},
		{"/berth/v1/users/alice/password/x", mgmtRoute{}},
		{"/berth/v1/namespaces/acme/robots/", mgmtRoute{}},
		{"/berth/v1/namespaces//robots", mgmtRoute{}},
		{"/berth/v1/namespaces/acme/robots/ci/x", mgmtRoute{}},
		{"/berth/v1/namespaces/acme/grants/alice", mgmtRoute{}},
		{"/berth/v1/namespaces/acme/visibility/x", mgmtRoute{}},
		{"/berth/v1/namespaces/acme/members", mgmtRoute{}},
		{"/berth/v1/auth/rotate-key/", mgmtRoute{}},
		{"/berth/v1/auth", mgmtRoute{}},
		{"/berth/v1/repositories/acme/app/_usage/x", mgmtRoute{}},
		{"/berth/v1/repositories/acme/app/usage", mgmtRoute{}},
		{"/berth/v1/namespaces/acme/quota/x", mgmtRoute{}},
		{"/berth/v1/usage/acme", mgmtRoute{}},
	}
	for _, tt := range tests {
		rt := ParseRoute(tt.path)
		if rt.Kind != KindManagement {
			t.Errorf("ParseRoute(%q): got kind %v, want management", tt.path, rt.Kind)
			continue
		}
		if got := parseMgmtRoute(rt.Ref); got != tt.want {
			t.Errorf("parseMgmtRoute(%q): got %+v, want %+v", tt.path, got, tt.want)
		}
	}
	if rt := ParseRoute("/berth/v2/gc/status"); rt.Kind != KindUnknown {
		t.Errorf("/berth/v2/...: got kind %v, want unknown", rt.Kind)
	}
}
