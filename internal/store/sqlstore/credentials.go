package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/credvault/credvault/internal/vault"
)

const credentialCols = `account_id, id, name, type, description, metadata, created_by, created_by_kind, created_at, updated_at, version, ciphertext, expires_at`

// credentialListCols is credentialCols without the ciphertext, which
// listings never need.
const credentialListCols = `account_id, id, name, type, description, metadata, created_by, created_by_kind, created_at, updated_at, version, NULL, expires_at`

func scanCredential(row interface{ Scan(...any) error }) (*vault.Credential, error) {
	var c vault.Credential
	var meta, kind string
	var created, updated int64
	var expires sql.NullInt64
	if err := row.Scan(&c.AccountID, &c.ID, &c.Name, &c.Type, &c.Description, &meta, &c.CreatedBy, &kind, &created, &updated, &c.Version, &c.Ciphertext, &expires); err != nil {
		return nil, err
	}
	c.ExpiresAt = fromNullTS(expires)
	c.Metadata = []byte(meta)
	c.CreatedByKind = vault.PrincipalKind(kind)
	c.CreatedAt, c.UpdatedAt = fromTS(created), fromTS(updated)
	return &c, nil
}

func (db *DB) CreateCredential(ctx context.Context, c *vault.Credential) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := db.execIn(ctx, tx, `INSERT INTO credentials (`+credentialCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.AccountID, c.ID, c.Name, c.Type, c.Description, string(c.Metadata), c.CreatedBy, string(c.CreatedByKind),
			ts(c.CreatedAt), ts(c.UpdatedAt), c.Version, c.Ciphertext, tsPtr(c.ExpiresAt)); err != nil {
			return err
		}
		if err := db.putVersion(ctx, tx, c); err != nil {
			return err
		}
		return db.bumpCount(ctx, tx, c.AccountID, 1)
	})
}

// CreateCredentials inserts many credentials in one transaction (bulk load).
func (db *DB) CreateCredentials(ctx context.Context, cs []*vault.Credential) error {
	if len(cs) == 0 {
		return nil
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, db.q(`INSERT INTO credentials (`+credentialCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		counts := map[string]int{}
		for _, c := range cs {
			if _, err := stmt.ExecContext(ctx, c.AccountID, c.ID, c.Name, c.Type, c.Description, string(c.Metadata), c.CreatedBy,
				string(c.CreatedByKind), ts(c.CreatedAt), ts(c.UpdatedAt), c.Version, c.Ciphertext, tsPtr(c.ExpiresAt)); err != nil {
				return err
			}
			if err := db.putVersion(ctx, tx, c); err != nil {
				return err
			}
			counts[c.AccountID]++
		}
		for acct, n := range counts {
			if err := db.bumpCount(ctx, tx, acct, n); err != nil {
				return err
			}
		}
		return nil
	})
}

func (db *DB) bumpCount(ctx context.Context, tx *sql.Tx, accountID string, delta int) error {
	_, err := db.execIn(ctx, tx, `INSERT INTO account_stats (account_id, credentials) VALUES (?, ?)
		ON CONFLICT (account_id) DO UPDATE SET credentials = account_stats.credentials + excluded.credentials`, accountID, delta)
	return err
}

func (db *DB) GetCredential(ctx context.Context, accountID, id string) (*vault.Credential, error) {
	return cached(ctx, db, &db.creds, cloneCredential, scanCredential,
		`SELECT `+credentialCols+` FROM credentials WHERE account_id = ? AND id = ?`, accountID, id)
}

func (db *DB) GetCredentialByName(ctx context.Context, accountID, name string) (*vault.Credential, error) {
	c, err := scanCredential(db.readRow(ctx, `SELECT `+credentialCols+` FROM credentials WHERE account_id = ? AND name = ?`, accountID, name))
	return c, db.translate(err)
}

