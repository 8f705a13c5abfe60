package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/credvault/credvault/internal/vault"
)

// ---- security objects ----

const sobjectCols = `account_id, kid, group_id, name, description, obj_type, key_size, elliptic_curve, key_ops, custom_metadata, enabled, state,
	allow_credential_use, origin, public_only, never_exportable, creator_kind, creator_id, created_at, updated_at, activation_date, deactivation_date,
	replaced, replacement, pub_key, version, ciphertext`

func scanSobject(row scanner) (*vault.Sobject, error) {
	var o vault.Sobject
	var ops, meta, kind string
	var created, updated, activation int64
	var deactivation sql.NullInt64
	if err := row.Scan(&o.AccountID, &o.KID, &o.GroupID, &o.Name, &o.Description, &o.ObjType, &o.KeySize, &o.EllipticCurve, &ops, &meta,
		&o.Enabled, &o.State, &o.AllowCredentialUse, &o.Origin, &o.PublicOnly, &o.NeverExportable, &kind, &o.Creator.ID,
		&created, &updated, &activation, &deactivation, &o.Replaced, &o.Replacement, &o.PubKey, &o.Version, &o.Ciphertext); err != nil {
		return nil, err
	}
	o.KeyOps = []string{}
	_ = json.Unmarshal([]byte(ops), &o.KeyOps)
	o.CustomMetadata = metaFrom(meta)
	o.Creator.Kind = vault.PrincipalKind(kind)
	o.CreatedAt, o.UpdatedAt, o.ActivationDate, o.DeactivationDate = fromTS(created), fromTS(updated), fromTS(activation), fromNullTS(deactivation)
	if len(o.PubKey) == 0 {
		o.PubKey = nil
	}
	return &o, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (db *DB) insertSobject(ctx context.Context, x execer, o *vault.Sobject) error {
	var pub any
	if len(o.PubKey) > 0 {
		pub = o.PubKey
	}
	_, err := x.ExecContext(ctx, db.q(`INSERT INTO dsm_sobjects (`+sobjectCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		o.AccountID, o.KID, o.GroupID, o.Name, o.Description, o.ObjType, o.KeySize, o.EllipticCurve, jsonText(o.KeyOps), jsonText(o.CustomMetadata),
		o.Enabled, o.State, o.AllowCredentialUse, o.Origin, o.PublicOnly, o.NeverExportable, string(o.Creator.Kind), o.Creator.ID,
		ts(o.CreatedAt), ts(o.UpdatedAt), ts(o.ActivationDate), tsPtr(o.DeactivationDate), o.Replaced, o.Replacement, pub, o.Version, o.Ciphertext)
	if err != nil {
		return err
	}
	return db.bumpGroupStat(ctx, x, o.AccountID, o.GroupID, 1, 0)
}

// bumpGroupStat adds to a group's counters of objects and credentials in
// dsm_group_stats, in the transaction of the change.
func (db *DB) bumpGroupStat(ctx context.Context, x execer, accountID, groupID string, sobjects, credentials int) error {
	_, err := x.ExecContext(ctx, db.q(`INSERT INTO dsm_group_stats (account_id, group_id, sobjects, credentials) VALUES (?, ?, ?, ?)
		ON CONFLICT (account_id, group_id) DO UPDATE SET sobjects = dsm_group_stats.sobjects + excluded.sobjects,
		credentials = dsm_group_stats.credentials + excluded.credentials`), accountID, groupID, sobjects, credentials)
	return err
}

// deleteCounted deletes the row of table (dsm_sobjects or dsm_credentials)
// whose idCol is id and takes it off its group's counters.
func (db *DB) deleteCounted(ctx context.Context, tx *sql.Tx, table, idCol, accountID, id string) error {
	var groupID string
	err := tx.QueryRowContext(ctx, db.q(`DELETE FROM `+table+` WHERE account_id = ? AND `+idCol+` = ? RETURNING group_id`), accountID, id).Scan(&groupID)
	if err == sql.ErrNoRows {
		return vault.ErrNotFound
	}
	if err != nil {
		return err
	}
	if table == "dsm_sobjects" {
		return db.bumpGroupStat(ctx, tx, accountID, groupID, -1, 0)
	}
	return db.bumpGroupStat(ctx, tx, accountID, groupID, 0, -1)
}

// updateSobject writes the mutable columns of o (not its key material).
func (db *DB) updateSobject(ctx context.Context, x execer, o *vault.Sobject) error {
	_, err := x.ExecContext(ctx, db.q(`UPDATE dsm_sobjects SET name = ?, description = ?, key_ops = ?, custom_metadata = ?, enabled = ?, state = ?,
		allow_credential_use = ?, never_exportable = ?, updated_at = ?, deactivation_date = ?, replaced = ?, replacement = ?
		WHERE account_id = ? AND kid = ?`),
		o.Name, o.Description, jsonText(o.KeyOps), jsonText(o.CustomMetadata), o.Enabled, o.State, o.AllowCredentialUse, o.NeverExportable,
		ts(o.UpdatedAt), tsPtr(o.DeactivationDate), o.Replaced, o.Replacement, o.AccountID, o.KID)
	return err
}

func (db *DB) CreateSobject(ctx context.Context, o *vault.Sobject) error {
	return db.tx(ctx, func(tx *sql.Tx) error { return db.insertSobject(ctx, tx, o) })
}

func (db *DB) GetSobject(ctx context.Context, accountID, kid string) (*vault.Sobject, error) {
	return cached(ctx, db, &db.sobjects, cloneSobject, scanSobject,
		`SELECT `+sobjectCols+` FROM dsm_sobjects WHERE account_id = ? AND kid = ?`, accountID, kid)
}

func (db *DB) GetSobjectByName(ctx context.Context, accountID, name string) (*vault.Sobject, error) {
	return queryOne(ctx, db, scanSobject, `SELECT `+sobjectCols+` FROM dsm_sobjects WHERE account_id = ? AND name = ?`, accountID, name)
}

// ListSobjects reads one page in one query on the (account, kid) or
// (account, name) index, after the counts when q.Count asks for them.
func (db *DB) ListSobjects(ctx context.Context, accountID string, groups []string, q vault.SobjectListQuery) (*vault.SobjectPage, error) {
	l := db.listing("dsm_sobjects", accountID, groups)
	page := &vault.SobjectPage{Items: []vault.Sobject{}}
	var err error
	if q.Count {
		if page.TotalCount, err = l.total(ctx, "sobjects"); err != nil {
			return nil, db.translate(fmt.Errorf("list sobjects: %w", err))
		}
	}
	l.eq("group_id", q.GroupID)
	l.eq("name", q.Name)
	l.eq("obj_type", q.ObjType)
	l.eq("creator_id", q.Creator)
	for k, v := range q.CustomMetadata {
		l.cond(`COALESCE(`+jsonKey(db.d, "custom_metadata")+`, '') = ?`, k, v)
	}
	if q.Count {
		if page.FilteredCount, err = l.count(ctx, page.TotalCount); err != nil {
			return nil, db.translate(fmt.Errorf("list sobjects: %w", err))
		}
	}
	err = l.page(ctx, sobjectCols, q.SortBy, q.Desc, q.Start, q.Offset, q.Limit, func(row scanner) error {
		o, err := scanSobject(row)
		if err != nil {
			return err
		}
		o.Ciphertext = nil // listings never carry key material further than here
		page.Items = append(page.Items, *o)
		return nil
	})
	if err != nil {
		return nil, db.translate(fmt.Errorf("list sobjects: %w", err))
	}
	return page, nil
}

// listing builds the query of a DSM listing: an account's rows in the
// groups in reach, conditions that must all hold, and one page of them in
// the order of a column unique per account (kid, id or name), so that an
// exclusive start is a range on that column's index.
type listing struct {
	db       *DB
	table    string
	groups   []string
	where    string
	args     []any
	filtered bool // conditions beyond the groups in reach
	none     bool // a condition no row meets
}

// listing starts a listing of table in accountID, limited to groups
// unless groups is nil.
func (db *DB) listing(table, accountID string, groups []string) *listing {
	l := &listing{db: db, table: table, groups: groups, where: " WHERE account_id = ?", args: []any{accountID}}
	l.in("group_id", groups)
	l.filtered = false
	return l
}

// cond adds a condition with its arguments.
func (l *listing) cond(sql string, args ...any) {
	l.where += " AND " + sql
	l.args = append(l.args, args...)
	l.filtered = true
}

// in adds expr IN vals; nil vals is no condition, an empty list matches nothing.
func (l *listing) in(expr string, vals []string, pre ...any) {
	switch {
	case vals == nil:
		return
	case len(vals) == 0:
		l.none, l.filtered = true, true
		return
	}
	args := pre
	for _, v := range vals {
		args = append(args, v)
	}
	l.cond(expr+" IN "+inClause(len(vals)), args...)
}

// eq adds col = v unless v is empty.
func (l *listing) eq(col, v string) {
	if v != "" {
		l.cond(col+" = ?", v)
	}
}

// total counts the rows in the groups in reach from their counters (col
// of dsm_group_stats): a sum over groups, whatever their size.
func (l *listing) total(ctx context.Context, col string) (int, error) {
	n := 0
	if l.groups != nil && len(l.groups) == 0 {
		return 0, nil
	}
	q, args := `SELECT COALESCE(SUM(`+col+`), 0) FROM dsm_group_stats WHERE account_id = ?`, []any{l.args[0]}
	if l.groups != nil {
		q += ` AND group_id IN ` + inClause(len(l.groups))
		args = append(args, l.args[1:1+len(l.groups)]...)
	}
	err := l.db.r.QueryRowContext(ctx, l.db.q(q), args...).Scan(&n)
	return n, err
}

// count counts the rows that meet the conditions: total when there are
// none beyond the groups, else a COUNT over the rows the conditions select
// (by index where they name a name, id, group or creator).
func (l *listing) count(ctx context.Context, total int) (int, error) {
	switch {
	case l.none:
		return 0, nil
	case !l.filtered:
		return total, nil
	}
	n := 0
	err := l.db.r.QueryRowContext(ctx, l.db.q(`SELECT COUNT(*) FROM `+l.table+l.where), l.args...).Scan(&n)
	return n, err
}

// page reads the rows after start (exclusive; "" from the first) in the
// order of col, skipping offset and stopping after limit, into each.
func (l *listing) page(ctx context.Context, cols, col string, desc bool, start string, offset, limit int, each func(scanner) error) error {
	if col != "kid" && col != "id" && col != "name" {
		return fmt.Errorf("cannot order a listing by %q", col)
	}
	if l.none {
		return nil
	}
	where, args := l.where, append([]any(nil), l.args...)
	op, dir := ">", "ASC"
	if desc {
		op, dir = "<", "DESC"
	}
	if start != "" {
		where += " AND " + col + " " + op + " ?"
		args = append(args, start)
	}
	return forRows(ctx, l.db.r, l.db.q(fmt.Sprintf(`SELECT %s FROM %s%s ORDER BY %s %s LIMIT %d OFFSET %d`, cols, l.table, where, col, dir, limit, offset)), args, each)
}

// jsonKey is the text value of the key given as the next argument in the
// JSON object stored in col (NULL when absent).
func jsonKey(d *dialect, col string) string {
	if d.name == Postgres {
		return "(" + col + "::jsonb ->> CAST(? AS TEXT))"
	}
	return "(SELECT value FROM json_each(" + col + ") WHERE key = ?)"
}

func (db *DB) getSobjectTx(ctx context.Context, tx *sql.Tx, accountID, kid string) (*vault.Sobject, error) {
	return scanSobject(tx.QueryRowContext(ctx, db.q(`SELECT `+sobjectCols+` FROM dsm_sobjects WHERE account_id = ? AND kid = ?`+db.d.forUpdate()), accountID, kid))
}

func (db *DB) UpdateSobject(ctx context.Context, accountID, kid string, fn func(*vault.Sobject) error) (*vault.Sobject, error) {
	get := func(tx *sql.Tx) (*vault.Sobject, error) { return db.getSobjectTx(ctx, tx, accountID, kid) }
	put := func(tx *sql.Tx, o *vault.Sobject) error { return db.updateSobject(ctx, tx, o) }
	return modify(ctx, db, get, fn, put)
}

func (db *DB) DeleteSobject(ctx context.Context, accountID, kid string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM dsm_credential_refs WHERE account_id = ? AND kid = ?`), accountID, kid).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return vault.Errorf(vault.KindConflict, "the security object is referenced by %d integration credential(s); update or delete them first", n)
		}
		// Links from other objects to this one stay: they name history.
		return db.deleteCounted(ctx, tx, "dsm_sobjects", "kid", accountID, kid)
	})
}

var errChanged = vault.Errorf(vault.KindConflict, "the object changed while it was being rotated; retry")

func (db *DB) Rekey(ctx context.Context, accountID string, plan vault.RekeyPlan) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		for i, st := range plan.Steps {
			cur, err := db.getSobjectTx(ctx, tx, accountID, st.Old.KID)
			if err != nil {
				if err == sql.ErrNoRows {
					return errChanged
				}
				return err
			}
			if cur.Name != st.Old.Name || cur.Replacement != "" || !cur.UpdatedAt.Equal(st.Old.UpdatedAt) {
				return errChanged
			}
			cur.Name, cur.Replacement, cur.UpdatedAt = st.OldNewName, st.New.KID, plan.At
			if st.Deactivate {
				at := plan.At
				cur.State, cur.DeactivationDate = vault.StateDeactivated, &at
			}
			// Rename the old object first so that the new one can take its name.
			if err := db.updateSobject(ctx, tx, cur); err != nil {
				return err
			}
			if err := db.insertSobject(ctx, tx, st.New); err != nil {
				return err
			}
			if plan.Hook != nil {
				if err := plan.Hook(i); err != nil {
					return err
				}
			}
		}
		if plan.Credential == nil {
			return nil
		}
		c := plan.Credential
		var details string
		var updated int64
		err := tx.QueryRowContext(ctx, db.q(`SELECT details, updated_at FROM dsm_credentials WHERE account_id = ? AND id = ?`+db.d.forUpdate()), accountID, c.ID).Scan(&details, &updated)
		if err == sql.ErrNoRows || (err == nil && (details != detailsJSON(&c.Details) || updated != ts(c.UpdatedAt))) {
			return vault.Errorf(vault.KindConflict, "the credential changed while it was being rotated; retry")
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE dsm_credentials SET details = ?, updated_at = ? WHERE account_id = ? AND id = ?`),
			detailsJSON(plan.CredentialDetails), ts(plan.At), accountID, c.ID); err != nil {
			return err
		}
		return db.writeRefs(ctx, tx, accountID, c.ID, plan.CredentialDetails)
	})
}

