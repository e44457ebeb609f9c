package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
)

// The time machine: tag history, restore and expiry. Its promise
// (docs/design/gc.md, "The time machine"): a lifetime never ends before the
// moment berth records its end, and every lifetime that ended, however it
// ended, stays restorable with everything it reaches for its namespace's
// window. One function, restorable, decides what restore will bring back,
// for restore itself and for the history.

// Lifetime is one tag row as the time machine sees it at a moment.
type Lifetime struct {
	meta.Tag
	// Live: the tag points at Manifest now.
	Live bool
	// Restorable: restore would bring this lifetime back now, until
	// RestorableUntil (set for every lifetime that ended or will end).
	Restorable      bool
	RestorableUntil *time.Time
	// StartedBy started the lifetime; EndedBy and EndCause ended it. A
	// lifetime whose expiry passed before the collector recorded its end
	// has ended: EndCause expired, EndedBy the collector, as the
	// collector will record it. "" is unknown, or not ended.
	StartedBy meta.Actor
	EndedBy   meta.Actor
	EndCause  meta.EndCause
}

// History is the history of one tag of a repository (or of all its tags),
// newest first, under the namespace's effective window.
type History struct {
	Retention time.Duration
	Lifetimes []Lifetime
}

// TagHistory lists every lifetime of tag in repo (of every tag when tag is
// ""), newest first, at most maxTagRows.
func (r *Registry) TagHistory(ctx context.Context, repo, tag string) (History, error) {
	if err := validName(repo); err != nil {
		return History{}, err
	}
	if tag != "" {
		if err := oci.ValidateTag(tag); err != nil {
			return History{}, err
		}
	}
	now := r.now()
	var h History
	err := r.store.View(ctx, func(tx meta.Tx) error {
		h = History{}
		rp, err := readRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		if h.Retention, err = r.retention(ctx, tx, rp); err != nil {
			return err
		}
		rows, err := tx.TagHistory(ctx, rp.ID, tag, maxTagRows)
		if err != nil {
			return fmt.Errorf("reading history of tag %q: %w", tag, err)
		}
		stored := map[digest.Digest]bool{}
		for _, t := range rows {
			l := lifetimeAt(t, h.Retention, now)
			if l.Restorable {
				ok, seen := stored[t.Manifest]
				if !seen {
					if ok, err = manifestStored(ctx, tx, rp, t.Manifest, meta.LockNone); err != nil {
						return err
					}
					stored[t.Manifest] = ok
				}
				l.Restorable = ok
			}
			h.Lifetimes = append(h.Lifetimes, l)
		}
		return nil
	})
	return h, err
}

// lifetimeAt describes t at now under the window ret, as far as the tag row
// alone tells: Restorable still needs its manifest to be stored.
func lifetimeAt(t meta.Tag, ret time.Duration, now time.Time) Lifetime {
	l := Lifetime{Tag: t, Live: t.LiveAt(now), StartedBy: t.StartActor, EndedBy: t.EndActor, EndCause: t.EndCause}
	if t.End == nil && !l.Live {
		l.EndedBy, l.EndCause = meta.ActorCollector, meta.CauseExpired
	}
	if end := t.EffectiveEnd(); end != nil {
		until := end.Add(ret)
		l.RestorableUntil = &until
		l.Restorable = !l.Live && until.After(now)
	}
	return l
}

// manifestStored reports whether manifest d still has its row, withdrawn
// (DELETE by digest) or not: what a restore needs.
func manifestStored(ctx context.Context, tx meta.Tx, repo meta.Repository, d digest.Digest, lock meta.Lock) (bool, error) {
	_, err := tx.Manifest(ctx, repo.ID, d, lock)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading manifest %s: %w", d, err)
	}
	return true, nil
}

