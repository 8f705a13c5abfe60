package sqlstore

import (
	"fmt"
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

// TestRowCache_Bounded: a row cache keeps at most its limit of rows (the
// security objects' cache a quarter of the others), whatever is read.
func TestRowCache_Bounded(t *testing.T) {
	w := &changeWatch{base: time.Now()}
	clone := func(v *int) *int { c := *v; return &c }
	for _, limit := range []int{0, 3} {
		c := &rowCache[int]{max: limit}
		want := limit
		if want == 0 {
			want = rowCacheMax
		}
		for i := range want + 10 {
			v := i
			c.keep(w, clone, 0, "acct", fmt.Sprint(i), &v)
		}
		if len(c.rows) != want {
			t.Errorf("limit %d: %d rows kept, want %d", limit, len(c.rows), want)
		}
	}
	if sobjectCacheMax >= rowCacheMax {
		t.Errorf("security objects are larger rows: their cache (%d) should be smaller than %d", sobjectCacheMax, rowCacheMax)
	}
}