// ---- integration credentials ----

// storedDetails is the stored JSON form of vault.CredentialDetails.
type storedDetails struct {
	Provider     string `json:"provider"`
	Auth         string `json:"auth"`
	UserOCID     string `json:"user_ocid,omitempty"`
	TenantOCID   string `json:"tenant_ocid,omitempty"`
	SigningKey   string `json:"signing_key,omitempty"`
	TenantID     string `json:"tenant_id,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	ClientCert   string `json:"client_cert,omitempty"`
	ClientKey    string `json:"client_key,omitempty"`
}

func detailsJSON(d *vault.CredentialDetails) string { return jsonText(storedDetails(*d)) }

const credCols = `account_id, id, group_id, name, description, details, creator_kind, creator_id, created_at, updated_at`

func scanIntegrationCredential(row scanner) (*vault.IntegrationCredential, error) {
	var c vault.IntegrationCredential
	var desc sql.NullString
	var details, kind string
	var created, updated int64
	if err := row.Scan(&c.AccountID, &c.ID, &c.GroupID, &c.Name, &desc, &details, &kind, &c.Creator.ID, &created, &updated); err != nil {
		return nil, err
	}
	if desc.Valid {
		c.Description = &desc.String
	}
	var sd storedDetails
	if err := json.Unmarshal([]byte(details), &sd); err != nil {
		return nil, fmt.Errorf("credential %s: stored details: %w", c.ID, err)
	}
	c.Details = vault.CredentialDetails(sd)
	c.Creator.Kind = vault.PrincipalKind(kind)
	c.CreatedAt, c.UpdatedAt = fromTS(created), fromTS(updated)
	return &c, nil
}

func (db *DB) writeRefs(ctx context.Context, tx *sql.Tx, accountID, credID string, d *vault.CredentialDetails) error {
	if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM dsm_credential_refs WHERE account_id = ? AND credential_id = ?`), accountID, credID); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, r := range d.Refs() {
		if seen[r.KID] {
			continue
		}
		seen[r.KID] = true
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO dsm_credential_refs (account_id, credential_id, kid) VALUES (?, ?, ?)`), accountID, credID, r.KID); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) txGetter(ctx context.Context, tx *sql.Tx, accountID string) vault.SobjectGetter {
	return func(kid string) (*vault.Sobject, error) {
		o, err := db.getSobjectTx(ctx, tx, accountID, kid)
		if err != nil {
			return nil, db.translate(err)
		}
		o.Ciphertext = nil
		return o, nil
	}
}

func (db *DB) CreateIntegrationCredential(ctx context.Context, c *vault.IntegrationCredential, check func(vault.SobjectGetter) error) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := check(db.txGetter(ctx, tx, c.AccountID)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO dsm_credentials (`+credCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			c.AccountID, c.ID, c.GroupID, c.Name, c.Description, detailsJSON(&c.Details), string(c.Creator.Kind), c.Creator.ID, ts(c.CreatedAt), ts(c.UpdatedAt)); err != nil {
			return err
		}
		if err := db.bumpGroupStat(ctx, tx, c.AccountID, c.GroupID, 0, 1); err != nil {
			return err
		}
		return db.writeRefs(ctx, tx, c.AccountID, c.ID, &c.Details)
	})
}

