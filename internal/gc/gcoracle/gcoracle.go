// Package gcoracle is the one reachability checker of berth's tests: given
// a registry's metadata database, what its byte store holds and the time,
// it computes what DESIGN.md §3 says is alive and reports, as readable
// findings, every way the stored state differs from the collector's fixed
// point (DESIGN.md §5, docs/design/gc.md):
//
//   - SAFETY: something reachable is missing — a tag's manifest, an
//     index's child, a blob row's bytes, or bytes that do not hash to
//     their row's digest;
//   - LEAK: something is stored that nothing keeps — no root reaches it
//     and no review of it is due later — or work is left undone: a review
//     that is due, a tombstone, a repository or namespace not active,
//     bytes with no row, staging or a multipart upload with no session.
//
// It computes liveness from the rows alone, independently of the
// collector's code, and reads the database with plain SELECTs (no
// placeholders), so it works on SQLite and PostgreSQL and on a database
// opened read-only behind a stopped berth. The gc tests' fixed point and
// the torture checker's final inspection both call Check.
package gcoracle

import (
	"context"
	_ "crypto/sha256" // digests go-digest verifies
	_ "crypto/sha512"
	"database/sql"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// Input is what Check inspects.
type Input struct {
	DB    *sql.DB // the metadata database; only read
	Bytes Bytes   // what the byte store holds
	Now   time.Time
	// Windows is the policy the registry and the collector were given;
	// the oracle reads its windows (grace, upload expiry, tag retention).
	// Manifests collect_untagged=false keeps are listed in Pinned.
	Windows review.Policy
	// Pinned are manifests kept on purpose, as review objects
	// (review.RepoDigestObject, "repoID@digest"): e.g. pushed by digest under collect_untagged=false,
	// which the rows alone cannot tell from a manifest whose tag went.
	Pinned []string
	// SweepCutoff excuses leftovers (bytes with no row, staging or a
	// multipart upload with no session) modified after it: sweep leaves
	// them until they are older than its minimum age. Zero excuses none.
	SweepCutoff time.Time
	// Store, when set, is the store over DB: its usage counters are
	// recomputed from the rows (VerifyUsage, in a View) and each
	// difference is a finding of class Usage (docs/design/usage.md,
	// "Verification").
	Store meta.Store
}

// Object is one thing the byte store holds.
type Object struct {
	// Key is the storage key of committed bytes, or the id of the upload
	// session that owns staging or a multipart upload.
	Key     string
	Name    string // how to name it in a finding (a path, an S3 key); Key if empty
	Size    int64
	ModTime time.Time
}

func (o Object) name() string {
	if o.Name != "" {
		return o.Name
	}
	return o.Key
}

// Bytes is what the byte store holds, ideally seen behind its back.
type Bytes struct {
	Blobs     []Object // committed objects, by storage key
	Staging   []Object // upload staging, by owning session id
	Multipart []Object // multipart uploads in progress, by owning session id
	Foreign   []Object // objects outside the store's layout
	// Open, when set, reads committed bytes, so that each blob row's bytes
	// are checked against its digest and size.
	Open func(ctx context.Context, key string) (io.ReadCloser, error)
}

// FromStore lists a blob.Store through its own Walk and WalkUploads, and
// verifies contents through its Open.
func FromStore(ctx context.Context, s blob.Store) (Bytes, error) {
	var b Bytes
	if err := s.Walk(ctx, func(i blob.Info) error {
		b.Blobs = append(b.Blobs, Object{Key: i.Key, Size: i.Size, ModTime: i.ModTime})
		return nil
	}); err != nil {
		return b, fmt.Errorf("walking blob store: %w", err)
	}
	if err := s.WalkUploads(ctx, func(id string, i blob.Info) error {
		b.Staging = append(b.Staging, Object{Key: id, Name: "staging of upload " + id, Size: i.Size, ModTime: i.ModTime})
		return nil
	}); err != nil {
		return b, fmt.Errorf("walking uploads: %w", err)
	}
	b.Open = func(ctx context.Context, key string) (io.ReadCloser, error) { return s.Open(ctx, key) }
	return b, nil
}

// Class says which half of the invariant a finding breaks.
type Class int

const (
	// Safety: something reachable is missing or corrupt.
	Safety Class = iota
	// Leak: something unreachable is kept, or work is left undone.
	Leak
	// Usage: a usage counter differs from what the rows say.
	Usage
)

func (c Class) String() string {
	switch c {
	case Safety:
		return "SAFETY"
	case Usage:
		return "USAGE"
	}
	return "LEAK"
}

// Finding is one difference from the fixed point.
type Finding struct {
	Class  Class
	Object string // what it is about: "manifest ns/app@sha256:…", "blob sha256:…", …
	Detail string
}

func (f Finding) String() string { return f.Class.String() + ": " + f.Object + " " + f.Detail }

// Report is the outcome of Check.
type Report struct {
	Findings  []Finding
	Rows      map[string]int // rows stored, by table
	Reachable map[string]int // reachable objects, by kind (manifest, link, blob)
	Pending   int            // reviews due after Now
	Excused   int            // leftovers younger than SweepCutoff
}

// Safety lists the findings of class Safety.
func (r *Report) Safety() []Finding { return r.of(Safety) }

// Leaks lists the findings of class Leak.
func (r *Report) Leaks() []Finding { return r.of(Leak) }

func (r *Report) of(c Class) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Class == c {
			out = append(out, f)
		}
	}
	return out
}