func (db *DB) UpdateCredential(ctx context.Context, accountID, id string, fn func(*vault.Credential) error) (*vault.Credential, error) {
	var before int64 // the version read
	get := func(tx *sql.Tx) (*vault.Credential, error) {
		c, err := scanCredential(tx.QueryRowContext(ctx, db.q(`SELECT `+credentialCols+` FROM credentials WHERE account_id = ? AND id = ?`+db.d.forUpdate()), accountID, id))
		if err == nil {
			before = c.Version
		}
		return c, err
	}
	put := func(tx *sql.Tx, c *vault.Credential) error {
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE credentials SET name = ?, type = ?, description = ?, metadata = ?, updated_at = ?, version = ?, ciphertext = ?, expires_at = ?
			WHERE account_id = ? AND id = ?`),
			c.Name, c.Type, c.Description, string(c.Metadata), ts(c.UpdatedAt), c.Version, c.Ciphertext, tsPtr(c.ExpiresAt), accountID, id); err != nil {
			return err
		}
		if c.Version == before {
			return nil
		}
		return db.putVersion(ctx, tx, c)
	}
	return modify(ctx, db, get, fn, put)
}

func (db *DB) DeleteCredential(ctx context.Context, accountID, id string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.trashCredential(ctx, tx, accountID, id); err != nil {
			return err
		}
		var name, typ string
		var created, updated int64
		err := tx.QueryRowContext(ctx, db.q(`DELETE FROM credentials WHERE account_id = ? AND id = ? RETURNING name, type, created_at, updated_at`), accountID, id).
			Scan(&name, &typ, &created, &updated)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO credential_tombstones (account_id, id, name, type, created_at, updated_at, deleted_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, id) DO NOTHING`), accountID, id, name, typ, created, updated, ts(db.now())); err != nil {
			return err
		}
		return db.bumpCount(ctx, tx, accountID, -1)
	})
}

// sortColumn maps a sort field to its column and whether it is unique per
// account (then it alone orders rows; otherwise id breaks ties). The core
// validated the field (vault.IsSortField): another is a bug, not bad input.
func sortColumn(field string) (col string, unique bool, err error) {
	switch field {
	case vault.SortCreatedAt, vault.SortUpdatedAt, vault.SortType:
		return field, false, nil
	case vault.SortName, vault.SortID:
		return field, true, nil
	}
	return "", false, fmt.Errorf("list credentials: no column for sort field %q", field)
}

// ListCredentials implements keyset pagination: the cursor's sort key is
// looked up by id (in the live rows, then in unexpired tombstones), and the page is
// read with a range condition on the (sort column, id) index, so a page deep
// in the list costs the same as the first.
func (db *DB) ListCredentials(ctx context.Context, accountID string, q vault.CredentialQuery) (*vault.CredentialPage, error) {
	col, unique, err := sortColumn(q.SortBy)
	if err != nil {
		return nil, err
	}
	forward := q.Before == ""
	cursor, field := q.After, "after"
	if !forward {
		cursor, field = q.Before, "before"
	}
	asc := forward != q.Desc

	query := ` FROM credentials WHERE account_id = ?` // after the selected columns
	args := []any{accountID}
	if q.Name != nil {
		query += ` AND name = ?`
		args = append(args, *q.Name)
	}
	if cursor != "" {
		var key any
		cq := `SELECT ` + col + ` FROM credentials WHERE account_id = ? AND id = ?`
		err := db.readRow(ctx, cq, accountID, cursor).Scan(&key)
		tombstone := false
		if err == sql.ErrNoRows {
			// Tombstones older than the cursor horizon are expired: the
			// cursor is refused like an unknown id (see TombstoneTTL).
			tq := `SELECT ` + col + ` FROM credential_tombstones WHERE account_id = ? AND id = ? AND deleted_at >= ?`
			err = db.readRow(ctx, tq, accountID, cursor, db.tombstoneHorizon()).Scan(&key)
			tombstone = true
		}
		if err == sql.ErrNoRows {
			return nil, vault.FieldError(field, "no credential with this id exists in this account")
		}
		if err != nil {
			return nil, db.translate(fmt.Errorf("list credentials: cursor: %w", err))
		}
		op := ">"
		if !asc {
			op = "<"
		}
		switch {
		case unique && tombstone && col == vault.SortName:
			// Names are unique among live rows only: a live credential may
			// have taken the deleted cursor's name. Order it by id against the
			// cursor, as (name, id) would, while the range stays on name.
			query += ` AND ` + col + ` ` + op + `= ? AND (` + col + ` ` + op + ` ? OR id ` + op + ` ?)`
			args = append(args, key, key, cursor)
		case unique:
			query += ` AND ` + col + ` ` + op + ` ?`
			args = append(args, key)
		default:
			query += ` AND (` + col + `, id) ` + op + ` (?, ?)`
			args = append(args, key, cursor)
		}
	}
	dir := " ASC"
	if !asc {
		dir = " DESC"
	}
	query += ` ORDER BY ` + col + dir
	if !unique {
		query += `, id` + dir
	}
	query += ` LIMIT ?`
	args = append(args, q.Limit+1)

	page := &vault.CredentialPage{}
	if page.Items, err = db.listPage(ctx, accountID, query, args); err != nil {
		return nil, db.translate(fmt.Errorf("list credentials: %w", err))
	}
	if len(page.Items) > q.Limit {
		page.HasMore = true
		page.Items = page.Items[:q.Limit]
	}
	if !forward {
		slices.Reverse(page.Items)
	}

	if q.Name != nil {
		err = db.readRow(ctx, `SELECT COUNT(*) FROM credentials WHERE account_id = ? AND name = ?`, accountID, *q.Name).Scan(&page.Total)
	} else {
		err = db.readRow(ctx, `SELECT COALESCE(SUM(credentials), 0) FROM account_stats WHERE account_id = ?`, accountID).Scan(&page.Total)
	}
	if err != nil {
		return nil, db.translate(fmt.Errorf("list credentials: total: %w", err))
	}
	return page, nil
}

