package web

// The tag page (docs/design/web.md): GET /-/repositories/<repo>/-/tags/<tag>
// shows the tag's history as a timeline, every lifetime with who started
// and ended it and why, and until when it can be restored; POST …/restore
// brings a past lifetime back and POST …/expiry sets or clears the live
// tag's expiry.

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
)

// tagView is the tag page's data.
type tagView struct {
	Repo, Tag, Namespace string
	// Title is "REPO:TAG", the page's h1.
	Title string
	// Window is the namespace's time-machine window in words ("30 days").
	Window string
	// Live is the tag's live lifetime; nil when the tag is not live.
	Live *lifetimeView
	// Lifetimes are this page's, newest first; Total counts them all.
	Lifetimes []lifetimeView
	Total     int
	// Next is the ?before= of the next page ("" on the last); Paged says
	// this is not the first page.
	Next  string
	Paged bool
	// CanWrite: the visitor may restore and set expiries (the forms are
	// shown).
	CanWrite bool
	// Immutable is the ref of the immutable rule covering the tag, and
	// ImmutableScope the ?scope= of its policies page.
	Immutable, ImmutableScope string
	// Done is the message of a POST that succeeded (role=status); Error
	// that of one refused (role=alert).
	Done, Error string
	// ExpiresIn is the expiry form's value, kept when it was refused.
	ExpiresIn string
}

// lifetimeView is one lifetime of the timeline, in the words the page uses.
type lifetimeView struct {
	ID           int64
	Digest       string // full
	Short        string // algorithm and 12 hex digits
	Live         bool
	Stored       bool
	Withdrawn    bool
	Size         int64
	Start        time.Time
	How          string // "Pushed", "Restored" or "Tagged" (unknown)
	StartedBy    string // "" unknown
	End          *time.Time
	EndedBy      string // "" unknown
	Cause        string // meta.EndCause; "" unknown or live
	MovedTo      string // the short digest that replaced it, for "moved"
	MovedToFull  string
	Rule         string // for "policy": the rule's ref
	RuleScope    string // its policies page's ?scope=
	ExpiresAt    *time.Time
	ExpiresIn    string // the time left before the expiry, in words
	Restorable   bool
	Until        *time.Time // restorable until
	WindowPassed bool       // ended, and the window has passed
	// Current: an ended lifetime of the manifest the tag points at now
	// (restoring it would change nothing).
	Current bool
	// RestoreLabel is the accessible name of its Restore button;
	// RestoreConfirm the question asked first when the restore would move
	// the live tag.
	RestoreLabel, RestoreConfirm string
}

// tagFlashes are the tag page's messages after a POST (?done=); what they
// name is read from the tag now, never taken from the URL.
const (
	doneRestored  = "restored"
	doneUnchanged = "unchanged"
	doneExpirySet = "expiry-set"
	doneCleared   = "expiry-cleared"
)

// tag shows the tag page (GET …/-/tags/<tag>[?before=<lifetime>]): anyone
// who may pull from the repository sees it (others get 404); the forms are
// for those who may push.
func (h *Handler) tag(w http.ResponseWriter, r *http.Request) error {
	rt := routeOf(r)
	if err := h.authorize(r, auth.Pull(rt.Repo)); err != nil {
		return err
	}
	var q registry.TimelineQuery
	if s := r.URL.Query().Get("before"); s != "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("?before=%q is not a lifetime: %w", s, errBadForm)
		}
		q.Before = id
	}
	v, err := h.tagPage(r, rt, q)
	if err != nil {
		return err
	}
	v.Done = tagDone(r.URL.Query().Get("done"), v)
	return h.render(w, r, http.StatusOK, "tag", v)
}

// tagDone is the message of ?done=code, from the tag as it is now.
func tagDone(code string, v tagView) string {
	switch code {
	case doneRestored, doneUnchanged:
		if v.Live == nil {
			return "Restored " + v.Title + "."
		}
		if code == doneUnchanged {
			return v.Title + " already points at " + v.Live.Short + ": nothing to restore."
		}
		return "Restored " + v.Title + " to " + v.Live.Short + "."
	case doneExpirySet:
		if v.Live == nil || v.Live.ExpiresAt == nil {
			return "Expiry set."
		}
		return "Expiry set: " + v.Title + " expires at " + plainTime(*v.Live.ExpiresAt) + "."
	case doneCleared:
		return "Expiry cleared: " + v.Title + " stays until it is moved or deleted."
	}
	return ""
}