// mkey names a repository-scoped row: a manifest, a link, a marker.
type mkey struct {
	repo   int64
	digest string
}

// object is the review object of the manifest, link or upload marker k.
func (k mkey) object() string { return review.RepoDigestObject(k.repo, digest.Digest(k.digest)) }

type manifestRow struct {
	subject   string
	pushed    int64
	withdrawn bool
}

// state is the database, read once.
type state struct {
	in  Input
	now int64 // µs
	rep *Report

	repoName  map[int64]string
	repoNS    map[int64]int64
	retention map[int64]int64 // namespace id -> window, µs

	reviews map[review.Kind]map[string]int64 // kind -> object -> review_after

	manifests map[mkey]manifestRow
	children  map[mkey][]string
	referrers map[mkey][]string // subject -> stored, not withdrawn referrers
	mblobs    map[mkey][]string
	usedLinks map[mkey]bool // linked by any stored manifest
	usedLabel map[int64]bool
}

// Check reads the database and the bytes and reports every difference
// from the fixed point at in.Now. An error means the inspection itself
// failed (a query), not a finding.
func Check(ctx context.Context, in Input) (*Report, error) {
	s := &state{in: in, now: in.Now.UnixMicro(), rep: &Report{Rows: map[string]int{}, Reachable: map[string]int{}}}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	reach, err := s.tagsAndManifests(ctx)
	if err != nil {
		return nil, err
	}
	blobs, keys, err := s.linksAndBlobs(ctx, reach)
	if err != nil {
		return nil, err
	}
	sessions, tombs, err := s.uploadsAndTombstones(ctx)
	if err != nil {
		return nil, err
	}
	s.bytes(ctx, blobs, keys, sessions, tombs)
	if err := s.usage(ctx); err != nil {
		return nil, err
	}
	sort.SliceStable(s.rep.Findings, func(i, j int) bool { return s.rep.Findings[i].Class < s.rep.Findings[j].Class })
	return s.rep, nil
}

func (s *state) find(c Class, object, format string, args ...any) {
	s.rep.Findings = append(s.rep.Findings, Finding{Class: c, Object: object, Detail: fmt.Sprintf(format, args...)})
}

func (s *state) mname(k mkey) string { return s.repoName[k.repo] + "@" + k.digest }

// pending reports whether a review of object is due after now: the
// collector will look at it again, so being unreachable is not a leak yet.
func (s *state) pending(kind review.Kind, object string) bool {
	after, ok := s.reviews[kind][object]
	return ok && after > s.now
}

func at(us int64) string { return time.UnixMicro(us).UTC().Format(time.RFC3339Nano) }

