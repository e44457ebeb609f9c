package metatest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth/berth/internal/meta"
)

// createAccount creates a and returns the row as stored.
func createAccount(t *testing.T, s meta.Store, a meta.Account) meta.Account {
	t.Helper()
	var got meta.Account
	update(t, s, func(tx meta.Tx) (err error) {
		got, err = tx.CreateAccount(context.Background(), a)
		return err
	})
	return got
}

func accountNames(as []meta.Account) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	return out
}

// Accounts are created once, read back with every field (times in UTC),
// listed by kind and by a robot's namespace, changed and deleted.
func testAccounts(t *testing.T, s meta.Store) {
	ctx := context.Background()
	// A time in another zone, with nanoseconds the store does not keep.
	expires := t0.Add(30*24*time.Hour + 123).In(time.FixedZone("CET", 3600))
	alice := createAccount(t, s, meta.Account{Name: "alice", Kind: meta.AccountUser, SecretHash: "h-alice",
		CreatedAt: t0, CreatedBy: meta.ActorOperator})
	if alice.ID == 0 {
		t.Errorf("CreateAccount(alice): got ID 0, want the row's id")
	}
	robot := createAccount(t, s, meta.Account{Name: "acme+ci", Kind: meta.AccountRobot, Namespace: "acme", SecretHash: "h-ci",
		CreatedAt: t0.Add(time.Second), CreatedBy: meta.UserActor("alice"), ExpiresAt: &expires})
	createAccount(t, s, meta.Account{Name: "acme+deploy", Kind: meta.AccountRobot, Namespace: "acme", SecretHash: "h-deploy",
		CreatedAt: t0, CreatedBy: meta.UserActor("alice")})
	createAccount(t, s, meta.Account{Name: "other+ci", Kind: meta.AccountRobot, Namespace: "other", SecretHash: "h-other",
		CreatedAt: t0, CreatedBy: meta.UserActor("bob")})
	createAccount(t, s, meta.Account{Name: "bob", Kind: meta.AccountUser, SecretHash: "h-bob", CreatedAt: t0})

	wantExpires := t0.Add(30 * 24 * time.Hour)
	want := meta.Account{ID: robot.ID, Name: "acme+ci", Kind: meta.AccountRobot, Namespace: "acme", SecretHash: "h-ci",
		CreatedAt: t0.Add(time.Second), CreatedBy: meta.UserActor("alice"), ExpiresAt: &wantExpires}
	if diff := cmp.Diff(want, robot); diff != "" {
		t.Errorf("CreateAccount returned (-want +got):\n%s", diff)
	}
	view(t, s, func(tx meta.Tx) error {
		got, err := tx.Account(ctx, "acme+ci")
		if err != nil {
			return err
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Account(acme+ci) (-want +got):\n%s", diff)
		}
		if got.ExpiresAt.Location() != time.UTC || got.CreatedAt.Location() != time.UTC {
			t.Errorf("Account(acme+ci) times: got %v and %v, want UTC", got.CreatedAt.Location(), got.ExpiresAt.Location())
		}
		if got, err := tx.Account(ctx, "alice"); err != nil || got.ExpiresAt != nil || got.Admin || got.CreatedBy != meta.ActorOperator {
			t.Errorf("Account(alice): got %+v, %v; want no expiry, not admin, created by operator", got, err)
		}
		if _, err := tx.Account(ctx, "nobody"); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("Account(nobody): got %v, want ErrNotFound", err)
		}
		for _, tc := range []struct {
			kind, namespace string
			want            []string
		}{
			{"", "", []string{"acme+ci", "acme+deploy", "alice", "bob", "other+ci"}},
			{meta.AccountUser, "", []string{"alice", "bob"}},
			{meta.AccountRobot, "", []string{"acme+ci", "acme+deploy", "other+ci"}},
			{meta.AccountRobot, "acme", []string{"acme+ci", "acme+deploy"}},
			{meta.AccountRobot, "none", nil},
		} {
			got, err := tx.Accounts(ctx, tc.kind, tc.namespace)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(tc.want, accountNames(got)); diff != "" {
				t.Errorf("Accounts(%q, %q) (-want +got):\n%s", tc.kind, tc.namespace, diff)
			}
		}
		return nil
	})

	err := s.Update(ctx, func(tx meta.Tx) error {
		_, err := tx.CreateAccount(ctx, meta.Account{Name: "alice", Kind: meta.AccountUser, SecretHash: "other", CreatedAt: t0})
		return err
	})
	if !errors.Is(err, meta.ErrExists) {
		t.Errorf("CreateAccount(alice) again: got %v, want ErrExists", err)
	}

	update(t, s, func(tx meta.Tx) error {
		if err := tx.SetAccountSecret(ctx, "alice", "h-alice-2"); err != nil {
			return err
		}
		return tx.SetAccountAdmin(ctx, "alice", true)
	})
	view(t, s, func(tx meta.Tx) error {
		got, err := tx.Account(ctx, "alice")
		if err != nil || got.SecretHash != "h-alice-2" || !got.Admin {
			t.Errorf("alice after SetAccountSecret and SetAccountAdmin: got %+v, %v; want h-alice-2, admin", got, err)
		}
		return nil
	})
	update(t, s, func(tx meta.Tx) error { return tx.SetAccountAdmin(ctx, "alice", false) })
	view(t, s, func(tx meta.Tx) error {
		if got, err := tx.Account(ctx, "alice"); err != nil || got.Admin {
			t.Errorf("alice after SetAccountAdmin(false): got %+v, %v; want not admin", got, err)
		}
		return nil
	})
	for name, fn := range map[string]func(tx meta.Tx) error{
		"SetAccountSecret": func(tx meta.Tx) error { return tx.SetAccountSecret(ctx, "nobody", "h") },
		"SetAccountAdmin":  func(tx meta.Tx) error { return tx.SetAccountAdmin(ctx, "nobody", true) },
		"DeleteAccount":    func(tx meta.Tx) error { return tx.DeleteAccount(ctx, "nobody") },
	} {
		if err := s.Update(ctx, fn); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("%s of a missing account: got %v, want ErrNotFound", name, err)
		}
	}

	update(t, s, func(tx meta.Tx) error { return tx.DeleteAccount(ctx, "acme+deploy") })
	view(t, s, func(tx meta.Tx) error {
		if _, err := tx.Account(ctx, "acme+deploy"); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("Account after DeleteAccount: got %v, want ErrNotFound", err)
		}
		got, err := tx.Accounts(ctx, meta.AccountRobot, "acme")
		if diff := cmp.Diff([]string{"acme+ci"}, accountNames(got)); diff != "" || err != nil {
			t.Errorf("robots of acme after DeleteAccount (-want +got):\n%s%v", diff, err)
		}
		return nil
	})
	// The name is free again.
	again := createAccount(t, s, meta.Account{Name: "acme+deploy", Kind: meta.AccountRobot, Namespace: "acme", SecretHash: "h", CreatedAt: t0})
	if again.Name != "acme+deploy" {
		t.Errorf("CreateAccount after DeleteAccount: got %+v", again)
	}
}

