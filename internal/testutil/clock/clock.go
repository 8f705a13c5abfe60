// Package clock provides a clock that tests move forward instead of
// sleeping: pass Clock.Now as app.Config.Clock (or vault.Options.Now,
// sqlstore.Options.Now) and call Advance where a test waits for time to
// pass.
package clock

import (
	"sync/atomic"
	"time"
)

// Clock is the real time plus an offset. Time keeps passing on its own (so
// that timeouts and ordering behave as in production); Advance jumps ahead.
// The zero value is the real time.
type Clock struct {
	offset atomic.Int64 // nanoseconds
}

// Now returns the real time plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Set sets the offset from the real time to d (which may move the clock
// back: a test of what another replica's clock would see).
func (c *Clock) Set(d time.Duration) { c.offset.Store(int64(d)) }
