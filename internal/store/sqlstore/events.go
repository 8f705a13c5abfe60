package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// Change events and webhooks (issue 15): the outbox is written by tx, in
// the transaction of the change, from the events the context carries
// (vault.TxEvents).

// writeEvents stores each event that a webhook of its account subscribes
// to, with one pending delivery per such webhook, and returns the number
// of deliveries.
func (db *DB) writeEvents(ctx context.Context, tx *sql.Tx, evs []vault.Event) (deliveries int, err error) {
	hooks := map[string][]vault.Webhook{}
	for i := range evs {
		ev := &evs[i]
		ws, ok := hooks[ev.AccountID]
		if !ok {
			if ws, err = db.webhooksIn(ctx, tx, ev.AccountID); err != nil {
				return 0, fmt.Errorf("events: webhooks: %w", err)
			}
			hooks[ev.AccountID] = ws
		}
		wrote := false
		for _, w := range ws {
			if !vault.WebhookMatches(w.Events, ev.Type) {
				continue
			}
			if !wrote {
				if _, err := db.execIn(ctx, tx, `INSERT INTO events (id, account_id, type, created_at, body) VALUES (?, ?, ?, ?, ?)`,
					ev.ID, ev.AccountID, ev.Type, ts(ev.CreatedAt), string(ev.Body())); err != nil {
					return 0, fmt.Errorf("events: %w", err)
				}
				wrote = true
			}
			if _, err := db.execIn(ctx, tx, `INSERT INTO webhook_deliveries (id, account_id, webhook_id, event_id, event_type, status,
				attempts, created_at, next_at, locked_until, lock_token, last_error) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, 0, '', '')`,
				vault.NewID(), ev.AccountID, w.ID, ev.ID, ev.Type, vault.DeliveryPending, ts(ev.CreatedAt), ts(ev.CreatedAt)); err != nil {
				return 0, fmt.Errorf("events: delivery: %w", err)
			}
			deliveries++
		}
	}
	return deliveries, nil
}

// Skipping the webhook lookup (issue 13). Most accounts — and often a
// whole vault — have no webhook, and then every event's lookup finds
// nothing. Migration 0019 keeps, in change_counters, the number of
// webhooks (row 17) and a count of their insertions and deletions (row 18),
// by triggers, so whoever writes keeps them exact. A SQLite write
// transaction (one batch of the group commit, txbatch.go) reads both first:
// SQLite has one writer, so no other process can add a webhook before the
// commit, and if there is none, its requests' events are kept aside instead
// of looked up. Before the commit it reads row 18 again: if one of its own
// requests added (or removed) a webhook, the events kept aside are written
// then, with their deliveries, in the same transaction. An event is never
// missed, and a vault without webhooks pays one read per batch instead of
// one per request. PostgreSQL (many writers, one transaction per request)
// looks up every event's webhooks, as before.

const webhookCountSQL = `SELECT (SELECT n FROM change_counters WHERE id = 17), (SELECT n FROM change_counters WHERE id = 18)`

// webhookCount is what a transaction read of migration 0019's rows.
type webhookCount struct {
	none bool  // no webhook existed: events are kept aside
	gen  int64 // row 18
}

// webhooksAtStart reads the webhook count at the start of a SQLite batch
// in which several requests carry events (for one, the lookup is as cheap
// as the count). On PostgreSQL, or if the rows cannot be read, none is
// false: every event is looked up.
func (db *DB) webhooksAtStart(ctx context.Context, tx *sql.Tx, batch []*writeReq) webhookCount {
	withEvents := 0
	for _, r := range batch {
		if r.te != nil {
			withEvents++
		}
	}
	if db.d != sqliteDialect || withEvents < 2 {
		return webhookCount{}
	}
	var n, gen sql.NullInt64
	if err := db.queryRowIn(ctx, tx, webhookCountSQL).Scan(&n, &gen); err != nil || !n.Valid || !gen.Valid {
		return webhookCount{}
	}
	return webhookCount{none: n.Int64 == 0, gen: gen.Int64}
}

