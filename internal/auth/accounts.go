package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
)

// AddUser creates a user with a password; admin makes a registry
// administrator.
func (s *Service) AddUser(ctx context.Context, name, password string, admin bool, by meta.Actor) error {
	if err := ValidateUserName(name); err != nil {
		return err
	}
	if err := checkPassword(password); err != nil {
		return err
	}
	hash, err := s.hasher.hash(password)
	if err != nil {
		return err
	}
	err = s.store.Update(ctx, func(tx meta.Tx) error {
		// A user administers the namespace named after them: a new user
		// must not inherit a namespace that someone else's work is in.
		if _, err := tx.Namespace(ctx, name, meta.LockShare); err == nil {
			return fmt.Errorf("a namespace %q exists, and a user administers the namespace named after them; "+
				"choose another name, and grant this user a role on %s if they should have one: %w", name, name, ErrInvalid)
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		_, err := tx.CreateAccount(ctx, meta.Account{Name: name, Kind: meta.AccountUser, SecretHash: hash,
			Admin: admin, CreatedAt: s.opts.Now().UTC(), CreatedBy: by})
		return err
	})
	if errors.Is(err, meta.ErrExists) {
		return fmt.Errorf("user %q: %w", name, ErrAccountExists)
	}
	return err
}

// SetPassword replaces a user's password.
func (s *Service) SetPassword(ctx context.Context, name, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	hash, err := s.hasher.hash(password)
	if err != nil {
		return err
	}
	return s.changeUser(ctx, name, "delete it and add a new one to change its secret", func(tx meta.Tx) error {
		if err := tx.SetAccountSecret(ctx, name, hash); err != nil {
			return err
		}
		// Whoever signed in with the old password is signed out.
		_, err := tx.DeleteAccountSessions(ctx, name)
		return err
	})
}

// SetAdmin makes a user a registry administrator, or not.
func (s *Service) SetAdmin(ctx context.Context, name string, admin bool) error {
	return s.changeUser(ctx, name, "robots cannot be administrators", func(tx meta.Tx) error {
		return tx.SetAccountAdmin(ctx, name, admin)
	})
}

// changeUser runs change on user name's row, refusing a robot with
// notForRobots, and forgets this replica's cached credentials.
func (s *Service) changeUser(ctx context.Context, name, notForRobots string, change func(tx meta.Tx) error) error {
	err := s.store.Update(ctx, func(tx meta.Tx) error {
		a, err := tx.Account(ctx, name)
		if err != nil {
			return err
		}
		if a.Kind != meta.AccountUser {
			return fmt.Errorf("%q is a robot; %s: %w", name, notForRobots, ErrInvalid)
		}
		return change(tx)
	})
	s.forget()
	return accountErr(name, err)
}

// DeleteAccount deletes a user or robot, its grants and its web sessions.
func (s *Service) DeleteAccount(ctx context.Context, name string) error {
	err := s.store.Update(ctx, func(tx meta.Tx) error {
		return tx.DeleteAccount(ctx, name)
	})
	s.forget()
	return accountErr(name, err)
}

// Account reads one account (its hash is cleared).
func (s *Service) Account(ctx context.Context, name string) (meta.Account, error) {
	var a meta.Account
	err := s.store.View(ctx, func(tx meta.Tx) error {
		var err error
		a, err = tx.Account(ctx, name)
		return err
	})
	a.SecretHash = ""
	return a, accountErr(name, err)
}

// Accounts lists accounts of kind ("" for all), robots of namespace when
// it is not "" (hashes cleared).
func (s *Service) Accounts(ctx context.Context, kind, namespace string) ([]meta.Account, error) {
	var as []meta.Account
	err := s.store.View(ctx, func(tx meta.Tx) error {
		var err error
		as, err = tx.Accounts(ctx, kind, namespace)
		return err
	})
	for i := range as {
		as[i].SecretHash = ""
	}
	return as, err
}

// Robot is a robot account just created, with its secret (shown once).
type Robot struct {
	Name      string
	Secret    string
	Role      Role
	Target    string // namespace or repository
	ExpiresAt *time.Time
}

// AddRobot creates the robot "namespace+name" with role on target (its
// namespace, or a repository of it; "" means the namespace) and returns
// its secret, which is stored hashed and never shown again.
func (s *Service) AddRobot(ctx context.Context, name string, role Role, target string, expiresAt *time.Time, by meta.Actor) (Robot, error) {
	ns, _, err := SplitRobotName(name)
	if err != nil {
		return Robot{}, err
	}
	if target == "" {
		target = ns
	}
	if role == RoleNone {
		return Robot{}, fmt.Errorf("a robot needs a role (read, write or admin): %w", ErrInvalid)
	}
	if Namespace(target) != ns {
		return Robot{}, fmt.Errorf("robot %s belongs to namespace %s and cannot be granted %s: %w", name, ns, target, ErrInvalid)
	}
	now := s.opts.Now().UTC()
	if expiresAt != nil && !expiresAt.After(now) {
		return Robot{}, fmt.Errorf("expiry %s is not in the future: %w", expiresAt.Format(time.RFC3339), ErrInvalid)
	}
	secret := newSecret()
	hash, err := s.hasher.hash(secret)
	if err != nil {
		return Robot{}, err
	}
	err = s.store.Update(ctx, func(tx meta.Tx) error {
		g, err := grantOn(ctx, tx, name, role, target, now, by)
		if err != nil {
			return err
		}
		if _, err := tx.CreateAccount(ctx, meta.Account{Name: name, Kind: meta.AccountRobot, Namespace: ns,
			SecretHash: hash, CreatedAt: now, CreatedBy: by, ExpiresAt: expiresAt}); err != nil {
			return err
		}
		return tx.PutGrant(ctx, g)
	})
	if errors.Is(err, meta.ErrExists) {
		return Robot{}, fmt.Errorf("robot %q: %w", name, ErrAccountExists)
	}
	if err != nil {
		return Robot{}, err
	}
	return Robot{Name: name, Secret: secret, Role: role, Target: target, ExpiresAt: expiresAt}, nil
}

// grantOn builds the grant of role on target ("ns" or "ns/repo") to
// account, checking the namespace exists.
func grantOn(ctx context.Context, tx meta.Tx, account string, role Role, target string, now time.Time, by meta.Actor) (meta.Grant, error) {
	ns, repo := Namespace(target), ""
	if strings.Contains(target, "/") {
		if err := oci.ValidateRepoName(target); err != nil {
			return meta.Grant{}, fmt.Errorf("%w: %w", err, ErrInvalid)
		}
		repo = target
	} else if err := ValidateUserName(ns); err != nil {
		return meta.Grant{}, fmt.Errorf("namespace %q: %w", ns, ErrInvalid)
	}
	if _, err := tx.Namespace(ctx, ns, meta.LockShare); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return meta.Grant{}, fmt.Errorf("namespace %q does not exist (create it with berth namespace create %s): %w", ns, ns, ErrNamespaceUnknown)
		}
		return meta.Grant{}, err
	}
	return meta.Grant{Account: account, Namespace: ns, Repository: repo, Role: role.String(), CreatedAt: now, CreatedBy: by}, nil
}

