package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/berth/berth/internal/meta"
)

// Rows that must be new (an account, a signing key) are inserted with ON
// CONFLICT DO NOTHING and a missing row is ErrExists. A unique violation
// would do, but on PostgreSQL it aborts the transaction and Update retries
// it as a concurrent insert; DO NOTHING also waits for a concurrent insert
// of the same key and then reports it taken.

const accountCols = `id, name, kind, namespace, secret_hash, admin, created_at, created_by, expires_at`

func scanAccount(row interface{ Scan(...any) error }) (meta.Account, error) {
	var a meta.Account
	var created int64
	var by string
	var expires sql.NullInt64
	if err := row.Scan(&a.ID, &a.Name, &a.Kind, &a.Namespace, &a.SecretHash, &a.Admin, &created, &by, &expires); err != nil {
		return a, err
	}
	a.CreatedAt, a.CreatedBy, a.ExpiresAt = fromUS(created), meta.Actor(by), fromNullUS(expires)
	return a, nil
}

func (t *tx) CreateAccount(ctx context.Context, a meta.Account) (meta.Account, error) {
	var id int64
	err := t.queryRow(ctx, `INSERT INTO account (name, kind, namespace, secret_hash, admin, created_at, created_by, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING id`,
		a.Name, a.Kind, a.Namespace, a.SecretHash, a.Admin, us(a.CreatedAt), string(a.CreatedBy), nullUS(a.ExpiresAt)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return meta.Account{}, fmt.Errorf("creating account %s: %w", a.Name, meta.ErrExists)
	}
	if err != nil {
		return meta.Account{}, fmt.Errorf("creating account %s: %w", a.Name, err)
	}
	return t.Account(ctx, a.Name)
}

func (t *tx) Account(ctx context.Context, name string) (meta.Account, error) {
	a, err := scanAccount(t.queryRow(ctx, `SELECT `+accountCols+` FROM account WHERE name = ?`, name))
	if err != nil {
		return a, notFound(err, "account %s", name)
	}
	return a, nil
}