// eventsLeftOut writes the events that the requests of ok kept aside, if
// a webhook was added or removed in the transaction since they were.
func (db *DB) eventsLeftOut(ctx context.Context, tx *sql.Tx, ok []*writeReq, at webhookCount) error {
	if !at.none || !slices.ContainsFunc(ok, func(r *writeReq) bool { return r.eventsLeft != nil }) {
		return nil
	}
	var n, gen sql.NullInt64
	if err := db.queryRowIn(ctx, tx, webhookCountSQL).Scan(&n, &gen); err != nil {
		return fmt.Errorf("events: webhook count: %w", err)
	}
	if gen.Valid && gen.Int64 == at.gen {
		return nil
	}
	for _, r := range ok {
		if r.eventsLeft == nil {
			continue
		}
		d, err := db.writeEvents(ctx, tx, r.eventsLeft)
		if err != nil {
			return err
		}
		r.deliveries += d
		r.eventsLeft = nil
	}
	return nil
}

const webhookCols = `account_id, id, url, events, description, created_by, created_at, updated_at, secret`

func scanWebhook(row scanner) (*vault.Webhook, error) {
	var w vault.Webhook
	var evs string
	var created, updated int64
	if err := row.Scan(&w.AccountID, &w.ID, &w.URL, &evs, &w.Description, &w.CreatedBy, &created, &updated, &w.Secret); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(evs), &w.Events); err != nil {
		return nil, fmt.Errorf("webhook %s: events: %w", w.ID, err)
	}
	w.CreatedAt, w.UpdatedAt = fromTS(created), fromTS(updated)
	return &w, nil
}

const listWebhooksSQL = `SELECT ` + webhookCols + ` FROM webhooks WHERE account_id = ? ORDER BY created_at, id`

func listWebhooks(ctx context.Context, q querier, db *DB, accountID string) ([]vault.Webhook, error) {
	return queryAll(ctx, q, db.q(listWebhooksSQL), scanWebhook, accountID)
}

// webhooksIn is listWebhooks inside a write transaction (prepared).
func (db *DB) webhooksIn(ctx context.Context, tx *sql.Tx, accountID string) ([]vault.Webhook, error) {
	rows, err := db.queryIn(ctx, tx, listWebhooksSQL, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []vault.Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *w)
	}
	return out, rows.Err()
}

func eventsJSON(evs []string) string {
	b, _ := json.Marshal(evs)
	return string(b)
}

func (db *DB) CreateWebhook(ctx context.Context, w *vault.Webhook) error {
	_, err := db.write(ctx, `INSERT INTO webhooks (`+webhookCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.AccountID, w.ID, w.URL, eventsJSON(w.Events), w.Description, w.CreatedBy, ts(w.CreatedAt), ts(w.UpdatedAt), w.Secret)
	return err
}

func (db *DB) GetWebhook(ctx context.Context, accountID, id string) (*vault.Webhook, error) {
	return queryOne(ctx, db, scanWebhook, `SELECT `+webhookCols+` FROM webhooks WHERE account_id = ? AND id = ?`, accountID, id)
}

func (db *DB) ListWebhooks(ctx context.Context, accountID string) ([]vault.Webhook, error) {
	ws, err := listWebhooks(ctx, db.r, db, accountID)
	return ws, db.translate(err)
}

func (db *DB) UpdateWebhook(ctx context.Context, w *vault.Webhook) error {
	return found(db.write(ctx, `UPDATE webhooks SET url = ?, events = ?, description = ?, updated_at = ? WHERE account_id = ? AND id = ?`,
		w.URL, eventsJSON(w.Events), w.Description, ts(w.UpdatedAt), w.AccountID, w.ID))
}

func (db *DB) DeleteWebhook(ctx context.Context, accountID, id string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := found(tx.ExecContext(ctx, db.q(`DELETE FROM webhooks WHERE account_id = ? AND id = ?`), accountID, id)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.q(`DELETE FROM webhook_deliveries WHERE account_id = ? AND webhook_id = ?`), accountID, id)
		return err
	})
}

const deliveryCols = `id, account_id, webhook_id, event_id, event_type, status, attempts, created_at, next_at, last_at, last_status, last_error`

