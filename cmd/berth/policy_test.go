package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/app"
	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// pushTags pushes one image per tag to repo (its own layer each, one
// shared config) through the registry package, over data and db.
func pushTags(t *testing.T, data, db, repo string, tags ...string) {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.Data, cfg.DB, cfg.Log.Level = data, db, "error"
	svc, err := app.OpenServices(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close(ctx)
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	for _, tag := range tags {
		layer := bytes.Repeat([]byte("layer of "+tag+" "), 100)
		for _, b := range [][]byte{cfgBlob, layer} {
			if _, err := svc.Registry.PushBlob(ctx, repo, digest.FromBytes(b).String(), int64(len(b)), bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
		}
		m, _ := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfgBlob), "size": len(cfgBlob)},
			"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(layer), "size": len(layer)}},
		})
		if _, err := svc.Registry.PutManifest(ctx, repo, tag, "application/vnd.oci.image.manifest.v1+json", m); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPolicyCommands: on every metadata backend, preview, set, list and
// delete, with tables and --json, and the refusals of a bad rule.
func TestPolicyCommands(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			data, db := t.TempDir(), ""
			args := []string{"--data", data, "--log-level", "error"}
			if b.Name != "sqlite" {
				db = b.DSN(t)
				args = append(args, "--db", db)
			}
			cli := func(cmd ...string) (string, error) {
				t.Helper()
				return run(t, nil, append(cmd, args...)...)
			}
			cliJSON := func(v any, cmd ...string) {
				t.Helper()
				out, err := cli(cmd...)
				if err != nil {
					t.Fatalf("berth %s: %v\n%s", strings.Join(cmd, " "), err, out)
				}
				if err := json.Unmarshal([]byte(out), v); err != nil {
					t.Fatalf("berth %s: %v\n%s", strings.Join(cmd, " "), err, out)
				}
			}
			if out, err := cli("migrate"); err != nil {
				t.Fatalf("migrate: %v\n%s", err, out)
			}
			pushTags(t, data, db, "acme/app", "v1", "v2", "v3")
			layer := int64(len(bytes.Repeat([]byte("layer of v1 "), 100)))

			var pv api.PolicyPreview
			cliJSON(&pv, "policy", "preview", "--namespace", "acme", "--keep-newest", "1", "--json")
			// v1 and v2 go, each with its own layer; the config stays (v3's).
			if len(pv.Tags) != 2 || pv.Tags[0].Tag != "v1" || pv.Tags[1].Tag != "v2" || pv.ManifestsFreed != 2 || pv.BytesFreed != 2*layer ||
				pv.Policy.Ref != "acme:(unsaved)" {
				t.Errorf("preview keep 1: got %+v, want v1 and v2, 2 manifests, %d bytes", pv, 2*layer)
			}
			out, err := cli("policy", "preview", "--namespace", "acme", "--keep-newest", "1")
			if err != nil || !strings.Contains(out, "acme:(unsaved): 2 tags of 1 repository would be pruned now (2 by this rule); 2 manifests and 2.3 KiB") ||
				!strings.Contains(out, "REPOSITORY") || !strings.Contains(out, "never") {
				t.Errorf("preview table: %v\n%s", err, out)
			}

			out, err = cli("policy", "set", "keep", "--namespace", "acme", "--keep-newest", "2")
			if err != nil || !strings.Contains(out, "acme:keep (created)") || !strings.Contains(out, "keep the 2 newest") || !strings.Contains(out, "by operator") {
				t.Errorf("set: %v\n%s", err, out)
			}
			cliJSON(&pv, "policy", "preview", "--name", "keep", "--namespace", "acme", "--json")
			if len(pv.Tags) != 1 || pv.Tags[0].Tag != "v1" || pv.Policy.Ref != "acme:keep" {
				t.Errorf("preview of the saved keep 2: got %+v", pv)
			}
			var saved api.PolicySaved
			cliJSON(&saved, "policy", "set", "release", "--repository", "acme/app", "--immutable", "--tag-pattern", "^v1$", "--json")
			if !saved.Created || saved.Kind != meta.PolicyImmutable || saved.Ref != "acme/app:release" {
				t.Errorf("set immutable --json: got %+v", saved)
			}
			out, err = cli("policy", "preview", "--name", "keep", "--namespace", "acme")
			if err != nil || !strings.Contains(out, "nothing would be pruned now (3 tags of 1 repository examined)") {
				t.Errorf("preview with v1 immutable: %v\n%s", err, out)
			}
			out, err = cli("policy", "list")
			if err != nil || !strings.Contains(out, "acme:keep") || !strings.Contains(out, "immutable (tags matching ^v1$)") {
				t.Errorf("list: %v\n%s", err, out)
			}

			for _, bad := range []struct {
				args []string
				want string
			}{
				{[]string{"set", "x", "--namespace", "acme"}, "set needs a rule"},
				{[]string{"set", "x", "--keep-newest", "1", "--immutable"}, "a policy is one rule"},
				{[]string{"set", "x", "--tag-pattern", "^v"}, "give its kind too"},
				{[]string{"set", "x", "--keep-newest", "1", "--not-matching"}, "--not-matching needs --tag-pattern"},
				{[]string{"set", "x", "--prune-older-than", "soon"}, "--prune-older-than soon"},
				{[]string{"set", "frozen", "--immutable"}, "not on the whole registry"},
				{[]string{"set", "x", "--repository", "acme", "--keep-newest", "1"}, "want NAMESPACE/REPOSITORY"},
				{[]string{"set", "x", "--namespace", "other", "--repository", "acme/app", "--keep-newest", "1"}, "is not in --namespace other"},
				{[]string{"preview", "--namespace", "acme"}, "preview needs a rule"},
				{[]string{"preview", "--name", "nope", "--namespace", "acme"}, "policy not known"},
			} {
				if _, err := cli(append([]string{"policy"}, bad.args...)...); err == nil || !strings.Contains(err.Error(), bad.want) {
					t.Errorf("policy %v: got %v, want an error saying %q", bad.args, err, bad.want)
				}
			}
			out, _, _ = runSplit(t, "", append([]string{"policy", "set", "x", "--namespace", "acme", "--keep-newest", "-1", "--json"}, args...)...)
			var jerr jsonError
			if err := json.Unmarshal([]byte(out), &jerr); err != nil || jerr.Code != "INVALID_ARGUMENT" {
				t.Errorf("set with a negative count --json: got %+v (%v)\n%s", jerr, err, out)
			}

			out, err = cli("policy", "delete", "keep", "--namespace", "acme")
			if err != nil || !strings.Contains(out, "deleted policy acme:keep (keep the 2 newest)") {
				t.Errorf("delete: %v\n%s", err, out)
			}
			out, _, _ = runSplit(t, "", append([]string{"policy", "delete", "keep", "--namespace", "acme", "--json"}, args...)...)
			if err := json.Unmarshal([]byte(out), &jerr); err != nil || jerr.Code != "POLICY_UNKNOWN" {
				t.Errorf("deleting it again --json: got %+v (%v)\n%s", jerr, err, out)
			}
			var list api.Policies
			cliJSON(&list, "policy", "list", "--namespace", "acme", "--json")
			if len(list.Policies) != 1 || list.Policies[0].Ref != "acme/app:release" {
				t.Errorf("list --namespace acme --json after the delete: got %+v", list)
			}
		})
	}
}