func (db *DB) GetIntegrationCredential(ctx context.Context, accountID, id string) (*vault.IntegrationCredential, error) {
	return cached(ctx, db, &db.dsmCreds, cloneIntegrationCredential, scanIntegrationCredential,
		`SELECT `+credCols+` FROM dsm_credentials WHERE account_id = ? AND id = ?`, accountID, id)
}

// ListIntegrationCredentials reads the counts and one page, like ListSobjects.
func (db *DB) ListIntegrationCredentials(ctx context.Context, accountID string, groups []string, q vault.CredentialListQuery) (*vault.CredentialListPage, error) {
	l := db.listing("dsm_credentials", accountID, groups)
	page := &vault.CredentialListPage{Items: []vault.IntegrationCredential{}}
	var err error
	if page.TotalCount, err = l.total(ctx, "credentials"); err != nil {
		return nil, db.translate(fmt.Errorf("list integration credentials: %w", err))
	}
	f := q.Filter
	l.in("name", f.Names)
	l.in("group_id", f.GroupIDs)
	l.in("id", f.IDs)
	l.in(jsonKey(db.d, "details"), f.Types, "provider")
	l.in("creator_id", f.Creators)
	if page.FilteredCount, err = l.count(ctx, page.TotalCount); err != nil {
		return nil, db.translate(fmt.Errorf("list integration credentials: %w", err))
	}
	err = l.page(ctx, credCols, q.SortBy, q.Desc, q.Start, q.Offset, q.Limit, func(row scanner) error {
		c, err := scanIntegrationCredential(row)
		if err == nil {
			page.Items = append(page.Items, *c)
		}
		return err
	})
	if err != nil {
		return nil, db.translate(fmt.Errorf("list integration credentials: %w", err))
	}
	return page, nil
}