// Grants are upserted, deleted, listed by account and by namespace, and go
// with their account.
func testGrants(t *testing.T, s meta.Store) {
	ctx := context.Background()
	for _, n := range []string{"alice", "bob"} {
		createAccount(t, s, meta.Account{Name: n, Kind: meta.AccountUser, SecretHash: "h", CreatedAt: t0})
	}
	createAccount(t, s, meta.Account{Name: "acme+ci", Kind: meta.AccountRobot, Namespace: "acme", SecretHash: "h", CreatedAt: t0})
	by := meta.UserActor("root")
	grants := []meta.Grant{
		{Account: "bob", Namespace: "acme", Role: "read", CreatedAt: t0, CreatedBy: by},
		{Account: "alice", Namespace: "acme", Repository: "acme/app", Role: "write", CreatedAt: t0, CreatedBy: by},
		{Account: "alice", Namespace: "zeta", Role: "admin", CreatedAt: t0, CreatedBy: by},
		{Account: "alice", Namespace: "acme", Role: "read", CreatedAt: t0, CreatedBy: by},
		{Account: "acme+ci", Namespace: "acme", Repository: "acme/app", Role: "write", CreatedAt: t0, CreatedBy: meta.UserActor("alice")},
		{Account: "bob", Namespace: "other", Role: "write", CreatedAt: t0, CreatedBy: by},
	}
	update(t, s, func(tx meta.Tx) error {
		for _, g := range grants {
			if err := tx.PutGrant(ctx, g); err != nil {
				return err
			}
		}
		return nil
	})
	// The second put of a grant changes its role and who made it when.
	later := t0.Add(time.Hour)
	update(t, s, func(tx meta.Tx) error {
		return tx.PutGrant(ctx, meta.Grant{Account: "alice", Namespace: "acme", Role: "admin", CreatedAt: later, CreatedBy: meta.ActorOperator})
	})
	err := s.Update(ctx, func(tx meta.Tx) error {
		return tx.PutGrant(ctx, meta.Grant{Account: "nobody", Namespace: "acme", Role: "read", CreatedAt: t0})
	})
	if !errors.Is(err, meta.ErrNotFound) {
		t.Errorf("PutGrant to a missing account: got %v, want ErrNotFound", err)
	}

	view(t, s, func(tx meta.Tx) error {
		got, err := tx.AccountGrants(ctx, "alice")
		if err != nil {
			return err
		}
		want := []meta.Grant{
			{Account: "alice", Namespace: "acme", Role: "admin", CreatedAt: later, CreatedBy: meta.ActorOperator},
			{Account: "alice", Namespace: "acme", Repository: "acme/app", Role: "write", CreatedAt: t0, CreatedBy: by},
			{Account: "alice", Namespace: "zeta", Role: "admin", CreatedAt: t0, CreatedBy: by},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("AccountGrants(alice) (-want +got):\n%s", diff)
		}
		got, err = tx.NamespaceGrants(ctx, "acme")
		if err != nil {
			return err
		}
		want = []meta.Grant{
			{Account: "acme+ci", Namespace: "acme", Repository: "acme/app", Role: "write", CreatedAt: t0, CreatedBy: meta.UserActor("alice")},
			{Account: "alice", Namespace: "acme", Role: "admin", CreatedAt: later, CreatedBy: meta.ActorOperator},
			{Account: "alice", Namespace: "acme", Repository: "acme/app", Role: "write", CreatedAt: t0, CreatedBy: by},
			{Account: "bob", Namespace: "acme", Role: "read", CreatedAt: t0, CreatedBy: by},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("NamespaceGrants(acme) (-want +got):\n%s", diff)
		}
		if got, err := tx.NamespaceGrants(ctx, "empty"); len(got) != 0 || err != nil {
			t.Errorf("NamespaceGrants(empty): got %+v, %v; want none", got, err)
		}
		return nil
	})

	update(t, s, func(tx meta.Tx) error { return tx.DeleteGrant(ctx, "alice", "acme", "acme/app") })
	for _, tc := range [][3]string{
		{"alice", "acme", "acme/app"}, // just deleted
		{"alice", "zeta", "zeta/x"},   // only the namespace grant exists
		{"nobody", "acme", ""},
	} {
		err := s.Update(ctx, func(tx meta.Tx) error { return tx.DeleteGrant(ctx, tc[0], tc[1], tc[2]) })
		if !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("DeleteGrant%q: got %v, want ErrNotFound", tc, err)
		}
	}
	view(t, s, func(tx meta.Tx) error {
		got, err := tx.AccountGrants(ctx, "alice")
		if len(got) != 2 || got[0].Repository != "" || got[1].Namespace != "zeta" || err != nil {
			t.Errorf("AccountGrants(alice) after DeleteGrant: got %+v, %v; want acme and zeta", got, err)
		}
		return nil
	})

	// Deleting an account deletes its grants, and only its own.
	update(t, s, func(tx meta.Tx) error { return tx.DeleteAccount(ctx, "bob") })
	view(t, s, func(tx meta.Tx) error {
		if got, err := tx.AccountGrants(ctx, "bob"); len(got) != 0 || err != nil {
			t.Errorf("AccountGrants(bob) after DeleteAccount: got %+v, %v; want none", got, err)
		}
		got, err := tx.NamespaceGrants(ctx, "acme")
		var names []string
		for _, g := range got {
			names = append(names, g.Account)
		}
		if diff := cmp.Diff([]string{"acme+ci", "alice"}, names); diff != "" || err != nil {
			t.Errorf("NamespaceGrants(acme) after DeleteAccount(bob) (-want +got):\n%s%v", diff, err)
		}
		if got, err := tx.NamespaceGrants(ctx, "other"); len(got) != 0 || err != nil {
			t.Errorf("NamespaceGrants(other) after DeleteAccount(bob): got %+v, %v; want none", got, err)
		}
		return nil
	})
	// A new account of the same name starts with no grants.
	createAccount(t, s, meta.Account{Name: "bob", Kind: meta.AccountUser, SecretHash: "h", CreatedAt: t0})
	view(t, s, func(tx meta.Tx) error {
		if got, err := tx.AccountGrants(ctx, "bob"); len(got) != 0 || err != nil {
			t.Errorf("AccountGrants of a new bob: got %+v, %v; want none", got, err)
		}
		return nil
	})
}

