package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/credvault/credvault/internal/store"
)

// tombstonePurgeInterval is how often a server purges expired tombstones
// (see sqlstore.TombstoneTTL). Expired tombstones are invisible at once;
// the purge only frees their rows.
const tombstonePurgeInterval = time.Hour

// purgeTombstones purges expired tombstones (and workload keys expired for
// a day, see sqlstore.PurgeExpiredWorkloadKeys) now and then every interval
// until stop is called. Failures are logged and retried at the next tick.
func purgeTombstones(db interface {
	store.TombstonePurger
	store.WorkloadKeyPurger
}, log *slog.Logger, interval time.Duration) (stop func()) {
	return every(context.Background(), interval, true, func(ctx context.Context) {
		if n, err := db.PurgeTombstones(ctx); err != nil {
			if ctx.Err() == nil {
				log.Warn("purging expired tombstones failed; retrying later", "err", err.Error())
			}
		} else if n > 0 {
			log.Info("purged expired tombstones of deleted credentials", "count", n)
		}
		if n, err := db.PurgeExpiredWorkloadKeys(ctx, time.Now().Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
			log.Warn("purging expired workload keys failed; retrying later", "err", err.Error())
		} else if n > 0 {
			log.Info("purged workload keys expired for a day", "count", n)
		}
	})
}