func scanDelivery(row scanner, extra ...any) (*vault.Delivery, error) {
	var d vault.Delivery
	var created, next int64
	var last, code sql.NullInt64
	dest := append([]any{&d.ID, &d.AccountID, &d.WebhookID, &d.EventID, &d.EventType, &d.Status, &d.Attempts, &created, &next, &last, &code, &d.LastError}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	d.CreatedAt, d.NextAt, d.LastAt, d.LastStatus = fromTS(created), fromTS(next), fromNullTS(last), int(code.Int64)
	return &d, nil
}

func (db *DB) ListDeliveries(ctx context.Context, accountID, webhookID string, limit int) ([]vault.Delivery, error) {
	out, err := queryAll(ctx, db.r, db.q(`SELECT `+deliveryCols+` FROM webhook_deliveries WHERE account_id = ? AND webhook_id = ?
		ORDER BY created_at DESC, id DESC`+fmt.Sprintf(` LIMIT %d`, limit)), func(row scanner) (*vault.Delivery, error) { return scanDelivery(row) }, accountID, webhookID)
	if err != nil {
		return nil, db.translate(fmt.Errorf("list deliveries: %w", err))
	}
	return out, nil
}

// ClaimDeliveries leases due deliveries. The claim is one UPDATE whose
// condition is re-checked under the row lock (and, on PostgreSQL, skips
// rows another replica is claiming), so two replicas never hold the same
// delivery: each event is sent by one replica at a time.
func (db *DB) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]vault.ClaimedDelivery, error) {
	token := vault.NewID()
	skip := ""
	if db.d.name == Postgres {
		skip = " FOR UPDATE SKIP LOCKED"
	}
	// A read first: an idle worker must not write (a write every second
	// would, for one, turn a full disk into a readiness failure).
	var one int
	err := db.r.QueryRowContext(ctx, db.q(`SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_at <= ? AND locked_until <= ? LIMIT 1`),
		ts(now), ts(now)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, db.translate(fmt.Errorf("claim deliveries: %w", err))
	}
	var out []vault.ClaimedDelivery
	err = db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.q(`UPDATE webhook_deliveries SET locked_until = ?, lock_token = ?
			WHERE status = 'pending' AND next_at <= ? AND locked_until <= ? AND id IN (
				SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_at <= ? AND locked_until <= ?
				ORDER BY next_at`+fmt.Sprintf(` LIMIT %d`, limit)+skip+`)`),
			ts(now.Add(lease)), token, ts(now), ts(now), ts(now), ts(now))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return forRows(ctx, tx, db.q(`SELECT d.id, d.account_id, d.webhook_id, d.event_id, d.event_type, d.status, d.attempts, d.created_at,
			d.next_at, d.last_at, d.last_status, d.last_error, e.body, w.url, w.secret
			FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
			LEFT JOIN webhooks w ON w.account_id = d.account_id AND w.id = d.webhook_id
			WHERE d.lock_token = ?`), []any{token}, func(row scanner) error {
			var body string
			var url sql.NullString
			var secret []byte
			d, err := scanDelivery(row, &body, &url, &secret)
			if err != nil {
				return err
			}
			out = append(out, vault.ClaimedDelivery{Delivery: *d, Token: token, Body: []byte(body), URL: url.String, Secret: secret, Expired: !url.Valid})
			return nil
		})
	})
	if err != nil {
		return nil, db.translate(fmt.Errorf("claim deliveries: %w", err))
	}
	return out, nil
}

func (db *DB) FinishDelivery(ctx context.Context, d *vault.ClaimedDelivery, o vault.DeliveryOutcome) error {
	var code any
	if o.Code != 0 {
		code = o.Code
	}
	_, err := db.write(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, next_at = ?, last_at = ?, last_status = ?,
		last_error = ?, locked_until = 0, lock_token = '' WHERE id = ? AND lock_token = ?`,
		o.Status, ts(o.NextAt), ts(o.At), code, o.Error, d.ID, d.Token)
	if err != nil {
		return fmt.Errorf("finish delivery: %w", err)
	}
	return nil
}

func (db *DB) APIKeyOwner(ctx context.Context, keyID string) (accountID, name string, revoked bool, err error) {
	var rev sql.NullInt64
	err = db.r.QueryRowContext(ctx, db.q(`SELECT p.default_account_id, k.name, k.revoked_at FROM api_keys k
		JOIN principals p ON p.id = k.principal_id WHERE k.id = ?`), keyID).Scan(&accountID, &name, &rev)
	if err != nil {
		return "", "", false, db.translate(err)
	}
	return accountID, name, rev.Valid, nil
}