// tagPage reads the timeline and puts it into the page's words.
func (h *Handler) tagPage(r *http.Request, rt Route, q registry.TimelineQuery) (tagView, error) {
	tl, err := h.reg.TagTimeline(r.Context(), rt.Repo, rt.Tag, q)
	if err != nil {
		return tagView{}, err
	}
	ns, _, _ := strings.Cut(rt.Repo, "/")
	v := tagView{Repo: rt.Repo, Tag: rt.Tag, Namespace: ns, Title: rt.Repo + ":" + rt.Tag, Window: span(tl.Retention),
		Total: tl.Total, Paged: q.Before != 0, CanWrite: h.may(r, auth.Push(rt.Repo)), Immutable: tl.Immutable}
	if tl.Immutable != "" {
		v.ImmutableScope = policyScope(tl.Immutable)
	}
	if tl.Next != 0 {
		v.Next = strconv.FormatInt(tl.Next, 10)
	}
	var live string
	if tl.Live != nil {
		lv := lifetimeOf(*tl.Live, tl, "", v.Title)
		v.Live = &lv
		live = lv.Digest
	}
	for _, e := range tl.Entries {
		v.Lifetimes = append(v.Lifetimes, lifetimeOf(e, tl, live, v.Title))
	}
	return v, nil
}

// lifetimeOf describes e; live is the digest the tag points at now ("" if
// none), title "REPO:TAG".
func lifetimeOf(e registry.TimelineEntry, tl registry.TagTimeline, live, title string) lifetimeView {
	l := lifetimeView{ID: e.ID, Digest: e.Manifest.String(), Short: shortDigest(e.Manifest), Live: e.Live, Stored: e.Stored,
		Withdrawn: e.Withdrawn, Size: e.Size, Start: e.Start, StartedBy: actorWords(e.StartedBy), End: e.End,
		EndedBy: actorWords(e.EndedBy), Cause: string(e.EndCause), Rule: e.EndRule, Until: e.RestorableUntil}
	switch e.How {
	case registry.StartPushed:
		l.How = "Pushed"
	case registry.StartRestored:
		l.How = "Restored"
	default:
		l.How = "Tagged"
	}
	if l.End == nil && !e.Live {
		// The expiry passed; the collector records the end when it next
		// scans (lifetimeAt names it expired already).
		l.End = e.ExpiresAt
	}
	if e.Live {
		l.ExpiresAt = e.ExpiresAt
		if e.ExpiresAt != nil {
			l.ExpiresIn = duration.Format(e.ExpiresAt.Sub(tl.Now).Round(time.Minute))
		}
	}
	if e.MovedTo != "" {
		l.MovedTo, l.MovedToFull = shortDigest(e.MovedTo), e.MovedTo.String()
	}
	if l.Rule != "" {
		l.RuleScope = policyScope(l.Rule)
	}
	if !e.Live {
		l.Current = l.Digest == live
		l.Restorable = e.Restorable && !l.Current
		l.WindowPassed = e.RestorableUntil != nil && !e.RestorableUntil.After(tl.Now)
		verb := strings.ToLower(l.How)
		if e.How == registry.StartUnknown {
			verb = "from"
		}
		l.RestoreLabel = "Restore " + l.Short + " (" + verb + " " + plainTime(e.Start) + ")"
		if live != "" {
			l.RestoreConfirm = title + " points at " + shortDigest(live) + " now. Move it back to " + l.Short + "?"
		}
	}
	return l
}

// actorWords names an actor on the page: an account as recorded
// ("user:alice", "robot:team+ci"), the others in words; "" when unknown.
func actorWords(a meta.Actor) string {
	switch a {
	case meta.ActorAnonymous:
		return "an anonymous client"
	case meta.ActorCollector:
		return "the collector"
	case meta.ActorOperator:
		return "an operator (a berth command)"
	}
	return string(a)
}

// policyScope is the ?scope= of the policies page of a rule's ref
// ("scope:name"; the registry's scope "*" is "").
func policyScope(ref string) string {
	scope, _, _ := strings.Cut(ref, ":")
	if scope == meta.RegistryScope {
		return ""
	}
	return scope
}

// span says a window in words: whole days as days, else as berth writes
// durations.
func span(d time.Duration) string {
	switch {
	case d == duration.Day:
		return "1 day"
	case d > 0 && d%duration.Day == 0:
		return strconv.FormatInt(int64(d/duration.Day), 10) + " days"
	}
	return duration.Format(d)
}

// plainTime is t as the page writes it, in text (an accessible name, a
// message): UTC to the minute.
func plainTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") + " UTC" }

// tagRestore restores a past lifetime of the tag (POST …/restore, form
// field digest: its manifest; none: the newest lifetime that ended), then
// answers 303 to the tag page with the message. Refusals the visitor can
// act on (the window passed, the manifest was collected, an immutable
// rule, a manifest the tag never named) are shown on the page with the
// registry's reason.
func (h *Handler) tagRestore(w http.ResponseWriter, r *http.Request) error {
	rt, err := h.tagWrite(r)
	if err != nil {
		return err
	}
	d := strings.TrimSpace(r.PostForm.Get("digest"))
	if d == "" {
		if d, err = h.latestEnded(r, rt); err != nil {
			return h.tagRefused(w, r, rt, err, "")
		}
	}
	ctx := registry.WithActor(r.Context(), subjectOf(r).Actor)
	res, err := h.reg.RestoreTag(ctx, rt.Repo, rt.Tag, registry.RestoreTarget{Digest: d})
	if err != nil {
		return h.tagRefused(w, r, rt, fmt.Errorf("could not restore %s:%s: %w", rt.Repo, rt.Tag, err), "")
	}
	done := doneRestored
	if !res.Changed {
		done = doneUnchanged
	}
	http.Redirect(w, r, TagPath(rt.Repo, rt.Tag)+"?done="+done, http.StatusSeeOther)
	return nil
}