// restorable says why row cannot be restored at now under the window ret,
// or nil when it can. It locks the row's manifest FOR UPDATE (a restore
// writes it; the collector takes the same lock before deleting it).
func restorable(ctx context.Context, tx meta.Tx, repo meta.Repository, row meta.Tag, ret time.Duration, now time.Time) error {
	l := lifetimeAt(row, ret, now)
	if end := row.EffectiveEnd(); end == nil {
		return fmt.Errorf("tag %q of %q is live on %s: %w", row.Name, repo.Name, row.Manifest, ErrDenied)
	}
	if !l.Restorable {
		end := row.EffectiveEnd()
		return fmt.Errorf("tag %q of %q pointed at %s until %s, outside the %s time-machine window (restorable until %s): %w",
			row.Name, repo.Name, row.Manifest, end.UTC().Format(time.RFC3339), ret, l.RestorableUntil.UTC().Format(time.RFC3339), ErrDenied)
	}
	ok, err := manifestStored(ctx, tx, repo, row.Manifest, meta.LockUpdate)
	if err != nil {
		return err
	}
	if !ok {
		// Only a collector that judged every row on it outside its window
		// deletes a manifest; a window widened since cannot bring it back.
		return fmt.Errorf("tag %q of %q pointed at manifest %s, which the collector has deleted: %w", row.Name, repo.Name, row.Manifest, ErrDenied)
	}
	return nil
}

// RestoreTarget says which past lifetime of a tag RestoreTag brings back:
// the newest one that pointed at Digest, or the one live at At. Exactly one
// is set.
type RestoreTarget struct {
	Digest string
	At     *time.Time
}

// Restored is what RestoreTag did: the tag's live lifetime afterwards, and
// whether the restore changed it (false when the tag already pointed at
// that manifest).
type Restored struct {
	Lifetime
	Changed bool
}

// RestoreTag points tag back at the manifest of a past lifetime, as a new
// live row without expiry (restoring the old expiry would end it again at
// once). A manifest withdrawn by a DELETE by digest comes back with it, and
// so do the withdrawn children of an index. It is refused with ErrDenied
// when that lifetime ended longer ago than the namespace's retention (or
// its manifest was collected), ErrTagUnknown when no lifetime matches, and
// ErrImmutable when it would move a live tag an immutable rule covers.
// Restoring the lifetime that is live now changes nothing, and says so
// (Restored.Changed false).
func (r *Registry) RestoreTag(ctx context.Context, repo, tag string, target RestoreTarget) (Restored, error) {
	if err := validName(repo); err != nil {
		return Restored{}, err
	}
	if err := oci.ValidateTag(tag); err != nil {
		return Restored{}, err
	}
	var want digest.Digest
	switch {
	case target.Digest != "" && target.At != nil, target.Digest == "" && target.At == nil:
		return Restored{}, fmt.Errorf("restore needs exactly one of a digest or a time: %w", ErrInvalidArgument)
	case target.Digest != "":
		d, err := parseDigest(target.Digest)
		if err != nil {
			return Restored{}, err
		}
		want = d
	}
	now := r.now()
	var restored Lifetime
	var changed bool
	err := r.store.Update(ctx, func(tx meta.Tx) error {
		changed = false
		rp, err := writeRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		ret, err := r.retention(ctx, tx, rp)
		if err != nil {
			return err
		}
		hist, err := tx.TagHistory(ctx, rp.ID, tag, maxTagRows)
		if err != nil {
			return fmt.Errorf("reading history of tag %q: %w", tag, err)
		}
		var row *meta.Tag
		for i := range hist {
			t := hist[i]
			if want != "" && t.Manifest == want {
				row = &hist[i]
				break
			}
			if target.At != nil && !t.Start.After(*target.At) {
				if end := t.EffectiveEnd(); end == nil || end.After(*target.At) {
					row = &hist[i]
					break
				}
			}
		}
		if row == nil {
			if want != "" {
				return fmt.Errorf("tag %q of %q never pointed at %s: %w", tag, repo, want, ErrTagUnknown)
			}
			return fmt.Errorf("tag %q of %q did not exist at %s: %w", tag, repo, target.At.UTC().Format(time.RFC3339), ErrTagUnknown)
		}
		if cur, err := tx.LiveTag(ctx, rp.ID, tag, now); err == nil && cur.Manifest == row.Manifest {
			restored = lifetimeAt(cur, ret, now)
			return nil
		} else if err != nil && !isNotFound(err) {
			return fmt.Errorf("reading tag %q: %w", tag, err)
		}
		if err := restorable(ctx, tx, rp, *row, ret, now); err != nil {
			return err
		}
		if err := restoreManifest(ctx, tx, rp, row.Manifest, 0); err != nil {
			return err
		}
		if changed, err = r.putTag(ctx, tx, rp, tag, row.Manifest, nil, now); err != nil {
			return err
		}
		cur, err := tx.LiveTag(ctx, rp.ID, tag, now)
		if err != nil {
			return fmt.Errorf("reading restored tag %q: %w", tag, err)
		}
		restored = lifetimeAt(cur, ret, now)
		return nil
	})
	if err != nil {
		return Restored{}, err
	}
	if changed {
		r.emit(ctx, event.TagRestored, repo, restored.Manifest, tag, now)
	}
	return Restored{Lifetime: restored, Changed: changed}, nil
}

