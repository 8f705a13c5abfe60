package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// DSM storage: groups, apps, sessions. Security objects and integration
// credentials are in dsm_sobjects.go.

// scanner is a row to scan: *sql.Row, *sql.Rows. An alias, so that the
// scan functions written with the literal interface fit it too.
type scanner = interface{ Scan(...any) error }

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sqlstore: marshal %T: %v", v, err)) // only maps and slices of strings reach here
	}
	return string(b)
}

func metaFrom(s string) map[string]string {
	m := map[string]string{}
	_ = json.Unmarshal([]byte(s), &m)
	return m
}

// ---- groups ----

const groupCols = `account_id, id, name, description, custom_metadata, creator_kind, creator_id, created_at, updated_at`

func scanGroup(row scanner) (*vault.Group, error) {
	var g vault.Group
	var meta, kind string
	var created, updated int64
	if err := row.Scan(&g.AccountID, &g.ID, &g.Name, &g.Description, &meta, &kind, &g.Creator.ID, &created, &updated); err != nil {
		return nil, err
	}
	g.CustomMetadata = metaFrom(meta)
	g.Creator.Kind = vault.PrincipalKind(kind)
	g.CreatedAt, g.UpdatedAt = fromTS(created), fromTS(updated)
	return &g, nil
}

func (db *DB) CreateGroup(ctx context.Context, g *vault.Group) error {
	_, err := db.write(ctx, `INSERT INTO dsm_groups (`+groupCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		g.AccountID, g.ID, g.Name, g.Description, jsonText(g.CustomMetadata), string(g.Creator.Kind), g.Creator.ID, ts(g.CreatedAt), ts(g.UpdatedAt))
	return db.translate(err)
}

func (db *DB) GetGroup(ctx context.Context, accountID, id string) (*vault.Group, error) {
	return queryOne(ctx, db, scanGroup, `SELECT `+groupCols+` FROM dsm_groups WHERE account_id = ? AND id = ?`, accountID, id)
}

func (db *DB) ListGroups(ctx context.Context, accountID string) ([]vault.Group, error) {
	gs, err := queryAll(ctx, db.r, db.q(`SELECT `+groupCols+` FROM dsm_groups WHERE account_id = ? ORDER BY id`), scanGroup, accountID)
	return gs, db.translate(err)
}

func (db *DB) UpdateGroup(ctx context.Context, accountID, id string, fn func(*vault.Group) error) (*vault.Group, error) {
	get := func(tx *sql.Tx) (*vault.Group, error) {
		return scanGroup(tx.QueryRowContext(ctx, db.q(`SELECT `+groupCols+` FROM dsm_groups WHERE account_id = ? AND id = ?`+db.d.forUpdate()), accountID, id))
	}
	put := func(tx *sql.Tx, g *vault.Group) error {
		_, err := tx.ExecContext(ctx, db.q(`UPDATE dsm_groups SET name = ?, description = ?, custom_metadata = ?, updated_at = ? WHERE account_id = ? AND id = ?`),
			g.Name, g.Description, jsonText(g.CustomMetadata), ts(g.UpdatedAt), accountID, id)
		return err
	}
	return modify(ctx, db, get, fn, put)
}

func (db *DB) DeleteGroup(ctx context.Context, accountID, id string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		var dummy string
		if err := tx.QueryRowContext(ctx, db.q(`SELECT id FROM dsm_groups WHERE account_id = ? AND id = ?`+db.d.forUpdate()), accountID, id).Scan(&dummy); err != nil {
			return err
		}
		var objs, creds int
		if err := tx.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM dsm_sobjects WHERE account_id = ? AND group_id = ?`), accountID, id).Scan(&objs); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM dsm_credentials WHERE account_id = ? AND group_id = ?`), accountID, id).Scan(&creds); err != nil {
			return err
		}
		if objs > 0 || creds > 0 {
			return vault.Errorf(vault.KindConflict, "the group still holds %d security object(s) and %d integration credential(s); delete or move them first", objs, creds)
		}
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM dsm_app_groups WHERE account_id = ? AND group_id = ?`), accountID, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE dsm_apps SET default_group = '' WHERE account_id = ? AND default_group = ?`), accountID, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.q(`DELETE FROM dsm_groups WHERE account_id = ? AND id = ?`), accountID, id)
		return err
	})
}

// ---- apps ----