// listPage reads the rows of a listing (from, ordered and limited: the
// query after its column list) in two steps: the page's ids in order, from
// the index alone, then the rows themselves from the row cache where it
// holds them and in one query for the rest (kept for next time). Each cached
// row costs a map lookup instead of a row of thirteen columns through the
// driver. If a row goes between the two steps (deleted meanwhile), the page
// is read again in one query so that it is never short of a row that exists.
func (db *DB) listPage(ctx context.Context, accountID, from string, args []any) ([]vault.Credential, error) {
	// A listing's query has few shapes (sort, direction, cursor, name
	// filter; the limit is a parameter): its statement is prepared once.
	stmt, err := db.prepared(ctx, db.r, `SELECT id`+from)
	if err != nil {
		return nil, err
	}
	ids, err := queryStrings(ctx, stmt, args...)
	if err != nil {
		return nil, err
	}
	items := make([]vault.Credential, len(ids))
	gens := make([]uint64, len(ids))
	misses, cacheable := db.creds.getMany(&db.changes, listedCredential, accountID, ids, items, gens)
	if len(misses) == 0 {
		return items, nil
	}
	in := make([]string, len(misses))
	margs := []any{accountID}
	for j, i := range misses {
		in[j] = "?"
		margs = append(margs, ids[i])
	}
	read, err := queryAll(ctx, db.r, db.q(`SELECT `+credentialCols+` FROM credentials WHERE account_id = ? AND id IN (`+strings.Join(in, ", ")+`)`), scanCredential, margs...)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*vault.Credential, len(read))
	for j := range read {
		byID[read[j].ID] = &read[j]
	}
	for _, i := range misses {
		c, ok := byID[ids[i]]
		if !ok { // deleted between the two queries
			return queryAll(ctx, db.r, db.q(`SELECT `+credentialListCols+from), scanCredential, args...)
		}
		if cacheable {
			db.creds.keep(&db.changes, cloneCredential, gens[i], accountID, c.ID, c)
		}
		items[i] = *listedCredential(c)
	}
	return items, nil
}

// listedCredential copies a row for a listing: listings never carry
// ciphertext further than the store.
func listedCredential(c *vault.Credential) *vault.Credential {
	out := *c
	out.Ciphertext = nil
	return cloneCredential(&out)
}

// queryStrings runs a prepared query of one text column and returns its
// values.
func queryStrings(ctx context.Context, stmt *sql.Stmt, args ...any) ([]string, error) {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
