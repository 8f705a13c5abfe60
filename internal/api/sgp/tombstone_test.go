package sgp_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestTombstonesExpire: a deleted credential's id works as a cursor for the
// cursor horizon (sqlstore.TombstoneTTL) and no longer after it; an expired
// tombstone (the deleted credential's name and type) is left out of backups
// and purged. Time is moved with the store's injected clock, never slept.
func TestTombstonesExpire(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		now := time.Now()
		var offset atomic.Int64 // the injected clock is now + offset
		v.App.Store.(*sqlstore.DB).SetClock(func() time.Time { return now.Add(time.Duration(offset.Load())) })
		a := admin(v)
		a.createNamed(t, "a-first", "p")
		gone := a.createNamed(t, "m-deleted-credential-name", "p")
		c := a.createNamed(t, "z-last", "p")
		wantStatus(t, a.do(t, "DELETE", "/v5/credentials/"+gone.ID, nil), 200)
		after := url.Values{"starting_after": {gone.ID}, "sort_by": {"name"}, "sort_order": {"asc"}}

		// Within the horizon the deleted id is a valid cursor.
		offset.Store(int64(sqlstore.TombstoneTTL - time.Minute))
		if p := a.list(t, after); len(p.Items) != 1 || p.Items[0].ID != c.ID {
			t.Fatalf("within the horizon: page %+v; want [z-last]", p.Items)
		}
		if !bytes.Contains(backupOf(t, v), []byte("m-deleted-credential-name")) {
			t.Fatal("a live tombstone is missing from the backup")
		}

		// Past the horizon it is refused like an unknown id, the backup no
		// longer carries the name, and the purge removes the row.
		offset.Store(int64(sqlstore.TombstoneTTL + time.Minute))
		want422At(t, a.do(t, "GET", "/v5/credentials?"+after.Encode(), nil), "value_error", "query", "starting_after")
		if bytes.Contains(backupOf(t, v), []byte("m-deleted-credential-name")) {
			t.Error("an expired tombstone is in the backup")
		}
		// (The server's own purge loop may have run already: at most one.)
		if n, err := v.App.Store.PurgeTombstones(context.Background()); err != nil || n > 1 {
			t.Fatalf("purge: %d, %v; want at most 1", n, err)
		}
		// The row is gone, not merely expired: even with the clock set back
		// inside the horizon the cursor is unknown now.
		offset.Store(0)
		want422At(t, a.do(t, "GET", "/v5/credentials?"+after.Encode(), nil), "value_error", "query", "starting_after")
		if p := a.list(t, nil); len(p.Items) != 2 || p.Total != 2 {
			t.Errorf("live credentials after the purge: %+v total %d", p.Items, p.Total)
		}
	})
}

// backupOf returns the uncompressed backup of v (through app.Backup, as the
// CLI takes it, with v's store clock).
func backupOf(t *testing.T, v *vaulttest.Vault) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := app.BackupStore(context.Background(), v.Config, v.App.Store, &buf); err != nil {
		t.Fatalf("backup: %v", err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