const appCols = `a.account_id, a.id, a.name, a.description, a.app_type, a.role, a.enabled, a.default_group, a.creator_kind, a.creator_id, a.created_at, a.updated_at,
	k.id IS NOT NULL, k.last_used_at`

const appFrom = ` FROM dsm_apps a LEFT JOIN api_keys k ON k.id = a.id AND k.revoked_at IS NULL`

func scanApp(row scanner) (*vault.App, error) {
	var a vault.App
	var role, kind string
	var created, updated int64
	var used sql.NullInt64
	if err := row.Scan(&a.AccountID, &a.ID, &a.Name, &a.Description, &a.AppType, &role, &a.Enabled, &a.DefaultGroup, &kind, &a.Creator.ID,
		&created, &updated, &a.SecretIssued, &used); err != nil {
		return nil, err
	}
	a.Role = vault.DSMRole(role)
	a.Creator.Kind = vault.PrincipalKind(kind)
	a.CreatedAt, a.UpdatedAt, a.LastUsedAt = fromTS(created), fromTS(updated), fromNullTS(used)
	return &a, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// maxAppGroupsIn bounds the apps whose groups loadAppGroups reads by id;
// for more it reads the account's.
const maxAppGroupsIn = 1000

func (db *DB) loadAppGroups(ctx context.Context, q querier, accountID string, apps []*vault.App) error {
	if len(apps) == 0 {
		return nil
	}
	byID := map[string]*vault.App{}
	for _, a := range apps {
		byID[a.ID] = a
		a.Groups = []vault.AppGroup{}
	}
	query := `SELECT app_id, group_id, permissions FROM dsm_app_groups WHERE account_id = ?`
	args := []any{accountID}
	if len(apps) <= maxAppGroupsIn {
		// A page: its apps' rows only (by the primary key).
		query += ` AND app_id IN ` + inClause(len(apps))
		for _, a := range apps {
			args = append(args, a.ID)
		}
	}
	rows, err := q.QueryContext(ctx, db.q(query+` ORDER BY group_id`), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var appID, groupID, perms string
		if err := rows.Scan(&appID, &groupID, &perms); err != nil {
			return err
		}
		if a := byID[appID]; a != nil {
			g := vault.AppGroup{GroupID: groupID, Permissions: []string{}}
			_ = json.Unmarshal([]byte(perms), &g.Permissions)
			a.Groups = append(a.Groups, g)
		}
	}
	return rows.Err()
}

func (db *DB) CreateApp(ctx context.Context, a *vault.App, p *vault.Principal, role vault.Role) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.insertPrincipal(ctx, tx, p, vault.Membership{PrincipalID: p.ID, AccountID: a.AccountID, Role: role}); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO dsm_apps (account_id, id, name, description, app_type, role, enabled, default_group, creator_kind, creator_id, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			a.AccountID, a.ID, a.Name, a.Description, a.AppType, string(a.Role), a.Enabled, a.DefaultGroup, string(a.Creator.Kind), a.Creator.ID, ts(a.CreatedAt), ts(a.UpdatedAt)); err != nil {
			return err
		}
		return db.writeAppGroups(ctx, tx, a)
	})
}

