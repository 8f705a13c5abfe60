package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
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
	return queryOne(ctx, db, scanCredential, `SELECT `+credentialCols+` FROM credentials WHERE account_id = ? AND name = ?`, accountID, name)
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
		// The cursor's sort key: from the row cache when the cursor's row
		// is there (it usually is: it was on the previous page), so a page
		// after a cursor costs no more than the first. Otherwise the row is
		// read whole and kept, for the next page asked after the same cursor.
		var key any
		c, _, _ := db.creds.get(&db.changes, readOnly, accountID, cursor)
		var err error
		if c == nil {
			c, err = db.GetCredential(ctx, accountID, cursor)
		}
		if err == nil {
			key = credentialSortKey(c, col)
		}
		tombstone := false
		if errors.Is(err, vault.ErrNotFound) {
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
	order := col + dir
	if !unique {
		order += `, id` + dir
	}
	args = append(args, q.Limit+1)

	// The total comes with the page's ids, in the same statement (one
	// snapshot, one statement less per page).
	total, targs := `SELECT COALESCE(SUM(credentials), 0) FROM account_stats WHERE account_id = ?`, []any{accountID}
	if q.Name != nil {
		total, targs = `SELECT COUNT(*) FROM credentials WHERE account_id = ? AND name = ?`, []any{accountID, *q.Name}
	}
	page := &vault.CredentialPage{}
	if page.Items, page.Total, err = db.listPage(ctx, accountID, query, col, order, args, total, targs); err != nil {
		return nil, db.translate(fmt.Errorf("list credentials: %w", err))
	}
	if db.d.name == SQLite {
		// SQLite aggregated the page's ids without ordering them itself
		// (see pageIDs): put them in the query's order if they are not.
		if cmp := credentialOrder(col, asc); !slices.IsSortedFunc(page.Items, cmp) {
			slices.SortFunc(page.Items, cmp)
		}
	}
	if len(page.Items) > q.Limit {
		page.HasMore = true
		page.Items = page.Items[:q.Limit]
	}
	if !forward {
		slices.Reverse(page.Items)
	}
	return page, nil
}

// listPage reads the rows of a listing (where: the query after its column
// list, up to its ORDER BY; order: its ordering by col; the last argument
// is the limit) and its total (a query counting the listing's rows, with
// its arguments) in two steps: the page's ids in order, from the index
// alone, then the rows themselves from the row cache where it holds them
// and in one query for the rest (kept for next time). Each cached row costs
// a map lookup instead of a row of thirteen columns through the driver.
// If a row goes between the two steps (deleted meanwhile), the page is read
// again in one query so that it is never short of a row that exists.
func (db *DB) listPage(ctx context.Context, accountID, where, col, order string, args []any, total string, totalArgs []any) (items []vault.Credential, n int, err error) {
	ids, n, err := db.pageIDs(ctx, where, col, order, args, total, totalArgs)
	if err != nil {
		return nil, 0, err
	}
	items = make([]vault.Credential, len(ids))
	gens := make([]uint64, len(ids))
	misses, cacheable := db.creds.getMany(&db.changes, listedCredential, accountID, ids, items, gens)
	if len(misses) == 0 {
		return items, n, nil
	}
	in := make([]string, len(misses))
	margs := []any{accountID}
	for j, i := range misses {
		in[j] = "?"
		margs = append(margs, ids[i])
	}
	read, err := queryAll(ctx, db.r, db.q(`SELECT `+credentialCols+` FROM credentials WHERE account_id = ? AND id IN (`+strings.Join(in, ", ")+`)`), scanCredential, margs...)
	if err != nil {
		return nil, 0, err
	}
	byID := make(map[string]*vault.Credential, len(read))
	for j := range read {
		byID[read[j].ID] = &read[j]
	}
	for _, i := range misses {
		c, ok := byID[ids[i]]
		if !ok { // deleted between the two queries
			items, err = queryAll(ctx, db.r, db.q(`SELECT `+credentialListCols+where+` ORDER BY `+order+` LIMIT ?`), scanCredential, args...)
			return items, n, err
		}
		if cacheable {
			db.creds.keep(&db.changes, cloneCredential, gens[i], accountID, c.ID, c)
		}
		listedCredential(&items[i], c)
	}
	return items, n, nil
}

