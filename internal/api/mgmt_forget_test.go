package api_test

import (
	"testing"
	"time"

	"github.com/berth/berth/internal/api"
)

// DELETE .../_tags/<tag>/history forgets the ended lifetimes (those ended
// before ?before= when given) and answers what it forgot; the live one
// stays, and the history no longer lists the others.
func TestMgmtTagForget(t *testing.T) {
	e := newMgmtEnv(t, false)
	const base = "/berth/v1/repositories/acme/app/_tags/"
	d1, _ := e.push("acme/app", "latest", "one")
	e.advance(time.Minute)
	d2, _ := e.push("acme/app", "latest", "two")
	e.advance(time.Minute)
	before := e.clock.Now().Format(time.RFC3339)
	e.advance(time.Minute)
	d3, _ := e.push("acme/app", "latest", "three")

	var f api.TagForgotten
	e.call("DELETE", base+"latest/history?before="+before, "", 200, &f)
	if f.Repository != "acme/app" || f.Tag != "latest" || f.Forgotten != 1 || len(f.Manifests) != 1 || f.Manifests[0] != d1 {
		t.Fatalf("forget before %s: got %+v, want d1's lifetime (%s)", before, f, d1)
	}
	e.call("DELETE", base+"latest/history", "", 200, &f)
	if f.Forgotten != 1 || len(f.Manifests) != 1 || f.Manifests[0] != d2 {
		t.Fatalf("forget: got %+v, want d2's lifetime (%s)", f, d2)
	}
	var h api.TagHistory
	e.call("GET", base+"latest/history", "", 200, &h)
	if len(h.Lifetimes) != 1 || h.Lifetimes[0].Digest != d3 || !h.Lifetimes[0].Live {
		t.Fatalf("history after forget: got %+v, want only the live lifetime on %s", h.Lifetimes, d3)
	}
	f = api.TagForgotten{}
	e.call("DELETE", base+"latest/history", "", 200, &f)
	if f.Forgotten != 0 || f.Manifests == nil || len(f.Manifests) != 0 {
		t.Errorf("forget with nothing ended: got %+v, want 0 and an empty list", f)
	}
	if code := e.call("POST", base+"latest/restore", `{"digest":"`+d1.String()+`"}`, 404, nil); code != "MANIFEST_UNKNOWN" {
		t.Errorf("restore of a forgotten lifetime: got code %s, want MANIFEST_UNKNOWN", code)
	}
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"DELETE", base + "latest/history?before=yesterday", 400, "INVALID_ARGUMENT"},
		{"DELETE", base + "history", 405, "UNSUPPORTED"},
		{"DELETE", base + "never/history", 404, "MANIFEST_UNKNOWN"},
		{"DELETE", "/berth/v1/repositories/acme/nope/_tags/latest/history", 404, "NAME_UNKNOWN"},
	} {
		if got := e.call(c.method, c.path, "", c.status, nil); got != c.code {
			t.Errorf("%s %s: got code %s, want %s", c.method, c.path, got, c.code)
		}
	}
}
