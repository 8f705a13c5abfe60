package sqlstore

import (
	"context"
	"fmt"
	"time"
)

// TombstoneTTL is the cursor horizon: how long a deleted credential's id
// keeps working as a pagination cursor (a listing's after or before).
// A deleted credential leaves a tombstone (its id, name, type and times) so
// that a client paging through a list while credentials are deleted does
// not lose its place; a listing is paged through in seconds to minutes, so
// 30 days is generous. After that the tombstone is ignored (the cursor is
// refused like an unknown id), left out of backups, and purged: names of
// deleted credentials are not kept forever.
const TombstoneTTL = 30 * 24 * time.Hour

// now reads the clock of Options.Now.
func (db *DB) now() time.Time {
	if db.clock != nil {
		return db.clock()
	}
	return time.Now()
}

// tombstoneHorizon is the oldest deleted_at (Unix microseconds) of a live
// tombstone.
func (db *DB) tombstoneHorizon() int64 { return ts(db.now().Add(-TombstoneTTL)) }

// PurgeTombstones deletes the tombstones older than TombstoneTTL and
// returns how many it deleted. Expired tombstones are already invisible
// (cursors and backups ignore them); purging only frees the space and
// forgets the names. The server runs it at start and every hour.
func (db *DB) PurgeTombstones(ctx context.Context) (int64, error) {
	res, err := db.w.ExecContext(ctx, db.q(`DELETE FROM credential_tombstones WHERE deleted_at < ?`), db.tombstoneHorizon())
	if err != nil {
		return 0, db.translate(fmt.Errorf("purge tombstones: %w", err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}
