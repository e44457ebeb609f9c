package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/berth/berth/internal/api"
)

// TestPolicyEndpoints, with access control on: an administrator of the
// scope saves, replaces and deletes policies; the read role lists, reads
// and previews them; the write role cannot save; anonymous requests are
// asked to authenticate; the registry's scope is a registry
// administrator's.
func TestPolicyEndpoints(t *testing.T) {
	eachAccountsEnv(t, true, func(t *testing.T, e *accountsEnv) {
		e.createNamespace("acme")
		e.roleUsers("acme")
		as := func(user string) (string, string) { return user, user + " password" }
		push := &mgmtEnv{t: t, reg: e.reg}
		for _, tag := range []string{"v1", "v2", "v3"} {
			push.push("acme/app", tag, "layer "+tag)
		}

		// Saving: 201, then 200 replacing it, by the namespace's admin.
		u, p := as("alice")
		var saved api.PolicySaved
		e.call("PUT", "/berth/v1/namespaces/acme/policies/keep", `{"kind":"keep_newest","count":5}`, u, p, 201, &saved)
		if !saved.Created || saved.Ref != "acme:keep" || saved.Scope != "namespace" || saved.Count == nil || *saved.Count != 5 ||
			!saved.PatternMatches || saved.CreatedBy != "user:alice" {
			t.Errorf("saved: got %+v, want acme:keep keeping 5, created by user:alice", saved)
		}
		e.call("PUT", "/berth/v1/namespaces/acme/policies/keep", `{"kind":"keep_newest","count":2}`, u, p, 200, &saved)
		if saved.Created || *saved.Count != 2 {
			t.Errorf("replaced: got %+v, want count 2, not created", saved)
		}
		e.call("PUT", "/berth/v1/repositories/acme/app/_policies/old", `{"kind":"prune_older_than","span":"30d","tag_pattern":"^build-"}`, u, p, 201, &saved)
		if saved.Span != "30d" || saved.Repository != "acme/app" || saved.TagPattern != "^build-" {
			t.Errorf("repository policy: got %+v", saved)
		}
		for _, c := range []struct{ body, want string }{
			{`{"kind":"keep_newest"}`, "needs \"count\""},
			{`{"kind":"keep_newest","count":-1}`, "the count is 0 to"},
			{`{"kind":"prune_older_than","span":"soon"}`, "span"},
			{`{"kind":"prune_older_than","span":"1d","tag_pattern":"("}`, "tag pattern"},
			{`{"kind":"keep_newest","count":1,"pattern_matches":false}`, "needs the pattern"},
			{`{"kind":"forever"}`, "unknown rule kind"},
			{`{"kind":"immutable","name":"x"}`, "unknown field"},
		} {
			code, msg := e.callDetail("PUT", "/berth/v1/namespaces/acme/policies/bad", c.body, u, p, 400)
			if code != "INVALID_ARGUMENT" || !strings.Contains(msg, c.want) {
				t.Errorf("PUT %s: got %s %q, want INVALID_ARGUMENT saying %q", c.body, code, msg, c.want)
			}
		}
		if code, _ := e.callDetail("PUT", "/berth/v1/namespaces/acme/policies/Keep", `{"kind":"immutable"}`, u, p, 400); code != "INVALID_ARGUMENT" {
			t.Errorf("an invalid name: got %s, want INVALID_ARGUMENT", code)
		}

		// The write role, and anonymous, cannot save or delete.
		u, p = as("carol")
		for _, c := range []struct{ method, path, body string }{
			{"PUT", "/berth/v1/namespaces/acme/policies/mine", `{"kind":"keep_newest","count":1}`},
			{"PUT", "/berth/v1/repositories/acme/app/_policies/mine", `{"kind":"keep_newest","count":1}`},
			{"DELETE", "/berth/v1/namespaces/acme/policies/keep", ""},
		} {
			if code := e.call(c.method, c.path, c.body, u, p, 403, nil); code != "DENIED" {
				t.Errorf("carol (write): %s %s: got %s, want DENIED", c.method, c.path, code)
			}
			if code := e.call(c.method, c.path, c.body, "", "", 401, nil); code != "UNAUTHORIZED" {
				t.Errorf("anonymous: %s %s: got %s, want UNAUTHORIZED", c.method, c.path, code)
			}
		}

		// The read role lists, reads and previews.
		u, p = as("bob")
		var list api.Policies
		e.call("GET", "/berth/v1/policies?namespace=acme", "", u, p, 200, &list)
		if refs := policyRefs(list); refs != "acme:keep acme/app:old" {
			t.Errorf("bob lists acme: got %s", refs)
		}
		e.call("GET", "/berth/v1/policies?repository=acme/app", "", u, p, 200, &list)
		if refs := policyRefs(list); refs != "acme:keep acme/app:old" {
			t.Errorf("bob lists acme/app: got %s", refs)
		}
		var one api.Policy
		e.call("GET", "/berth/v1/namespaces/acme/policies/keep", "", u, p, 200, &one)
		e.call("GET", "/berth/v1/repositories/acme/app/_policies/old", "", u, p, 200, &one)
		if one.Ref != "acme/app:old" {
			t.Errorf("bob reads acme/app:old: got %+v", one)
		}
		var pv api.PolicyPreview
		e.call("POST", "/berth/v1/policies/_preview?namespace=acme", `{"name":"keep"}`, u, p, 200, &pv)
		if pv.Policy.Ref != "acme:keep" || len(pv.Tags) != 1 || pv.Tags[0].Tag != "v1" || pv.Tags[0].Repository != "acme/app" ||
			!pv.Tags[0].ThisRule || pv.ManifestsFreed != 1 || pv.BytesFreed <= 0 {
			t.Errorf("preview of the saved keep 2: got %+v, want v1 pruned, one manifest and its bytes freed", pv)
		}
		e.call("POST", "/berth/v1/policies/_preview?namespace=acme", `{"name":"keep","kind":"keep_newest","count":0}`, u, p, 200, &pv)
		if len(pv.Tags) != 3 || pv.ManifestsFreed != 3 || pv.TagsExamined != 3 || pv.Truncated {
			t.Errorf("preview of keep 0: got %+v, want the three tags", pv)
		}
		e.call("POST", "/berth/v1/policies/_preview?repository=acme/app", `{"kind":"prune_older_than","span":"1h"}`, u, p, 200, &pv)
		if pv.Policy.Ref != "acme/app:(unsaved)" || len(pv.Tags) != 1 || pv.Tags[0].ThisRule {
			t.Errorf("preview of an unnamed young-age rule: got %+v, want only keep's v1", pv)
		}
		for _, c := range []struct {
			method, path, body string
			status             int
			code               string
		}{
			{"PUT", "/berth/v1/namespaces/acme/policies/keep", `{"kind":"keep_newest","count":1}`, 403, "DENIED"},
			{"GET", "/berth/v1/policies", "", 403, "DENIED"},
			{"GET", "/berth/v1/policies/default", "", 403, "DENIED"},
			{"POST", "/berth/v1/policies/_preview", `{"kind":"keep_newest","count":1}`, 403, "DENIED"},
			{"GET", "/berth/v1/namespaces/acme/policies/nope", "", 404, "POLICY_UNKNOWN"},
			{"POST", "/berth/v1/policies/_preview?namespace=acme", `{"name":"nope"}`, 404, "POLICY_UNKNOWN"},
			{"POST", "/berth/v1/policies/_preview?namespace=acme", `{"count":3}`, 400, "INVALID_ARGUMENT"},
			{"POST", "/berth/v1/policies/_preview?namespace=acme&repository=other/app", `{"name":"keep"}`, 403, "DENIED"},
		} {
			if code := e.call(c.method, c.path, c.body, u, p, c.status, nil); code != c.code {
				t.Errorf("bob: %s %s: got %s, want %s", c.method, c.path, code, c.code)
			}
		}
		if code := e.call("GET", "/berth/v1/policies?namespace=acme", "", "", "", 401, nil); code != "UNAUTHORIZED" {
			t.Errorf("anonymous list: got %s, want UNAUTHORIZED", code)
		}

		// The registry's scope: a registry administrator's only.
		u, p = as("alice")
		if code := e.call("PUT", "/berth/v1/policies/default", `{"kind":"keep_newest","count":50}`, u, p, 403, nil); code != "DENIED" {
			t.Errorf("alice saving a registry policy: got %s, want DENIED", code)
		}
		u, p = as("root")
		e.call("PUT", "/berth/v1/policies/default", `{"kind":"keep_newest","count":50}`, u, p, 201, &saved)
		if saved.Scope != "registry" || saved.Ref != "*:default" {
			t.Errorf("registry policy: got %+v", saved)
		}
		if code, msg := e.callDetail("PUT", "/berth/v1/policies/frozen", `{"kind":"immutable"}`, u, p, 400); code != "INVALID_ARGUMENT" || !strings.Contains(msg, "not on the whole registry") {
			t.Errorf("a registry immutable rule: got %s %q", code, msg)
		}
		if code := e.call("POST", "/berth/v1/namespaces/acme/policies/keep", "", u, p, 405, nil); code != "UNSUPPORTED" {
			t.Errorf("POST to a policy: got %s, want UNSUPPORTED", code)
		}
		e.call("GET", "/berth/v1/policies", "", u, p, 200, &list)
		if refs := policyRefs(list); refs != "*:default acme:keep acme/app:old" {
			t.Errorf("root lists every policy: got %s", refs)
		}
		e.call("GET", "/berth/v1/policies?namespace=acme", "", u, p, 200, &list)
		if refs := policyRefs(list); refs != "*:default acme:keep acme/app:old" {
			t.Errorf("a namespace's list names the registry's too: got %s", refs)
		}
		e.call("POST", "/berth/v1/policies/_preview", `{"name":"default"}`, u, p, 200, &pv)
		if pv.Repositories != 0 || len(pv.Tags) != 0 {
			t.Errorf("the registry default where acme has its own: got %+v, want no repository", pv)
		}

		// Deleting: admin of the scope, 204, then 404.
		u, p = as("alice")
		e.call("DELETE", "/berth/v1/namespaces/acme/policies/keep", "", u, p, 204, nil)
		if code := e.call("DELETE", "/berth/v1/namespaces/acme/policies/keep", "", u, p, 404, nil); code != "POLICY_UNKNOWN" {
			t.Errorf("deleting it again: got %s, want POLICY_UNKNOWN", code)
		}
		u, p = as("root")
		e.call("DELETE", "/berth/v1/policies/default", "", u, p, 204, nil)
	})
}

// callDetail sends a request expecting an error status and returns its
// code and detail.
func (e *accountsEnv) callDetail(method, path, body, user, pass string, wantStatus int) (code, detail string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var env struct {
		Errors []struct{ Code, Detail string } `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || resp.StatusCode != wantStatus || len(env.Errors) != 1 {
		e.t.Fatalf("%s %s %s: got status %d (%v, %+v), want %d with one error", method, path, body, resp.StatusCode, err, env, wantStatus)
	}
	return env.Errors[0].Code, env.Errors[0].Detail
}

func policyRefs(l api.Policies) string {
	var refs []string
	for _, p := range l.Policies {
		refs = append(refs, p.Ref)
	}
	return strings.Join(refs, " ")
}