// maxIndexDepth bounds restoreManifest's walk down nested indexes; a chain
// deeper than this is not a real image.
const maxIndexDepth = 16

// restoreManifest brings back manifest d if a DELETE by digest withdrew it,
// and, if it is an index, its withdrawn children: a withdrawn index kept
// them stored (gc.md), so restoring it restores what it lists. The caller
// holds d's exclusive lock; children are locked here, parents before
// children as everywhere.
func restoreManifest(ctx context.Context, tx meta.Tx, repo meta.Repository, d digest.Digest, depth int) error {
	m, err := tx.Manifest(ctx, repo.ID, d, meta.LockUpdate)
	if err != nil {
		return fmt.Errorf("reading manifest %s: %w", d, err)
	}
	if m.Withdrawn() {
		if err := tx.RestoreManifest(ctx, repo.ID, d); err != nil {
			return err
		}
	}
	if depth >= maxIndexDepth {
		return nil
	}
	children, err := tx.ManifestChildren(ctx, repo.ID, d)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := restoreManifest(ctx, tx, repo, c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// Expiry is what SetTagExpiry sets: an expiry At a moment, or In a duration
// from the registry's now; neither clears it.
type Expiry struct {
	At *time.Time
	In *time.Duration
}

// SetTagExpiry sets (or clears) the expiry of the live row of tag. An
// expiry must not lie in the past: a lifetime never ends before berth
// records its end (ErrInvalidArgument; In = 0 ends it now). When the expiry
// passes, the tag no longer resolves; the collector's expiry scan records
// the end and the time machine keeps it for the namespace's window from the
// expiry on. A tag an immutable rule covers gets no expiry (ErrImmutable);
// clearing one is allowed.
func (r *Registry) SetTagExpiry(ctx context.Context, repo, tag string, e Expiry) (Lifetime, error) {
	if err := validName(repo); err != nil {
		return Lifetime{}, err
	}
	if err := oci.ValidateTag(tag); err != nil {
		return Lifetime{}, err
	}
	if e.At != nil && e.In != nil {
		return Lifetime{}, fmt.Errorf("expiry needs at most one of a time or a duration: %w", ErrInvalidArgument)
	}
	if e.In != nil && *e.In < 0 {
		return Lifetime{}, fmt.Errorf("expiry in %s is negative: %w", *e.In, ErrInvalidArgument)
	}
	now := r.now()
	at := e.At
	if e.In != nil {
		t := now.Add(*e.In)
		at = &t
	}
	if at != nil && at.Before(now) {
		return Lifetime{}, fmt.Errorf("expiry %s is in the past (now is %s): a tag ends no earlier than the request that ends it; to end it now, delete it (it stays restorable for the namespace's window): %w",
			at.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ErrInvalidArgument)
	}
	var l Lifetime
	err := r.store.Update(ctx, func(tx meta.Tx) error {
		rp, err := writeRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		t, err := liveTag(ctx, tx, rp, tag, now)
		if err != nil {
			return err
		}
		if at != nil {
			if rule, ok, err := r.immutableRule(ctx, tx, repo, tag); err != nil {
				return err
			} else if ok {
				return immutableError(repo, tag, rule, "given an expiry")
			}
		}
		if err := tx.SetTagExpiry(ctx, t.ID, at); err != nil {
			return fmt.Errorf("setting expiry of tag %q: %w", tag, err)
		}
		t.ExpiresAt = at
		ret, err := r.retention(ctx, tx, rp)
		if err != nil {
			return err
		}
		l = lifetimeAt(t, ret, now)
		return nil
	})
	return l, err
}