func (db *DB) UpdateIntegrationCredential(ctx context.Context, accountID, id string, fn func(*vault.IntegrationCredential, vault.SobjectGetter) error) (*vault.IntegrationCredential, error) {
	var getter vault.SobjectGetter // the objects as the transaction sees them
	get := func(tx *sql.Tx) (*vault.IntegrationCredential, error) {
		getter = db.txGetter(ctx, tx, accountID)
		return scanIntegrationCredential(tx.QueryRowContext(ctx, db.q(`SELECT `+credCols+` FROM dsm_credentials WHERE account_id = ? AND id = ?`+db.d.forUpdate()), accountID, id))
	}
	change := func(c *vault.IntegrationCredential) error { return fn(c, getter) }
	put := func(tx *sql.Tx, c *vault.IntegrationCredential) error {
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE dsm_credentials SET name = ?, description = ?, details = ?, updated_at = ? WHERE account_id = ? AND id = ?`),
			c.Name, c.Description, detailsJSON(&c.Details), ts(c.UpdatedAt), accountID, id); err != nil {
			return err
		}
		return db.writeRefs(ctx, tx, accountID, id, &c.Details)
	}
	return modify(ctx, db, get, change, put)
}

func (db *DB) DeleteIntegrationCredential(ctx context.Context, accountID, id string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM dsm_credential_refs WHERE account_id = ? AND credential_id = ?`), accountID, id); err != nil {
			return err
		}
		return db.deleteCounted(ctx, tx, "dsm_credentials", "id", accountID, id)
	})
}
