package web

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// The pages' permission helpers: may and authorize answer from the
// database for the visitor; a read refused is errNotFound (a private
// namespace does not leak), anything else refused errForbidden; with
// access control off everything is allowed.
func TestAuthorize(t *testing.T) {
	sqltest.ForEach(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		svc := auth.New(s, auth.Options{Service: "registry.test", HashCost: bcrypt.MinCost})
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := svc.AddUser(ctx, "alice", "alice-password", false, meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(ctx, func(tx meta.Tx) error {
			_, _, err := tx.CreateNamespace(ctx, "acme", nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := svc.Grant(ctx, "alice", auth.RoleRead, "acme", meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		on, err := New(Options{Auth: svc, Now: time.Now})
		if err != nil {
			t.Fatal(err)
		}
		off, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		request := func(sub auth.Subject) *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			return r.WithContext(context.WithValue(r.Context(), visitKey{}, &visit{subject: sub, signedIn: !sub.IsAnonymous()}))
		}
		alice := auth.Subject{Actor: meta.UserActor("alice")}
		for _, tc := range []struct {
			name string
			h    *Handler
			sub  auth.Subject
			need auth.Need
			want error
		}{
			{"alice reads acme", on, alice, auth.Pull("acme/app"), nil},
			{"alice may not push to acme", on, alice, auth.Push("acme/app"), errForbidden},
			{"anonymous may not read private acme", on, auth.Anonymous, auth.Pull("acme/app"), errNotFound},
			{"anonymous may not read a namespace that does not exist", on, auth.Anonymous, auth.NamespaceNeed("nope", auth.ActionPull), errNotFound},
			{"alice is no administrator", on, alice, auth.RegistryNeed(auth.RegistryAdmin), errForbidden},
			{"access control off: anonymous pushes", off, auth.Anonymous, auth.Push("acme/app"), nil},
		} {
			r := request(tc.sub)
			if got := subjectOf(r); got != tc.sub {
				t.Errorf("%s: subjectOf = %v, want %v", tc.name, got, tc.sub)
			}
			err := tc.h.authorize(r, tc.need)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("%s: authorize = %v, want %v", tc.name, err, tc.want)
			}
			if may := tc.h.may(r, tc.need); may != (tc.want == nil) {
				t.Errorf("%s: may = %v, want %v", tc.name, may, tc.want == nil)
			}
		}
	})
}