func (db *DB) writeAppGroups(ctx context.Context, tx *sql.Tx, a *vault.App) error {
	if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM dsm_app_groups WHERE account_id = ? AND app_id = ?`), a.AccountID, a.ID); err != nil {
		return err
	}
	for _, g := range a.Groups {
		var n int
		if err := tx.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM dsm_groups WHERE account_id = ? AND id = ?`), a.AccountID, g.GroupID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return vault.FieldError("add_groups", "add_groups names a group that does not exist in this account")
		}
		perms := g.Permissions
		if perms == nil {
			perms = []string{}
		}
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO dsm_app_groups (account_id, app_id, group_id, permissions) VALUES (?, ?, ?, ?)`),
			a.AccountID, a.ID, g.GroupID, jsonText(perms)); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) GetApp(ctx context.Context, accountID, id string) (*vault.App, error) {
	a, err := queryOne(ctx, db, scanApp, `SELECT `+appCols+appFrom+` WHERE a.account_id = ? AND a.id = ?`, accountID, id)
	if err != nil {
		return nil, err
	}
	if err := db.loadAppGroups(ctx, db.r, accountID, []*vault.App{a}); err != nil {
		return nil, db.translate(err)
	}
	return a, nil
}

// ListApps reads one page of apps: the conditions, the order (by id or
// name, both unique in an account), an exclusive start and the page bounds
// are all in the query, keyset-style like ListSobjects; a continuation
// token (q.From) first looks up the app the page starts at. Only the
// page's apps have their groups read.
func (db *DB) ListApps(ctx context.Context, accountID string, reach *vault.AppReach, q vault.AppListQuery) (*vault.AppPage, error) {
	wrap := func(err error) error { return db.translate(fmt.Errorf("list apps: %w", err)) }
	col := "a.id"
	if q.SortBy == "name" {
		col = "a.name" + db.d.bytewise()
	}
	after, dir := ">", "ASC"
	if q.Desc {
		after, dir = "<", "DESC"
	}
	where, args := ` WHERE a.account_id = ?`, []any{accountID}
	cond := func(c string, as ...any) { where, args = where+" AND "+c, append(args, as...) }
	inGroup := `EXISTS (SELECT 1 FROM dsm_app_groups g WHERE g.account_id = a.account_id AND g.app_id = a.id AND g.group_id `
	if reach != nil {
		if len(reach.Groups) == 0 {
			cond(`a.id = ?`, reach.Self)
		} else {
			in := []any{reach.Self}
			for _, g := range reach.Groups {
				in = append(in, g)
			}
			cond(`(a.id = ? OR `+inGroup+`IN `+inClause(len(reach.Groups))+`))`, in...)
		}
	}
	if q.Role != "" {
		cond(`a.role = ?`, string(q.Role))
	}
	if q.GroupID != "" {
		cond(inGroup+`= ?)`, q.GroupID)
	}
	if q.Start != "" {
		cond(col+" "+after+" ?", q.Start)
	}
	page := &vault.AppPage{Items: []vault.App{}}
	if q.Count {
		if err := db.r.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM dsm_apps a`+where), args...).Scan(&page.Count); err != nil {
			return nil, wrap(err)
		}
	}
	order := ` ORDER BY ` + col + ` ` + dir
	offset := q.Offset
	if q.From != "" {
		// The page starts at the first app in the order whose id is
		// greater than the token: look up its sort key.
		var key string
		err := db.r.QueryRowContext(ctx, db.q(`SELECT `+col+` FROM dsm_apps a`+where+` AND a.id > ?`+order+` LIMIT 1`), append(args, q.From)...).Scan(&key)
		if errors.Is(err, sql.ErrNoRows) {
			return page, nil
		}
		if err != nil {
			return nil, wrap(err)
		}
		cond(col+" "+after+"= ?", key)
		offset = 0
	}
	bounds := fmt.Sprintf(` OFFSET %d`, offset)
	if q.Limit > 0 {
		bounds = fmt.Sprintf(` LIMIT %d`, q.Limit+1) + bounds
	} else if db.d.name == SQLite {
		bounds = ` LIMIT -1` + bounds // SQLite has no OFFSET without LIMIT
	}
	apps, err := queryAll(ctx, db.r, db.q(`SELECT `+appCols+appFrom+where+order+bounds), scanApp, args...)
	if err != nil {
		return nil, wrap(err)
	}
	if q.Limit > 0 && len(apps) > q.Limit {
		apps, page.More = apps[:q.Limit], true
	}
	ptrs := make([]*vault.App, len(apps))
	for i := range apps {
		ptrs[i] = &apps[i]
	}
	if err := db.loadAppGroups(ctx, db.r, accountID, ptrs); err != nil {
		return nil, wrap(err)
	}
	page.Items = apps
	return page, nil
}

func (db *DB) UpdateApp(ctx context.Context, accountID, id string, fn func(*vault.App) error) (*vault.App, error) {
	get := func(tx *sql.Tx) (*vault.App, error) {
		a, err := scanApp(tx.QueryRowContext(ctx, db.q(`SELECT `+appCols+appFrom+` WHERE a.account_id = ? AND a.id = ?`+forUpdateOf(db.d, "a")), accountID, id))
		if err != nil {
			return nil, err
		}
		return a, db.loadAppGroups(ctx, tx, accountID, []*vault.App{a})
	}
	put := func(tx *sql.Tx, a *vault.App) error {
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE dsm_apps SET name = ?, description = ?, app_type = ?, role = ?, enabled = ?, default_group = ?, updated_at = ?
			WHERE account_id = ? AND id = ?`),
			a.Name, a.Description, a.AppType, string(a.Role), a.Enabled, a.DefaultGroup, ts(a.UpdatedAt), accountID, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE memberships SET role = ? WHERE principal_id = ? AND account_id = ?`), string(a.Role.CoreRole()), id, accountID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE principals SET name = ? WHERE id = ?`), a.Name, id); err != nil {
			return err
		}
		if !a.Enabled {
			// A disabled app loses its sessions at once.
			if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM dsm_sessions WHERE principal_id = ?`), id); err != nil {
				return err
			}
		}
		return db.writeAppGroups(ctx, tx, a)
	}
	return modify(ctx, db, get, fn, put)
}

