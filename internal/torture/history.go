package torture

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// entry is one operation of the history: what a client (or the harness)
// did, on which objects, when, and what it got.
type entry struct {
	seq    int
	client int // -1: the harness (kills, restarts, gc runs)
	op     string
	keys   []string // objects touched: "repo", "repo:tag", "repo@digest", "blob:digest"
	sent   time.Time
	got    time.Time
	result string
	detail string
}

type violation struct {
	what   string
	detail string
	keys   []string
	at     time.Time
}

// history records every operation and the violations found.
type history struct {
	mu         sync.Mutex
	start      time.Time
	entries    []entry
	violations []violation
}

func newHistory() *history { return &history{start: time.Now()} }

func (h *history) add(e entry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e.seq = len(h.entries) + 1
	h.entries = append(h.entries, e)
}

func (h *history) violate(what, detail string, keys ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.violations = append(h.violations, violation{what: what, detail: detail, keys: keys, at: time.Now()})
}

func (h *history) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.entries)
}

func (h *history) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.violations)
}

func (h *history) rel(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%.3fs", t.Sub(h.start).Seconds())
}

// relevant returns, in order: the operations on the violated manifests and
// tags; the operations on the blobs those name (or the violation names) in
// the violated repositories; the purges of those repositories; and the
// harness's kills and restarts.
func (h *history) relevant(keys []string) []entry {
	h.mu.Lock()
	defer h.mu.Unlock()
	objs, blobs, repos := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, k := range keys {
		switch {
		case isRepoKey(k):
			repos[k] = true
		case strings.HasPrefix(k, "blob:"):
			blobs[k] = true
		default:
			objs[k] = true
			if i := strings.IndexAny(k, "@:"); i > 0 {
				repos[k[:i]] = true
			}
		}
	}
	for _, e := range h.entries {
		if slices.ContainsFunc(e.keys, func(k string) bool { return objs[k] }) {
			for _, k := range e.keys {
				if strings.HasPrefix(k, "blob:") {
					blobs[k] = true
				}
			}
		}
	}
	var out []entry
	for _, e := range h.entries {
		inRepo := slices.ContainsFunc(e.keys, func(k string) bool { return repos[k] })
		hit := e.client == -1 && (e.op == "kill" || e.op == "restart")
		for _, k := range e.keys {
			if objs[k] || (blobs[k] && inRepo) || (e.op == "purge" && repos[k]) {
				hit = true
			}
		}
		if hit {
			out = append(out, e)
		}
	}
	return out
}

// isRepoKey: a bare repository name, as opposed to repo:tag, repo@digest
// and blob:digest.
func isRepoKey(k string) bool { return !strings.ContainsAny(k, "@:") }

func (h *history) printViolations(w io.Writer, seed uint64, limit int) {
	h.mu.Lock()
	vs := slices.Clone(h.violations)
	h.mu.Unlock()
	for i, v := range vs {
		if i == limit {
			fmt.Fprintf(w, "... and %d more violations\n", len(vs)-limit)
			break
		}
		fmt.Fprintf(w, "\nVIOLATION %d (seed %d) at %s: %s\n  %s\n  objects: %s\n  history (operations touching these objects, and the harness's kills/restarts, in order):\n",
			i+1, seed, h.rel(v.at), v.what, v.detail, strings.Join(v.keys, " "))
		for _, e := range h.relevant(v.keys) {
			if e.sent.After(v.at) {
				continue
			}
			who := fmt.Sprintf("c%d", e.client)
			if e.client < 0 {
				who = "harness"
			}
			fmt.Fprintf(w, "    #%d %s..%s %-7s %-16s %-8s %s %s\n", e.seq, h.rel(e.sent), h.rel(e.got), who, e.op, e.result, strings.Join(e.keys, " "), e.detail)
		}
	}
}

// stats counts operations by kind and outcome.
type stats struct {
	mu           sync.Mutex
	ops          map[string]map[string]int
	serverErrors int
	samples      []string
}

func newStats() *stats { return &stats{ops: map[string]map[string]int{}} }

func (s *stats) op(kind string, o string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops[kind] == nil {
		s.ops[kind] = map[string]int{}
	}
	s.ops[kind][o]++
}

func (s *stats) serverError(method, path string, r resp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serverErrors++
	if len(s.samples) < 8 {
		s.samples = append(s.samples, fmt.Sprintf("%s %s -> %d %s %.200s", method, path, r.status, r.code, string(r.body)))
	}
}

func (s *stats) get(kind, o string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ops[kind][o]
}

func (s *stats) table() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	kinds := slices.Sorted(maps.Keys(s.ops))
	total := 0
	for _, k := range kinds {
		outs := s.ops[k]
		keys := make([]string, 0, len(outs))
		for o := range outs {
			keys = append(keys, o)
		}
		sort.Strings(keys)
		n := 0
		var parts []string
		for _, o := range keys {
			n += outs[o]
			parts = append(parts, fmt.Sprintf("%s=%d", o, outs[o]))
		}
		total += n
		fmt.Fprintf(&b, "  %-18s %6d  (%s)\n", k, n, strings.Join(parts, " "))
	}
	fmt.Fprintf(&b, "  %-18s %6d\n", "total", total)
	return b.String()
}