// A namespace is private until made public; only an existing one can be.
func testNamespacePublic(t *testing.T, s meta.Store) {
	ctx := context.Background()
	err := s.Update(ctx, func(tx meta.Tx) error {
		_, err := tx.SetNamespacePublic(ctx, "nobody", true)
		return err
	})
	if !errors.Is(err, meta.ErrNotFound) {
		t.Errorf("SetNamespacePublic of a missing namespace: got %v, want ErrNotFound", err)
	}
	view(t, s, func(tx meta.Tx) error {
		if _, err := tx.Namespace(ctx, "nobody", meta.LockNone); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("namespace after a refused SetNamespacePublic: got %v, want ErrNotFound", err)
		}
		return nil
	})
	ret := time.Hour
	update(t, s, func(tx meta.Tx) error {
		ns, _, err := tx.CreateNamespace(ctx, "acme", &ret)
		if err != nil || ns.Public {
			t.Errorf("CreateNamespace(acme): got %+v, %v; want private", ns, err)
		}
		return err
	})
	repo(t, s, "pushed/app")
	for _, public := range []bool{true, false, true} {
		update(t, s, func(tx meta.Tx) error {
			ns, err := tx.SetNamespacePublic(ctx, "acme", public)
			if err != nil {
				return err
			}
			if ns.Name != "acme" || ns.Public != public || ns.TagRetention == nil || *ns.TagRetention != ret {
				t.Errorf("SetNamespacePublic(acme, %v): got %+v; want public=%v, its 1h window kept", public, ns, public)
			}
			return nil
		})
		view(t, s, func(tx meta.Tx) error {
			if ns, err := tx.Namespace(ctx, "acme", meta.LockNone); err != nil || ns.Public != public {
				t.Errorf("Namespace(acme) after SetNamespacePublic(%v): got %+v, %v", public, ns, err)
			}
			if ns, err := tx.Namespace(ctx, "pushed", meta.LockNone); err != nil || ns.Public {
				t.Errorf("Namespace(pushed): got %+v, %v; want private", ns, err)
			}
			return nil
		})
	}
	update(t, s, func(tx meta.Tx) error {
		ns, err := tx.SetNamespaceRetention(ctx, "acme", nil)
		if err != nil || !ns.Public {
			t.Errorf("SetNamespaceRetention(acme): got %+v, %v; want it still public", ns, err)
		}
		return err
	})
}