// pageIDs returns the ids of a listing's page in order. They come back as
// one JSON array, aggregated by the database: a page of 100 ids is then one
// row through the driver instead of 100 (with SQLite, per-row stepping,
// locking and scanning were most of a cached listing's cost). The
// subquery's ORDER BY and LIMIT choose the page's rows; in what order the
// aggregate sees them, see below. total, a query of one number, is run as
// a scalar subquery of the same statement. The statement is prepared once
// per shape (sort, direction, cursor, name filter; the limit is a
// parameter).
func (db *DB) pageIDs(ctx context.Context, where, col, order string, args []any, total string, totalArgs []any) ([]string, int, error) {
	cols := "id"
	if col != "id" {
		cols += ", " + col
	}
	// SQLite's json_group_array takes the subquery's rows in order in
	// practice, but SQL does not promise it, and ordering in the aggregate
	// sorts the page again (a third of the listing's cost): ListCredentials
	// checks the order of the rows instead. PostgreSQL orders in json_agg,
	// as its text order follows the database's collation, not Go's.
	agg := `json_group_array(id)`
	if db.d.name == Postgres {
		agg = `json_agg(id ORDER BY ` + order + `)`
	}
	stmt, err := db.prepared(ctx, db.r, `SELECT `+agg+`, (`+total+`) FROM (SELECT `+cols+where+` ORDER BY `+order+` LIMIT ?) page`)
	if err != nil {
		return nil, 0, err
	}
	var list sql.NullString // PostgreSQL's json_agg of no rows is NULL
	var n int
	// The total's placeholders come first in the statement.
	if err := stmt.QueryRowContext(ctx, append(slices.Clip(totalArgs), args...)...).Scan(&list, &n); err != nil {
		return nil, 0, err
	}
	ids, err := parseIDs(list.String)
	return ids, n, err
}

// parseIDs parses a JSON array of strings as the databases aggregate it
// (SQLite without spaces, PostgreSQL with one after each comma). Ids
// carry no escapes, so they are cut out of one string; anything else is
// left to encoding/json.
func parseIDs(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if strings.IndexByte(s, '\\') < 0 {
		if ids, ok := splitIDs(s); ok {
			return ids, nil
		}
	}
	var ids []string
	if err := json.Unmarshal([]byte(s), &ids); err != nil {
		return nil, fmt.Errorf("page ids: %w", err)
	}
	return ids, nil
}

// splitIDs cuts the strings out of a JSON array of strings without
// escapes; ok is false if s is not one.
func splitIDs(s string) (ids []string, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, false
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	if s == "" {
		return []string{}, true
	}
	ids = make([]string, 0, strings.Count(s, ",")+1)
	for {
		if len(s) < 2 || s[0] != '"' {
			return nil, false
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return nil, false
		}
		ids = append(ids, s[1:1+end])
		s = strings.TrimSpace(s[2+end:])
		if s == "" {
			return ids, true
		}
		if s[0] != ',' {
			return nil, false
		}
		s = strings.TrimSpace(s[1:])
	}
}

// credentialSortKey is c's value of the sort column col, as the database
// returns it (times as stored: microseconds since the epoch).
func credentialSortKey(c *vault.Credential, col string) any {
	switch col {
	case vault.SortCreatedAt:
		return ts(c.CreatedAt)
	case vault.SortUpdatedAt:
		return ts(c.UpdatedAt)
	case vault.SortName:
		return c.Name
	case vault.SortType:
		return c.Type
	}
	return c.ID
}

// readOnly is rowCache.get's clone for a caller that only reads the row's
// scalar fields and keeps nothing: no copy.
func readOnly[V any](v *V) *V { return v }

// credentialOrder compares credentials as SQLite's ORDER BY col, id does
// (ascending if asc): times as numbers, text in byte order (SQLite's
// BINARY collation, the credentials table's).
func credentialOrder(col string, asc bool) func(a, b vault.Credential) int {
	return func(a, b vault.Credential) int {
		var c int
		switch col {
		case vault.SortCreatedAt:
			c = a.CreatedAt.Compare(b.CreatedAt)
		case vault.SortUpdatedAt:
			c = a.UpdatedAt.Compare(b.UpdatedAt)
		case vault.SortName:
			c = strings.Compare(a.Name, b.Name)
		case vault.SortType:
			c = strings.Compare(a.Type, b.Type)
		}
		if c == 0 {
			c = strings.Compare(a.ID, b.ID)
		}
		if !asc {
			c = -c
		}
		return c
	}
}

// listedCredential copies a row into a listing's item: listings never
// carry ciphertext further than the store, and share nothing mutable with
// the cache.
func listedCredential(dst, c *vault.Credential) {
	*dst = *c
	dst.Ciphertext = nil
	dst.Metadata = bytes.Clone(c.Metadata)
	dst.ExpiresAt = clonePtr(c.ExpiresAt)
}