// Grant gives account role on target: a namespace or a repository.
func (s *Service) Grant(ctx context.Context, account string, role Role, target string, by meta.Actor) error {
	if role == RoleNone {
		return fmt.Errorf("grant which role? want read, write or admin: %w", ErrInvalid)
	}
	err := s.store.Update(ctx, func(tx meta.Tx) error {
		a, err := tx.Account(ctx, account)
		if err != nil {
			return err
		}
		if a.Kind == meta.AccountRobot && Namespace(target) != a.Namespace {
			return fmt.Errorf("robot %s belongs to namespace %s and cannot be granted %s: %w", account, a.Namespace, target, ErrInvalid)
		}
		g, err := grantOn(ctx, tx, account, role, target, s.opts.Now().UTC(), by)
		if err != nil {
			return err
		}
		return tx.PutGrant(ctx, g)
	})
	return accountErr(account, err)
}

// Revoke deletes account's grant on target.
func (s *Service) Revoke(ctx context.Context, account, target string) error {
	ns, repo := Namespace(target), ""
	if strings.Contains(target, "/") {
		repo = target
	}
	err := s.store.Update(ctx, func(tx meta.Tx) error {
		return tx.DeleteGrant(ctx, account, ns, repo)
	})
	if errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("%s holds no grant on %s: %w", account, target, ErrGrantUnknown)
	}
	return err
}

// AccountGrants lists an account's grants; NamespaceGrants those on a
// namespace and its repositories.
func (s *Service) AccountGrants(ctx context.Context, account string) ([]meta.Grant, error) {
	var gs []meta.Grant
	err := s.store.View(ctx, func(tx meta.Tx) error {
		if _, err := tx.Account(ctx, account); err != nil {
			return err
		}
		var err error
		gs, err = tx.AccountGrants(ctx, account)
		return err
	})
	return gs, accountErr(account, err)
}

func (s *Service) NamespaceGrants(ctx context.Context, namespace string) ([]meta.Grant, error) {
	var gs []meta.Grant
	err := s.store.View(ctx, func(tx meta.Tx) error {
		var err error
		gs, err = tx.NamespaceGrants(ctx, namespace)
		return err
	})
	return gs, err
}

// SetVisibility makes a namespace public (anonymous pull) or private.
func (s *Service) SetVisibility(ctx context.Context, namespace string, public bool) error {
	err := s.store.Update(ctx, func(tx meta.Tx) error {
		_, err := tx.SetNamespacePublic(ctx, namespace, public)
		return err
	})
	if errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("namespace %q does not exist: %w", namespace, ErrNamespaceUnknown)
	}
	return err
}

// RotateKey adds a signing key that signs from now on, or, with
// retireOlder, retires every key but the newest. It returns the newest
// key's id and the ids retired.
func (s *Service) RotateKey(ctx context.Context, retireOlder bool) (string, []string, error) {
	return s.ring.rotate(ctx, retireOlder)
}

// accountErr turns the store's not-found into ErrAccountUnknown.
func accountErr(name string, err error) error {
	if errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("account %q: %w", name, ErrAccountUnknown)
	}
	return err
}
