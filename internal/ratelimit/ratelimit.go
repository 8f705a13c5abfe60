// Package ratelimit holds credvault's in-process rate limiters: failed
// authentications per client address and per API key id, and requests per
// principal. Limits are per replica (each process counts what it sees).
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Keyed is a set of token buckets, one per key, with idle buckets evicted so
// that an attacker cycling keys cannot grow memory without bound.
type Keyed struct {
	limit rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	buckets map[string]*entry
	now     func() time.Time
}

type entry struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewKeyed returns buckets that refill at perSecond with the given burst,
// keeping at most maxKeys of them.
func NewKeyed(perSecond float64, burst, maxKeys int) *Keyed {
	return &Keyed{limit: rate.Limit(perSecond), burst: burst, max: maxKeys, buckets: map[string]*entry{}, now: time.Now}
}

func (k *Keyed) get(key string) *rate.Limiter {
	now := k.now()
	e, ok := k.buckets[key]
	if !ok {
		if len(k.buckets) >= k.max {
			k.evict(now)
		}
		e = &entry{lim: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = e
	}
	e.seen = now
	return e.lim
}

// evict drops buckets that are full again (idle long enough to have
// refilled), or the oldest half if none is.
func (k *Keyed) evict(now time.Time) {
	full := time.Duration(float64(k.burst) / float64(k.limit) * float64(time.Second))
	for key, e := range k.buckets {
		if now.Sub(e.seen) > full {
			delete(k.buckets, key)
		}
	}
	if len(k.buckets) < k.max {
		return
	}
	n := 0
	for key := range k.buckets { // map order is random: a random half
		delete(k.buckets, key)
		if n++; n >= k.max/2 {
			break
		}
	}
}

// Allow takes one token for key; if none is available it returns false and
// how long until one is.
func (k *Keyed) Allow(key string) (bool, time.Duration) {
	if k == nil || key == "" || k.limit <= 0 {
		return true, 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	lim := k.get(key)
	now := k.now()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
