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

// MaxPage is the most entries one page of tags or of the catalog holds
// when the client asks for more, or for no limit.
const MaxPage = 10000

// page turns a client's n (negative: not given) into a limit.
func page(n int) int {
	if n < 0 || n > MaxPage {
		return MaxPage
	}
	return n
}

// Tags lists the names of live tags of repo after last, in lexical order, at
// most n (all, up to MaxPage, when n < 0). more reports whether a next page
// exists.
func (r *Registry) Tags(ctx context.Context, repo, last string, n int) (tags []string, more bool, err error) {
	if err := validName(repo); err != nil {
		return nil, false, err
	}
	limit := page(n)
	now := r.now()
	err = r.store.View(ctx, func(tx meta.Tx) error {
		rp, err := readRepo(ctx, tx, repo)
		if err != nil || limit == 0 {
			return err
		}
		tags, err = tx.Tags(ctx, rp.ID, now, last, limit+1)
		if err != nil {
			return fmt.Errorf("listing tags: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if len(tags) > limit {
		return tags[:limit], true, nil
	}
	return tags, false, nil
}

// Catalog lists active repository names after last, like Tags.
func (r *Registry) Catalog(ctx context.Context, last string, n int) (repos []string, more bool, err error) {
	limit := page(n)
	if limit == 0 {
		return nil, false, nil
	}
	err = r.store.View(ctx, func(tx meta.Tx) error {
		repos, err = tx.Repositories(ctx, "", last, limit+1)
		if err != nil {
			return fmt.Errorf("listing repositories: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if len(repos) > limit {
		return repos[:limit], true, nil
	}
	return repos, false, nil
}

// DeleteTag ends the live row of tag in repo now. The manifest stays
// reachable through the time machine for the namespace's retention; the
// tag row is reviewed when that window closes. A tag an immutable rule
// covers is not deleted (ErrImmutable).
func (r *Registry) DeleteTag(ctx context.Context, repo, tag string) error {
	if err := validName(repo); err != nil {
		return err
	}
	if err := oci.ValidateTag(tag); err != nil {
		return err
	}
	now := r.now()
	var d digest.Digest
	err := r.store.Update(ctx, func(tx meta.Tx) error {
		rp, err := writeRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		t, err := liveTag(ctx, tx, rp, tag, now)
		if err != nil {
			return err
		}
		if rule, ok, err := r.immutableRule(ctx, tx, repo, tag); err != nil {
			return err
		} else if ok {
			return immutableError(repo, tag, rule, "deleted")
		}
		d = t.Manifest
		if err := tx.EndTag(ctx, t.ID, now, ActorFrom(ctx), meta.CauseDeleted); err != nil {
			return fmt.Errorf("ending tag %q: %w", tag, err)
		}
		return r.reviewEndedTag(ctx, tx, rp, t, now, "deleted")
	})
	if err != nil {
		return err
	}
	r.emit(ctx, event.TagDeleted, repo, d, tag, now)
	return nil
}

func liveTag(ctx context.Context, tx meta.Tx, repo meta.Repository, tag string, now time.Time) (meta.Tag, error) {
	t, err := tx.LiveTag(ctx, repo.ID, tag, now)
	if isNotFound(err) {
		return t, fmt.Errorf("tag %q in repository %q: %w", tag, repo.Name, ErrTagUnknown)
	}
	if err != nil {
		return t, fmt.Errorf("reading tag %q: %w", tag, err)
	}
	return t, nil
}

// Referrers lists the manifests of repo whose subject is ds, filtered by
// artifactType when it is not "", as descriptors carrying their artifact
// type and annotations. An unknown subject, or repository, has no referrers
// (not an error: the spec answers 200 with an empty index).
func (r *Registry) Referrers(ctx context.Context, repo, ds, artifactType string) ([]oci.Descriptor, error) {
	if err := validName(repo); err != nil {
		return nil, err
	}
	d, err := parseDigest(ds)
	if err != nil {
		return nil, err
	}
	var rows []meta.Manifest
	err = r.store.View(ctx, func(tx meta.Tx) error {
		rp, err := tx.Repository(ctx, repo, meta.LockNone)
		if isNotFound(err) {
			return nil // an unknown repository has no referrers
		}
		if err != nil {
			return fmt.Errorf("reading repository %q: %w", repo, err)
		}
		// Filtered here, on the effective artifact type (see below).
		rows, err = tx.Referrers(ctx, rp.ID, d, "", meta.LockNone)
		if err != nil {
			return fmt.Errorf("listing referrers of %s: %w", d, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]oci.Descriptor, 0, len(rows))
	for _, m := range rows {
		if m.Withdrawn() {
			continue // deleted by digest: kept for the time machine, not listed
		}
		desc := oci.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size, ArtifactType: m.ArtifactType}
		if pm, err := oci.ParseManifest(m.MediaType, m.Body); err == nil {
			desc.Annotations = pm.Annotations
			// The referrers API reports config.mediaType even when it is
			// the standard image config type (the stored artifact type
			// leaves that one out).
			if desc.ArtifactType == "" && pm.MediaType == oci.MediaTypeOCIManifest && pm.Config != nil {
				desc.ArtifactType = pm.Config.MediaType
			}
		}
		if artifactType != "" && desc.ArtifactType != artifactType {
			continue
		}
		out = append(out, desc)
	}
	return out, nil
}
