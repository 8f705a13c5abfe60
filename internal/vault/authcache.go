package vault

import (
	"context"
	"sync"
	"time"
)

// AuthGenerations tells when authentication state may have changed
// (sqlstore: a change counter bumped by triggers in the writing
// transaction, polled for other processes' writes). A store that cannot
// tell returns false, always, and authentication then reads the store every
// time. AuthGeneration returns a number that grows whenever a key,
// principal, membership, account, DSM app or session changes, and false
// when it cannot vouch for it (then nothing cached may be used). A store
// must publish a change made through it before the write call returns, and
// one made elsewhere within its documented bound.
type AuthGenerations interface {
	AuthGeneration() (gen uint64, ok bool)
}

// authCacheMax bounds the entries of each map; a full map is cleared.
const authCacheMax = 50_000

// authCache keeps successful authentication lookups — API key (by hash and
// selected account), DSM session (by token hash), app enabled — so that the
// hot path runs no SQL. Every entry was read under the generation it is
// kept with; all entries are dropped when the generation moves, so no
// answer outlives a change the store has published. Only hashes are keys;
// nothing secret is kept. Failed lookups are never cached. Expiry is still
// checked on every request from the cached expires_at.
type authCache struct {
	src AuthGenerations

	mu       sync.RWMutex
	gen      uint64
	keys     map[string]AuthRecord
	sessions map[string]SessionRecord
	apps     map[string]bool
}

func newAuthCache(src AuthGenerations) *authCache {
	return &authCache{src: src, keys: map[string]AuthRecord{}, sessions: map[string]SessionRecord{}, apps: map[string]bool{}}
}

// current returns the generation to read under, and false if the cache
// must be bypassed.
func (c *authCache) current() (uint64, bool) {
	return c.src.AuthGeneration()
}

// keep stores an entry read under gen, unless the generation has moved
// past gen since (the entry may then predate a change).
func keep[V any](c *authCache, gen uint64, m func() map[string]V, k string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		if gen < c.gen {
			return
		}
		c.gen = gen
		clear(c.keys)
		clear(c.sessions)
		clear(c.apps)
	}
	if mm := m(); len(mm) < authCacheMax {
		mm[k] = v
	} else {
		clear(mm)
	}
}

// lookup returns the entry of m under k if it was read under gen.
func lookup[V any](c *authCache, gen uint64, m func() map[string]V, k string) (V, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, hit := m()[k]
	return v, hit && c.gen == gen
}

// cached answers from m under k when the cache holds a current entry, else
// with load, keeping what it loaded if keepable.
func cached[V any](c *authCache, m func() map[string]V, k string, load func() (*V, error), keepable func(*V) bool) (*V, error) {
	gen, ok := c.current()
	if !ok {
		return load()
	}
	if v, hit := lookup(c, gen, m, k); hit {
		return &v, nil
	}
	got, err := load()
	if err == nil && keepable(got) {
		keep(c, gen, m, k, *got)
	}
	return got, err
}

func (s *Service) lookupAPIKey(ctx context.Context, hash []byte, accountID string) (*AuthRecord, error) {
	c := s.auth
	return cached(c, func() map[string]AuthRecord { return c.keys }, string(hash)+"\x00"+accountID,
		func() (*AuthRecord, error) { return s.store.LookupAPIKey(ctx, hash, accountID) },
		func(r *AuthRecord) bool { return r.Key.RevokedAt == nil && r.Role != "" })
}

// touchedAPIKey records in the cache that the key's last use was stored
// at t, so that the minute-granular touch is not repeated on every request.
func (s *Service) touchedAPIKey(hash []byte, accountID string, t time.Time) {
	c := s.auth
	k := string(hash) + "\x00" + accountID
	c.mu.Lock()
	if rec, ok := c.keys[k]; ok {
		rec.Key.LastUsedAt = &t
		c.keys[k] = rec
	}
	c.mu.Unlock()
}

func (s *Service) lookupSession(ctx context.Context, tokenHash []byte) (*SessionRecord, error) {
	c := s.auth
	return cached(c, func() map[string]SessionRecord { return c.sessions }, string(tokenHash),
		func() (*SessionRecord, error) { return s.store.LookupSession(ctx, tokenHash) },
		func(r *SessionRecord) bool { return r.KeyFound && r.KeyRevokedAt == nil && r.Role != "" })
}

// appEnabled reports whether the app may authenticate; errors as GetApp.
// On a cache miss it also returns the app as read (the caller keeps it on
// the Identity for the DSM scope); on a hit app is nil, and the scope reads
// the app's groups from the store itself.
func (s *Service) appEnabled(ctx context.Context, accountID, appID string) (app *App, enabled bool, err error) {
	c := s.auth
	gen, ok := c.current()
	k := accountID + "\x00" + appID
	if ok {
		if enabled, hit := lookup(c, gen, func() map[string]bool { return c.apps }, k); hit {
			return nil, enabled, nil
		}
	}
	app, err = s.store.GetApp(ctx, accountID, appID)
	if err != nil {
		return nil, false, err
	}
	if ok && app.Enabled {
		keep(c, gen, func() map[string]bool { return c.apps }, k, true)
	}
	return app, app.Enabled, nil
}

type freshReadKey struct{}

// WithFreshRead marks ctx so that the store reads rows from the database
// itself, not from an in-process cache. Every change uses it (auditing sets
// it), and so does a secret read whose cached ciphertext did not open: a
// ciphertext changed outside this server (a master-key rotation by another
// process, a restore) is then opened — or refused — as it is stored now.
func WithFreshRead(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshReadKey{}, true)
}

// IsFreshRead reports whether ctx asks for a fresh read (WithFreshRead).
func IsFreshRead(ctx context.Context) bool { return ctx.Value(freshReadKey{}) != nil }