func (db *DB) DeleteApp(ctx context.Context, accountID, id string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := found(tx.ExecContext(ctx, db.q(`DELETE FROM dsm_apps WHERE account_id = ? AND id = ?`), accountID, id)); err != nil {
			return err
		}
		return db.execEach(ctx, tx, []any{id},
			`DELETE FROM dsm_app_secrets WHERE app_id = ?`,
			`DELETE FROM dsm_sessions WHERE principal_id = ?`,
			`DELETE FROM api_keys WHERE principal_id = ?`,
			`DELETE FROM memberships WHERE principal_id = ?`,
			`DELETE FROM principals WHERE id = ?`,
		)
	})
}

func appExists(ctx context.Context, db *DB, tx *sql.Tx, accountID, appID string) error {
	var id string
	err := tx.QueryRowContext(ctx, db.q(`SELECT id FROM dsm_apps WHERE account_id = ? AND id = ?`+db.d.forUpdate()), accountID, appID).Scan(&id)
	if err == sql.ErrNoRows {
		return vault.ErrNotFound
	}
	return err
}

func (db *DB) insertAppKey(ctx context.Context, tx *sql.Tx, accountID string, k *vault.APIKey, sealed []byte) error {
	// The primary keys on api_keys.id and dsm_app_secrets.app_id make
	// exactly one concurrent issuer win.
	if err := db.insertAPIKey(ctx, tx, k); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, db.q(`INSERT INTO dsm_app_secrets (app_id, account_id, created_at, ciphertext) VALUES (?, ?, ?, ?)`),
		k.ID, accountID, ts(k.CreatedAt), sealed)
	return err
}

func (db *DB) IssueAppKey(ctx context.Context, accountID string, k *vault.APIKey, sealed []byte) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := appExists(ctx, db, tx, accountID, k.ID); err != nil {
			return err
		}
		return db.insertAppKey(ctx, tx, accountID, k, sealed)
	})
}

func (db *DB) GetAppSecret(ctx context.Context, accountID, appID string) (*vault.AppSecret, error) {
	var sec vault.AppSecret
	var created int64
	err := db.readRow(ctx, `SELECT s.app_id, k.hash, s.created_at, s.ciphertext FROM dsm_app_secrets s
		JOIN api_keys k ON k.id = s.app_id AND k.principal_id = s.app_id AND k.revoked_at IS NULL
		WHERE s.account_id = ? AND s.app_id = ?`, accountID, appID).Scan(&sec.AppID, &sec.KeyHash, &created, &sec.Ciphertext)
	if err != nil {
		return nil, db.translate(err)
	}
	sec.CreatedAt = fromTS(created)
	return &sec, nil
}

func (db *DB) ResetAppKey(ctx context.Context, accountID, appID string, r vault.AppKeyReset) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := appExists(ctx, db, tx, accountID, appID); err != nil {
			return err
		}
		if r.PreviousKeyID != "" {
			// The previous key (and the sessions it opened) keeps working
			// under a new id until PreviousUntil; the new key takes the
			// app's id.
			if _, err := tx.ExecContext(ctx, db.q(`UPDATE api_keys SET id = ?, expires_at = ? WHERE id = ? AND principal_id = ?`),
				r.PreviousKeyID, ts(r.PreviousUntil), appID, appID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, db.q(`UPDATE dsm_sessions SET key_id = ? WHERE key_id = ? AND principal_id = ?`), r.PreviousKeyID, appID, appID); err != nil {
				return err
			}
		} else {
			// Every key of the app (including previous ones still in their
			// migration period) and every session end now.
			if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM dsm_sessions WHERE principal_id = ?`), appID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM api_keys WHERE principal_id = ?`), appID); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM dsm_app_secrets WHERE app_id = ?`), appID); err != nil {
			return err
		}
		return db.insertAppKey(ctx, tx, accountID, r.New, r.Sealed)
	})
}

// ---- sessions ----

func (db *DB) CreateSession(ctx context.Context, s *vault.Session) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM dsm_sessions WHERE expires_at < ?`), ts(s.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO dsm_sessions (id, token_hash, principal_id, account_id, key_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			s.ID, s.TokenHash, s.PrincipalID, s.AccountID, s.KeyID, ts(s.CreatedAt), ts(s.ExpiresAt))
		return err
	})
}