// Signing keys: inserted once under an id, listed newest first, retired
// once, deleted.
func testSigningKeys(t *testing.T, s meta.Store) {
	ctx := context.Background()
	view(t, s, func(tx meta.Tx) error {
		if got, err := tx.SigningKeys(ctx); len(got) != 0 || err != nil {
			t.Errorf("SigningKeys of an empty store: got %+v, %v; want none", got, err)
		}
		return nil
	})
	keys := []meta.SigningKey{
		{ID: "k1", Algorithm: "EdDSA", PrivateKey: []byte{0x30, 0x2e, 0x02, 0x01, 0x00, 0xff}, CreatedAt: t0},
		{ID: "k3", Algorithm: "EdDSA", PrivateKey: []byte("third"), CreatedAt: t0.Add(2 * time.Hour)},
		{ID: "k2", Algorithm: "ES256", PrivateKey: []byte("second"), CreatedAt: t0.Add(time.Hour).In(time.FixedZone("X", -7200))},
	}
	update(t, s, func(tx meta.Tx) error {
		for _, k := range keys {
			if err := tx.PutSigningKey(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	err := s.Update(ctx, func(tx meta.Tx) error {
		return tx.PutSigningKey(ctx, meta.SigningKey{ID: "k1", Algorithm: "EdDSA", PrivateKey: []byte("other"), CreatedAt: t0.Add(time.Minute)})
	})
	if !errors.Is(err, meta.ErrExists) {
		t.Errorf("PutSigningKey(k1) again: got %v, want ErrExists", err)
	}
	list := func() []meta.SigningKey {
		t.Helper()
		var got []meta.SigningKey
		view(t, s, func(tx meta.Tx) (err error) {
			got, err = tx.SigningKeys(ctx)
			return err
		})
		return got
	}
	want := []meta.SigningKey{keys[1], keys[2], keys[0]}
	want[1].CreatedAt = want[1].CreatedAt.UTC()
	if diff := cmp.Diff(want, list()); diff != "" {
		t.Errorf("SigningKeys (-want +got):\n%s", diff)
	}

	retired := t0.Add(3 * time.Hour)
	update(t, s, func(tx meta.Tx) error { return tx.RetireSigningKey(ctx, "k1", retired) })
	// A second retirement keeps the first time.
	update(t, s, func(tx meta.Tx) error { return tx.RetireSigningKey(ctx, "k1", retired.Add(time.Hour)) })
	got := list()
	if len(got) != 3 || got[2].ID != "k1" || got[2].RetiredAt == nil || !got[2].RetiredAt.Equal(retired) ||
		got[2].RetiredAt.Location() != time.UTC || got[0].RetiredAt != nil || got[1].RetiredAt != nil {
		t.Errorf("SigningKeys after retiring k1: got %+v; want k1 retired at %v, the others not", got, retired)
	}

	update(t, s, func(tx meta.Tx) error { return tx.DeleteSigningKey(ctx, "k1") })
	got = list()
	if len(got) != 2 || got[0].ID != "k3" || got[1].ID != "k2" {
		t.Errorf("SigningKeys after deleting k1: got %+v; want k3, k2", got)
	}
	for name, fn := range map[string]func(tx meta.Tx) error{
		"RetireSigningKey": func(tx meta.Tx) error { return tx.RetireSigningKey(ctx, "k1", retired) },
		"DeleteSigningKey": func(tx meta.Tx) error { return tx.DeleteSigningKey(ctx, "k1") },
	} {
		if err := s.Update(ctx, fn); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("%s of a missing key: got %v, want ErrNotFound", name, err)
		}
	}
}
