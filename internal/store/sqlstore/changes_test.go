package sqlstore

import (
	"testing"
	"time"
)

// TestChangeWatch_LostOutlivesPollsInFlight: a poll that began before the
// LISTEN connection broke (so possibly before the database went away) must
// not switch the caches back on when it completes; only a poll that began
// after the break may. Before, the late poll cleared the flag and cached
// reads answered for up to RevocationBound while PostgreSQL was down
// (TestDatabaseGoesAway, rarely, under load).
func TestChangeWatch_LostOutlivesPollsInFlight(t *testing.T) {
	w := &changeWatch{base: time.Now().Add(-time.Hour)}
	w.active.Store(true)
	w.fresh.Store(int64(time.Since(w.base)))
	if !w.usable() {
		t.Fatal("not usable after a fresh poll")
	}
	inFlight := int64(time.Since(w.base)) // a poll starts…
	time.Sleep(time.Millisecond)
	w.markLost() // …the connection breaks…
	w.found(inFlight)
	if w.usable() {
		t.Fatal("a poll that began before the connection broke switched the caches back on")
	}
	time.Sleep(time.Millisecond)
	after := int64(time.Since(w.base))
	w.fresh.Store(after)
	w.found(after)
	if !w.usable() {
		t.Fatal("a poll that began after the break did not switch the caches back on")
	}
}