func (db *DB) LookupSession(ctx context.Context, tokenHash []byte) (*vault.SessionRecord, error) {
	var rec vault.SessionRecord
	var kind, role string
	var created, expires, pCreated int64
	var keyRev, keyExp sql.NullInt64
	err := db.readRow(ctx, `SELECT s.id, s.token_hash, s.principal_id, s.account_id, s.key_id, s.created_at, s.expires_at,
			p.kind, p.name, p.default_account_id, p.created_at, COALESCE(m.role, ''),
			k.id IS NOT NULL, k.revoked_at, k.expires_at
		FROM dsm_sessions s
		JOIN principals p ON p.id = s.principal_id
		LEFT JOIN memberships m ON m.principal_id = s.principal_id AND m.account_id = s.account_id
		LEFT JOIN api_keys k ON k.id = s.key_id AND k.principal_id = s.principal_id
		WHERE s.token_hash = ?`, tokenHash).Scan(
		&rec.Session.ID, &rec.Session.TokenHash, &rec.Session.PrincipalID, &rec.Session.AccountID, &rec.Session.KeyID, &created, &expires,
		&kind, &rec.Principal.Name, &rec.Principal.DefaultAccountID, &pCreated, &role,
		&rec.KeyFound, &keyRev, &keyExp)
	if err != nil {
		return nil, db.translate(err)
	}
	rec.KeyRevokedAt, rec.KeyExpiresAt = fromNullTS(keyRev), fromNullTS(keyExp)
	rec.Session.CreatedAt, rec.Session.ExpiresAt = fromTS(created), fromTS(expires)
	rec.Principal.ID, rec.Principal.Kind, rec.Principal.CreatedAt = rec.Session.PrincipalID, vault.PrincipalKind(kind), fromTS(pCreated)
	rec.Role = vault.Role(role)
	return &rec, nil
}

func (db *DB) ExtendSession(ctx context.Context, id string, expiresAt time.Time) error {
	res, err := db.w.ExecContext(ctx, db.q(`UPDATE dsm_sessions SET expires_at = ? WHERE id = ?`), ts(expiresAt), id)
	if err == nil {
		db.changed(ctx)
	}
	return db.translate(found(res, err))
}

func (db *DB) SetSessionAccount(ctx context.Context, id, accountID string) error {
	return db.translate(found(db.write(ctx, `UPDATE dsm_sessions SET account_id = ? WHERE id = ?`, accountID, id)))
}

func (db *DB) DeleteSession(ctx context.Context, id string) error {
	_, err := db.write(ctx, `DELETE FROM dsm_sessions WHERE id = ?`, id)
	return db.translate(err)
}

// inClause returns "(?, ?, …)" for n values.
func inClause(n int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

// forUpdateOf locks only the rows of table alias t (PostgreSQL refuses FOR
// UPDATE on the nullable side of an outer join); SQLite needs no lock.
func forUpdateOf(d *dialect, t string) string {
	if d.name == Postgres {
		return " FOR UPDATE OF " + t
	}
	return ""
}

// reachClause restricts an audit query to what a group-scoped DSM caller
// reaches (vault.AuditReach): its own actions, and records about its
// groups and about the objects, credentials and apps now in them.
func reachClause(query string, args []any, accountID string, r *vault.AuditReach) (string, []any) {
	query += ` AND (principal_id = ?`
	args = append(args, r.ActorID)
	if n := len(r.Groups); n > 0 {
		in := inClause(n)
		query += ` OR object_id IN ` + in +
			` OR object_id IN (SELECT kid FROM dsm_sobjects WHERE account_id = ? AND group_id IN ` + in + `)` +
			` OR object_id IN (SELECT id FROM dsm_credentials WHERE account_id = ? AND group_id IN ` + in + `)` +
			` OR object_id IN (SELECT app_id FROM dsm_app_groups WHERE account_id = ? AND group_id IN ` + in + `)`
		for _, g := range r.Groups {
			args = append(args, g)
		}
		for range 3 {
			args = append(args, accountID)
			for _, g := range r.Groups {
				args = append(args, g)
			}
		}
	}
	return query + `)`, args
}