func (t *tx) Accounts(ctx context.Context, kind, namespace string) ([]meta.Account, error) {
	rows, err := t.query(ctx, `SELECT `+accountCols+` FROM account
		WHERE (? = '' OR kind = ?) AND (? = '' OR namespace = ?) ORDER BY name`,
		kind, kind, namespace, namespace)
	if err != nil {
		return nil, fmt.Errorf("listing accounts: %w", err)
	}
	defer rows.Close()
	var out []meta.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("listing accounts: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func (t *tx) SetAccountSecret(ctx context.Context, name, hash string) error {
	res, err := t.exec(ctx, `UPDATE account SET secret_hash = ? WHERE name = ?`, hash, name)
	return affected(res, err, "setting the secret of account %s", name)
}

func (t *tx) SetAccountAdmin(ctx context.Context, name string, admin bool) error {
	res, err := t.exec(ctx, `UPDATE account SET admin = ? WHERE name = ?`, admin, name)
	return affected(res, err, "setting the admin flag of account %s", name)
}

func (t *tx) DeleteAccount(ctx context.Context, name string) error {
	if _, err := t.exec(ctx, `DELETE FROM account_grant WHERE account_id IN (SELECT id FROM account WHERE name = ?)`, name); err != nil {
		return fmt.Errorf("deleting grants of account %s: %w", name, err)
	}
	res, err := t.exec(ctx, `DELETE FROM account WHERE name = ?`, name)
	return affected(res, err, "deleting account %s", name)
}

func (t *tx) PutGrant(ctx context.Context, g meta.Grant) error {
	var id int64
	if err := t.queryRow(ctx, `SELECT id FROM account WHERE name = ?`, g.Account).Scan(&id); err != nil {
		return notFound(err, "granting %s on %s: account %s", g.Role, grantObject(g.Namespace, g.Repository), g.Account)
	}
	if _, err := t.exec(ctx, `INSERT INTO account_grant (account_id, namespace, repository, role, created_at, created_by)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, namespace, repository)
		DO UPDATE SET role = excluded.role, created_at = excluded.created_at, created_by = excluded.created_by`,
		id, g.Namespace, g.Repository, g.Role, us(g.CreatedAt), string(g.CreatedBy)); err != nil {
		return fmt.Errorf("granting %s on %s to %s: %w", g.Role, grantObject(g.Namespace, g.Repository), g.Account, err)
	}
	return nil
}

func (t *tx) DeleteGrant(ctx context.Context, account, namespace, repository string) error {
	res, err := t.exec(ctx, `DELETE FROM account_grant
		WHERE account_id IN (SELECT id FROM account WHERE name = ?) AND namespace = ? AND repository = ?`,
		account, namespace, repository)
	return affected(res, err, "deleting the grant of %s on %s", account, grantObject(namespace, repository))
}

// grantObject names what a grant is on, for messages.
func grantObject(namespace, repository string) string {
	if repository == "" {
		return "namespace " + namespace
	}
	return "repository " + repository
}

const grantCols = `a.name, g.namespace, g.repository, g.role, g.created_at, g.created_by`

func (t *tx) AccountGrants(ctx context.Context, account string) ([]meta.Grant, error) {
	rows, err := t.query(ctx, `SELECT `+grantCols+` FROM account_grant g JOIN account a ON a.id = g.account_id
		WHERE a.name = ? ORDER BY g.namespace, g.repository`, account)
	if err != nil {
		return nil, fmt.Errorf("listing grants of account %s: %w", account, err)
	}
	return scanGrants(rows)
}

func (t *tx) NamespaceGrants(ctx context.Context, namespace string) ([]meta.Grant, error) {
	rows, err := t.query(ctx, `SELECT `+grantCols+` FROM account_grant g JOIN account a ON a.id = g.account_id
		WHERE g.namespace = ? ORDER BY a.name, g.repository`, namespace)
	if err != nil {
		return nil, fmt.Errorf("listing grants on namespace %s: %w", namespace, err)
	}
	return scanGrants(rows)
}

func scanGrants(rows *sql.Rows) ([]meta.Grant, error) {
	defer rows.Close()
	var out []meta.Grant
	for rows.Next() {
		var g meta.Grant
		var created int64
		var by string
		if err := rows.Scan(&g.Account, &g.Namespace, &g.Repository, &g.Role, &created, &by); err != nil {
			return nil, fmt.Errorf("reading grants: %w", err)
		}
		g.CreatedAt, g.CreatedBy = fromUS(created), meta.Actor(by)
		out = append(out, g)
	}
	return out, rows.Err()
}

func (t *tx) SetNamespacePublic(ctx context.Context, name string, public bool) (meta.Namespace, error) {
	res, err := t.exec(ctx, `UPDATE namespace SET public = ? WHERE name = ?`, public, name)
	if err := affected(res, err, "setting the visibility of namespace %s", name); err != nil {
		return meta.Namespace{}, err
	}
	return t.Namespace(ctx, name, meta.LockNone)
}

const signingKeyCols = `id, algorithm, private_key, created_at, retired_at`

func (t *tx) SigningKeys(ctx context.Context) ([]meta.SigningKey, error) {
	rows, err := t.query(ctx, `SELECT `+signingKeyCols+` FROM signing_key ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("listing signing keys: %w", err)
	}
	defer rows.Close()
	var out []meta.SigningKey
	for rows.Next() {
		var k meta.SigningKey
		var created int64
		var retired sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PrivateKey, &created, &retired); err != nil {
			return nil, fmt.Errorf("reading signing keys: %w", err)
		}
		k.CreatedAt, k.RetiredAt = fromUS(created), fromNullUS(retired)
		out = append(out, k)
	}
	return out, rows.Err()
}

func (t *tx) PutSigningKey(ctx context.Context, k meta.SigningKey) error {
	res, err := t.exec(ctx, `INSERT INTO signing_key (`+signingKeyCols+`) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		k.ID, k.Algorithm, k.PrivateKey, us(k.CreatedAt), nullUS(k.RetiredAt))
	if err != nil {
		return fmt.Errorf("inserting signing key %s: %w", k.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("inserting signing key %s: %w", k.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("inserting signing key %s: %w", k.ID, meta.ErrExists)
	}
	return nil
}

// RetireSigningKey keeps the first retirement of a key: retiring it again
// (rotate-key --retire-older run twice) does not move its time.
func (t *tx) RetireSigningKey(ctx context.Context, id string, at time.Time) error {
	res, err := t.exec(ctx, `UPDATE signing_key SET retired_at = COALESCE(retired_at, ?) WHERE id = ?`, us(at), id)
	return affected(res, err, "retiring signing key %s", id)
}

func (t *tx) DeleteSigningKey(ctx context.Context, id string) error {
	res, err := t.exec(ctx, `DELETE FROM signing_key WHERE id = ?`, id)
	return affected(res, err, "deleting signing key %s", id)
}

// affected wraps the error of a statement that must change a row, and
// returns meta.ErrNotFound when it changed none.
func affected(res sql.Result, err error, format string, args ...any) error {
	if err != nil {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), meta.ErrNotFound)
	}
	return nil
}
