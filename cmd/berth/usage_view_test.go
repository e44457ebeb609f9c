package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berth/berth/internal/api"
)

// TestUsageAndQuotaCommands: berth usage prints the registry, a namespace
// (with its quota) and a repository, with --split; berth quota sets, lists
// and deletes quotas, the registry default too.
func TestUsageAndQuotaCommands(t *testing.T) {
	data := t.TempDir()
	ctx, reg, done := openRegistry(t, data)
	pushManifest(t, ctx, reg, "acme/app", "v1", []byte("first"))
	pushManifest(t, ctx, reg, "other/app", "v1", []byte("second"))
	done()
	args := func(a ...string) []string { return append(a, "--data", data, "--log-level", "error") }
	must := func(a ...string) string {
		t.Helper()
		out, err := run(t, nil, args(a...)...)
		if err != nil {
			t.Fatalf("berth %s: %v\n%s", strings.Join(a, " "), err, out)
		}
		return out
	}
	decode := func(out string, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("decoding %s: %v", out, err)
		}
	}

	var o api.UsageOverview
	decode(must("usage", "--json"), &o)
	if o.Registry.Bytes <= 0 || len(o.Namespaces) != 2 || o.Others.Bytes != 0 {
		t.Errorf("usage --json: got %+v, want the registry and both namespaces", o)
	}
	var u api.Usage
	decode(must("usage", "acme/app", "--split", "--json"), &u)
	if u.Scope != "repository" || u.Split == nil || u.Split.Live.Bytes != u.Bytes || u.Bytes <= 0 {
		t.Errorf("usage acme/app --split --json: got %+v, want everything held live", u)
	}
	if out := must("usage", "acme", "--split"); !strings.Contains(out, "live tags") || !strings.Contains(out, "nothing (reclaimable now)") {
		t.Errorf("usage acme --split: want the classes\n%s", out)
	}
	if _, err := run(t, nil, args("usage", "--split")...); err == nil || !strings.Contains(err.Error(), "name one") {
		t.Errorf("usage --split: got %v, want a refusal", err)
	}

	var q api.Quota
	decode(must("quota", "set", "acme", "1GiB", "--warn", "80%", "--json"), &q)
	if q.Namespace != "acme" || q.LimitBytes != 1<<30 || q.WarnPercent == nil || *q.WarnPercent != 80 || q.CreatedBy != "operator" {
		t.Errorf("quota set: got %+v", q)
	}
	must("quota", "set", "--registry-default", "10GiB")
	if out := must("usage"); !strings.Contains(out, "1.0 GiB, warn at 80%") || !strings.Contains(out, "10.0 GiB (default)") {
		t.Errorf("usage with quotas: want acme's and the default\n%s", out)
	}
	var qs api.Quotas
	decode(must("quota", "list", "--json"), &qs)
	if len(qs.Quotas) != 2 || qs.Quotas[0].Namespace != "" || qs.Quotas[1].Namespace != "acme" {
		t.Errorf("quota list: got %+v", qs)
	}
	must("quota", "delete", "acme")
	if _, err := run(t, nil, args("quota", "delete", "acme")...); err == nil || !strings.Contains(err.Error(), "no quota to delete") {
		t.Errorf("deleting twice: got %v", err)
	}
	must("quota", "delete", "--registry-default")
	if out := must("quota", "list"); !strings.Contains(out, "no quota is set") {
		t.Errorf("quota list with none: %s", out)
	}
	for _, bad := range [][]string{
		{"quota", "set", "acme"},
		{"quota", "set", "--registry-default", "acme", "1GiB"},
		{"quota", "set", "acme", "1GB"},
		{"quota", "set", "acme", "1GiB", "--warn", "lots"},
		{"quota", "set", "acme", "1GiB", "--warn", "120%"},
		{"quota", "delete"},
	} {
		if _, err := run(t, nil, args(bad...)...); err == nil {
			t.Errorf("berth %s: got success, want a refusal", strings.Join(bad, " "))
		}
	}
}