// query runs q and calls scan for each row.
func (s *state) query(ctx context.Context, table, q string, scan func(*sql.Rows) error) error {
	rows, err := s.in.DB.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("reading %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		s.rep.Rows[table]++
		if err := scan(rows); err != nil {
			return fmt.Errorf("reading %s: %w", table, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", table, err)
	}
	return nil
}

// load reads namespaces, repositories, reviews, manifests and their edges.
func (s *state) load(ctx context.Context) error {
	s.retention = map[int64]int64{}
	s.repoName, s.repoNS = map[int64]string{}, map[int64]int64{}
	s.reviews = map[review.Kind]map[string]int64{}
	s.manifests = map[mkey]manifestRow{}
	s.children, s.referrers, s.mblobs = map[mkey][]string{}, map[mkey][]string{}, map[mkey][]string{}
	s.usedLinks, s.usedLabel = map[mkey]bool{}, map[int64]bool{}
	steps := []struct {
		table, q string
		scan     func(*sql.Rows) error
	}{
		{"namespace", `SELECT id, name, state, tag_retention_us FROM namespace`, func(r *sql.Rows) error {
			var id int64
			var name, st string
			var ret sql.NullInt64
			if err := r.Scan(&id, &name, &st, &ret); err != nil {
				return err
			}
			s.retention[id] = s.in.Windows.TagRetention.Microseconds()
			if ret.Valid {
				s.retention[id] = ret.Int64
			}
			if st != "active" {
				s.find(Leak, "namespace "+name, "is left in state %s", st)
			}
			return nil
		}},
		{"repository", `SELECT id, namespace_id, name, state FROM repository`, func(r *sql.Rows) error {
			var id, ns int64
			var name, st string
			if err := r.Scan(&id, &ns, &name, &st); err != nil {
				return err
			}
			s.repoName[id], s.repoNS[id] = name, ns
			if st != "active" {
				s.find(Leak, "repository "+name, "is left in state %s", st)
			}
			return nil
		}},
		{"review", `SELECT kind, object, review_after, attempts, cause, reason FROM review`, func(r *sql.Rows) error {
			var kind review.Kind
			var obj, cause, reason string
			var after, attempts int64
			if err := r.Scan(&kind, &obj, &after, &attempts, &cause, &reason); err != nil {
				return err
			}
			if s.reviews[kind] == nil {
				s.reviews[kind] = map[string]int64{}
			}
			s.reviews[kind][obj] = after
			if after <= s.now {
				s.find(Leak, "review "+string(kind)+" "+obj, "was due at %s and is not decided (%d attempts, cause %q, reason %q)", at(after), attempts, cause, reason)
			} else {
				s.rep.Pending++
			}
			return nil
		}},
		{"manifest", `SELECT repository_id, digest, subject_digest, pushed_at, deleted_at FROM manifest`, func(r *sql.Rows) error {
			var k mkey
			var m manifestRow
			var deleted sql.NullInt64
			if err := r.Scan(&k.repo, &k.digest, &m.subject, &m.pushed, &deleted); err != nil {
				return err
			}
			m.withdrawn = deleted.Valid
			s.manifests[k] = m
			return nil
		}},
		{"manifest_child", `SELECT repository_id, parent_digest, child_digest FROM manifest_child`, func(r *sql.Rows) error {
			var k mkey
			var c string
			if err := r.Scan(&k.repo, &k.digest, &c); err != nil {
				return err
			}
			s.children[k] = append(s.children[k], c)
			return nil
		}},
		{"manifest_blob", `SELECT repository_id, manifest_digest, blob_digest FROM manifest_blob`, func(r *sql.Rows) error {
			var k mkey
			var b string
			if err := r.Scan(&k.repo, &k.digest, &b); err != nil {
				return err
			}
			s.mblobs[k] = append(s.mblobs[k], b)
			s.usedLinks[mkey{k.repo, b}] = true
			return nil
		}},
		{"manifest_label", `SELECT label_id FROM manifest_label`, func(r *sql.Rows) error {
			var id int64
			if err := r.Scan(&id); err != nil {
				return err
			}
			s.usedLabel[id] = true
			return nil
		}},
	}
	for _, st := range steps {
		if err := s.query(ctx, st.table, st.q, st.scan); err != nil {
			return err
		}
	}
	// A referrer lives while its subject does, unless it was withdrawn:
	// a stored subject does not undo the DELETE of its signature.
	for k, m := range s.manifests {
		if m.subject != "" && !m.withdrawn {
			subj := mkey{k.repo, m.subject}
			s.referrers[subj] = append(s.referrers[subj], k.digest)
		}
	}
	return nil
}

// tagsAndManifests finds the roots (tags live or inside their window,
// manifests inside their grace, pinned manifests), closes them over
// children and referrers, and reports tags and manifests out of place. It
// returns the reachable manifests.
func (s *state) tagsAndManifests(ctx context.Context) (map[mkey]bool, error) {
	reach := map[mkey]bool{}
	var frontier []mkey
	// from names what made k reachable, for a SAFETY finding.
	mark := func(k mkey, from string) {
		if reach[k] {
			return
		}
		if _, ok := s.manifests[k]; !ok {
			s.find(Safety, "manifest "+s.mname(k), "is reachable (%s) but not stored", from)
			return
		}
		reach[k] = true
		frontier = append(frontier, k)
	}
	err := s.query(ctx, "tag", `SELECT id, repository_id, name, manifest_digest, lifetime_end, expires_at FROM tag`, func(r *sql.Rows) error {
		var id, repo int64
		var name, d string
		var end, exp sql.NullInt64
		if err := r.Scan(&id, &repo, &name, &d, &end, &exp); err != nil {
			return err
		}
		what := fmt.Sprintf("tag %s:%s (row %d)", s.repoName[repo], name, id)
		// The effective end: an expiry is an end announced in advance,
		// whether or not the expiry scan has written lifetime_end yet.
		eff, ended := end.Int64, end.Valid
		if exp.Valid && (!ended || exp.Int64 < eff) {
			eff, ended = exp.Int64, true
		}
		window := s.retention[s.repoNS[repo]]
		switch {
		case !ended || eff > s.now:
			mark(mkey{repo, d}, "live "+what)
		case eff+window > s.now:
			mark(mkey{repo, d}, what+" inside its time-machine window")
		case s.pending(review.KindTag, review.TagObject(repo, id)):
		case !end.Valid:
			s.find(Leak, what, "-> %s expired at %s, outside its %s window, and was never ended", d, at(eff), time.Duration(window)*time.Microsecond)
		default:
			s.find(Leak, what, "-> %s ended at %s, outside its %s window, and is still stored", d, at(eff), time.Duration(window)*time.Microsecond)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	grace := s.in.Windows.Grace.Microseconds()
	for k, m := range s.manifests {
		// The grace keeps a manifest pushed by digest, but not one the
		// client withdrew.
		if !m.withdrawn && m.pushed+grace > s.now {
			mark(k, "inside its untagged grace")
		}
	}
	for _, p := range s.in.Pinned {
		o, err := review.Parse(review.KindManifest, p)
		if err != nil {
			return nil, fmt.Errorf("pinned manifest: %w", err)
		}
		mark(mkey{o.RepoID, o.Digest.String()}, "pinned")
	}
	closure := func() {
		for len(frontier) > 0 {
			k := frontier[len(frontier)-1]
			frontier = frontier[:len(frontier)-1]
			for _, c := range s.children[k] {
				mark(mkey{k.repo, c}, "child of "+s.mname(k))
			}
			for _, r := range s.referrers[k] {
				mark(mkey{k.repo, r}, "referrer of "+s.mname(k))
			}
		}
	}
	closure()
	s.rep.Reachable["manifest"] = len(reach)
	// What a review due later will look at again is not a leak, and
	// neither is what it keeps until then.
	kept := reach
	reach = map[mkey]bool{}
	for k := range kept {
		reach[k] = true
	}
	for k := range s.manifests {
		if !reach[k] && s.pending(review.KindManifest, k.object()) {
			mark(k, "pending review")
		}
	}
	closure()
	kept, reach = reach, kept
	for k, m := range s.manifests {
		if kept[k] {
			continue
		}
		how := ""
		if m.withdrawn {
			how = "withdrawn, "
		}
		s.find(Leak, "manifest "+s.mname(k), "(%spushed %s) is stored but not reachable", how, at(m.pushed))
	}
	return reach, nil
}

type blobRow struct {
	size int64
	key  string
}

// linksAndBlobs checks upload markers, links, blobs and labels. It returns
// the blob rows, and their digests by storage key.
func (s *state) linksAndBlobs(ctx context.Context, reach map[mkey]bool) (map[string]blobRow, map[string]string, error) {
	reachLinks := map[mkey]bool{}
	for k := range reach {
		for _, b := range s.mblobs[k] {
			reachLinks[mkey{k.repo, b}] = true
		}
	}
	liveMarker := map[mkey]bool{}
	err := s.query(ctx, "uploaded_blob", `SELECT repository_id, blob_digest, expires_at FROM uploaded_blob`, func(r *sql.Rows) error {
		var k mkey
		var exp int64
		if err := r.Scan(&k.repo, &k.digest, &exp); err != nil {
			return err
		}
		switch {
		case exp > s.now:
			liveMarker[k] = true
			reachLinks[k] = true
		case s.pending(review.KindUploadedBlob, k.object()):
		default:
			s.find(Leak, "upload marker "+s.mname(k), "expired at %s and is still stored", at(exp))
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	links := map[mkey]bool{}
	linked := map[string]bool{}
	err = s.query(ctx, "repository_blob", `SELECT repository_id, blob_digest FROM repository_blob`, func(r *sql.Rows) error {
		var k mkey
		if err := r.Scan(&k.repo, &k.digest); err != nil {
			return err
		}
		links[k] = true
		linked[k.digest] = true
		// A link lives while any stored manifest lists its blob
		// (withdrawn ones too) or an unexpired marker protects it.
		if !s.usedLinks[k] && !liveMarker[k] && !s.pending(review.KindLink, k.object()) {
			s.find(Leak, "link "+s.mname(k), "is used by no manifest and no unexpired upload marker")
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	blobs := map[string]blobRow{}
	keys := map[string]string{}
	err = s.query(ctx, "blob", `SELECT digest, size, storage_key FROM blob`, func(r *sql.Rows) error {
		var d string
		var b blobRow
		if err := r.Scan(&d, &b.size, &b.key); err != nil {
			return err
		}
		blobs[d], keys[b.key] = b, d
		if !linked[d] && !s.pending(review.KindBlob, review.BlobObject(digest.Digest(d))) {
			s.find(Leak, "blob "+d, "has no link but its row is still stored")
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	reachBlobs := map[string]bool{}
	for k := range reachLinks {
		if !links[k] {
			s.find(Safety, "link "+s.mname(k), "is reachable but not stored")
			continue
		}
		if _, ok := blobs[k.digest]; !ok {
			s.find(Safety, "blob "+k.digest, "is reachable through %s but has no row", s.mname(k))
			continue
		}
		reachBlobs[k.digest] = true
	}
	s.rep.Reachable["link"] = len(reachLinks)
	s.rep.Reachable["blob"] = len(reachBlobs)
	err = s.query(ctx, "label", `SELECT id, key, value FROM label`, func(r *sql.Rows) error {
		var id int64
		var k, v string
		if err := r.Scan(&id, &k, &v); err != nil {
			return err
		}
		if !s.usedLabel[id] && !s.pending(review.KindLabel, review.LabelObject(id)) {
			s.find(Leak, fmt.Sprintf("label %d (%s=%s)", id, k, v), "is used by no manifest")
		}
		return nil
	})
	return blobs, keys, err
}

// uploadsAndTombstones checks upload sessions and tombstones; it returns
// the session ids and the tombstones' storage keys.
func (s *state) uploadsAndTombstones(ctx context.Context) (map[string]bool, map[string]bool, error) {
	sessions := map[string]bool{}
	expiry := s.in.Windows.UploadExpiry.Microseconds()
	err := s.query(ctx, "upload", `SELECT id, repository_id, updated_at FROM upload`, func(r *sql.Rows) error {
		var id string
		var repo, upd int64
		if err := r.Scan(&id, &repo, &upd); err != nil {
			return err
		}
		sessions[id] = true
		if upd+expiry <= s.now && !s.pending(review.KindUpload, review.UploadObject(id)) {
			s.find(Leak, "upload session "+id, "of %s, idle since %s, is still stored", s.repoName[repo], at(upd))
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	tombs := map[string]bool{}
	err = s.query(ctx, "tombstone", `SELECT storage_key, since FROM tombstone`, func(r *sql.Rows) error {
		var k string
		var since int64
		if err := r.Scan(&k, &since); err != nil {
			return err
		}
		tombs[k] = true
		s.find(Leak, "tombstone "+k, "(since %s) is left", at(since))
		return nil
	})
	return sessions, tombs, err
}

// bytes checks that the store holds exactly the blob rows' bytes, each
// hashing to its digest, and staging only of open sessions.
func (s *state) bytes(ctx context.Context, blobs map[string]blobRow, keys map[string]string, sessions, tombs map[string]bool) {
	b := s.in.Bytes
	young := func(o Object) bool {
		if !s.in.SweepCutoff.IsZero() && o.ModTime.After(s.in.SweepCutoff) {
			s.rep.Excused++
			return true
		}
		return false
	}
	seen := map[string]bool{}
	for _, o := range b.Blobs {
		d, ok := keys[o.Key]
		switch {
		case ok:
			seen[o.Key] = true
			if b.Open != nil {
				s.verify(ctx, d, blobs[d], o)
			}
		case tombs[o.Key]: // reported with the tombstone
		case young(o):
		default:
			s.find(Leak, "bytes "+o.name(), "(%d bytes, modified %s) have no blob row and no tombstone", o.Size, o.ModTime.UTC().Format(time.RFC3339))
		}
	}
	for k, d := range keys {
		if !seen[k] {
			s.find(Safety, "blob "+d, "has a row but its bytes %s are missing", k)
		}
	}
	for _, o := range b.Staging {
		if !sessions[o.Key] && !young(o) {
			s.find(Leak, "staging "+o.name(), "has no upload session")
		}
	}
	for _, o := range b.Multipart {
		if !sessions[o.Key] && !young(o) {
			s.find(Leak, "multipart upload "+o.name(), "has no upload session")
		}
	}
	for _, o := range b.Foreign {
		s.find(Leak, "object "+o.name(), "is outside the store's layout")
	}
}

// verify hashes the bytes of blob d.
func (s *state) verify(ctx context.Context, d string, row blobRow, o Object) {
	r, err := s.in.Bytes.Open(ctx, o.Key)
	if err != nil {
		s.find(Safety, "blob "+d, "bytes %s cannot be read: %v", o.name(), err)
		return
	}
	defer r.Close()
	alg := digest.Digest(d).Algorithm()
	if !alg.Available() {
		s.find(Safety, "blob "+d, "has a row whose digest algorithm is unknown")
		return
	}
	h := alg.Digester()
	n, err := io.Copy(h.Hash(), r)
	got := h.Digest().String()
	if err != nil || got != d || n != row.size {
		s.find(Safety, "blob "+d, "bytes %s are corrupt: %d bytes (row: %d) hashing to %s (%v)", o.name(), n, row.size, got, err)
	}
}

// usage reports every usage counter that differs from the rows.
func (s *state) usage(ctx context.Context) error {
	if s.in.Store == nil {
		return nil
	}
	var diffs []meta.UsageDiff
	err := s.in.Store.View(ctx, func(tx meta.Tx) (err error) {
		diffs, err = tx.VerifyUsage(ctx, false)
		return err
	})
	if err != nil {
		return fmt.Errorf("verifying usage: %w", err)
	}
	for _, d := range diffs {
		s.find(Usage, string(d.Counter)+" "+d.Key, "counter %+v, rows say %+v", d.Got, d.Want)
	}
	return nil
}