// latestEnded is the manifest of the newest lifetime of the tag that
// ended: what a restore without a digest brings back.
func (h *Handler) latestEnded(r *http.Request, rt Route) (string, error) {
	tl, err := h.reg.TagTimeline(r.Context(), rt.Repo, rt.Tag, registry.TimelineQuery{})
	if err != nil {
		return "", err
	}
	for _, e := range tl.Entries {
		if !e.Live {
			return e.Manifest.String(), nil
		}
	}
	return "", fmt.Errorf("%s:%s has no lifetime that ended: %w", rt.Repo, rt.Tag, registry.ErrTagUnknown)
}

// tagExpiry sets (form field expires_in, a duration from now: "36h",
// "7d") or clears (clear=1) the expiry of the live tag (POST …/expiry),
// then answers 303 to the tag page with the message.
func (h *Handler) tagExpiry(w http.ResponseWriter, r *http.Request) error {
	rt, err := h.tagWrite(r)
	if err != nil {
		return err
	}
	var e registry.Expiry
	in := strings.TrimSpace(r.PostForm.Get("expires_in"))
	done := doneCleared
	if r.PostForm.Get("clear") != "1" {
		if in == "" {
			return h.tagRefused(w, r, rt, fmt.Errorf("say when the tag expires: a duration from now such as 36h or 7d: %w", errBadForm), in)
		}
		d, err := duration.Parse(in)
		if err != nil {
			return h.tagRefused(w, r, rt, fmt.Errorf("%w; write a duration from now such as 36h or 7d: %w", err, errBadForm), in)
		}
		e.In, done = &d, doneExpirySet
	}
	ctx := registry.WithActor(r.Context(), subjectOf(r).Actor)
	if _, err := h.reg.SetTagExpiry(ctx, rt.Repo, rt.Tag, e); err != nil {
		return h.tagRefused(w, r, rt, fmt.Errorf("could not change the expiry of %s:%s: %w", rt.Repo, rt.Tag, err), in)
	}
	http.Redirect(w, r, TagPath(rt.Repo, rt.Tag)+"?done="+done, http.StatusSeeOther)
	return nil
}

// tagWrite checks a POST to the tag page: its CSRF token and origin
// first (403, whoever asks), then that the visitor may read the
// repository (404 otherwise, as the page) and push to it (403).
func (h *Handler) tagWrite(r *http.Request) (Route, error) {
	rt := routeOf(r)
	if err := checkCSRF(r); err != nil {
		return rt, err
	}
	if err := h.authorize(r, auth.Pull(rt.Repo)); err != nil {
		return rt, err
	}
	return rt, h.authorize(r, auth.Push(rt.Repo))
}

// refusals are the errors of the tag page's forms the visitor can act on,
// shown on the page (role=alert) with the status; the sentinel's own text
// is left out of the message, which says more.
var refusals = []struct {
	err    error
	status int
}{
	{registry.ErrImmutable, http.StatusConflict},
	{registry.ErrDenied, http.StatusConflict},
	{registry.ErrTagUnknown, http.StatusConflict},
	{registry.ErrInvalidArgument, http.StatusBadRequest},
	{registry.ErrDigestInvalid, http.StatusBadRequest},
	{errBadForm, http.StatusBadRequest},
}

// tagRefused answers a refused form with the tag page and the reason, or,
// when err is not the visitor's to act on (or the page cannot be read),
// returns it for the error page.
func (h *Handler) tagRefused(w http.ResponseWriter, r *http.Request, rt Route, err error, expiresIn string) error {
	status := 0
	for _, f := range refusals {
		if errors.Is(err, f.err) {
			status = f.status
			msg := err.Error()
			if !errors.Is(err, registry.ErrImmutable) {
				msg = strings.TrimSuffix(msg, ": "+f.err.Error())
			}
			err = errors.New(msg)
			break
		}
	}
	if status == 0 {
		return err
	}
	v, perr := h.tagPage(r, rt, registry.TimelineQuery{})
	if perr != nil {
		return perr
	}
	msg := err.Error()
	v.Error = strings.ToUpper(msg[:1]) + msg[1:]
	if !strings.HasSuffix(v.Error, ".") {
		v.Error += "."
	}
	v.ExpiresIn = expiresIn
	return h.render(w, r, status, "tag", v)
}
