package sqlstore

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/credvault/credvault/internal/vault"
)

// rowCacheMax bounds the rows a server keeps per cache: about 0.5 KiB each
// for credentials with small payloads and integration credentials, so some
// 10 MiB each at most. Security objects carry their sealed key material and
// public key (up to ~2 KiB for RSA): their cache keeps a quarter as many.
const (
	rowCacheMax     = 20_000
	sobjectCacheMax = rowCacheMax / 4
)

// rowCache keeps rows read by id as stored — metadata and ciphertext, never
// plaintext — so that a hot read runs no SQL: SGP credentials, DSM
// integration credentials and DSM security objects (key material sealed).
// Each row is kept with the value its shard's change counter had before the
// row was read, and is used only while the counter still has that value and
// the counters are fresh (changes.go): an update or deletion through this
// server invalidates it before the write returns, one elsewhere within
// RevocationBound. Triggers bump the shard counters on every update and
// deletion of the three tables (migrations 0010 and 0018).
type rowCache[V any] struct {
	mu   sync.RWMutex
	rows map[rowKey]*cachedRow[V] // an entry is never changed, only replaced
	max  int                      // rows kept at most; 0: rowCacheMax
}

type rowKey struct{ account, id string }

type cachedRow[V any] struct {
	gen uint64
	v   V
}

// get returns the cached row of (accountID, id) if it is still valid, and
// otherwise the counter value to keep a fresh read under.
func (c *rowCache[V]) get(w *changeWatch, clone func(*V) *V, accountID, id string) (v *V, gen uint64, cacheable bool) {
	if !w.usable() {
		return nil, 0, false
	}
	gen = w.gen[credentialShard(id)].Load()
	c.mu.RLock()
	e, ok := c.rows[rowKey{accountID, id}]
	c.mu.RUnlock()
	if ok && e.gen == gen {
		return clone(&e.v), gen, true
	}
	return nil, gen, true
}

// getMany is get for the rows ids of one account, under one lock: it
// copies each valid row into out[i] and the counter value of each into
// gens[i], and returns the indexes it did not find.
func (c *rowCache[V]) getMany(w *changeWatch, copyTo func(dst, src *V), accountID string, ids []string, out []V, gens []uint64) (misses []int, cacheable bool) {
	if !w.usable() {
		for i := range ids {
			misses = append(misses, i)
		}
		return misses, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, id := range ids {
		gens[i] = w.gen[credentialShard(id)].Load()
		if e, ok := c.rows[rowKey{accountID, id}]; ok && e.gen == gens[i] {
			copyTo(&out[i], &e.v)
			continue
		}
		misses = append(misses, i)
	}
	return misses, true
}

// keep caches v, the row of (accountID, id) read after the shard counter
// was gen, unless the counter has moved since (the read may predate the
// change).
func (c *rowCache[V]) keep(w *changeWatch, clone func(*V) *V, gen uint64, accountID, id string, v *V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.gen[credentialShard(id)].Load() != gen {
		return
	}
	if c.rows == nil {
		c.rows = map[rowKey]*cachedRow[V]{}
	}
	k := rowKey{accountID, id}
	limit := c.max
	if limit <= 0 {
		limit = rowCacheMax
	}
	if _, ok := c.rows[k]; !ok && len(c.rows) >= limit {
		for old := range c.rows { // evict an arbitrary row
			delete(c.rows, old)
			break
		}
	}
	c.rows[k] = &cachedRow[V]{gen, *clone(v)}
}

// cached reads the row of (accountID, id) through c: from the cache when it
// holds a valid copy and ctx does not ask for a fresh read, else with query
// (which selects by account and id) and scan, keeping the row for the next
// caller. clone copies a row so that the cache and its callers share no
// memory.
func cached[V any](ctx context.Context, db *DB, c *rowCache[V], clone func(*V) *V, scan func(scanner) (*V, error), query, accountID, id string) (*V, error) {
	hit, gen, cacheable := c.get(&db.changes, clone, accountID, id)
	if hit != nil && !vault.IsFreshRead(ctx) {
		return hit, nil
	}
	v, err := queryOne(ctx, db, scan, query, accountID, id)
	if err != nil {
		return nil, err
	}
	if cacheable {
		c.keep(&db.changes, clone, gen, accountID, id, v)
	}
	return v, nil
}

func cloneCredential(c *vault.Credential) *vault.Credential {
	out := *c
	out.Metadata = bytes.Clone(c.Metadata)
	out.Ciphertext = bytes.Clone(c.Ciphertext)
	out.ExpiresAt = clonePtr(c.ExpiresAt)
	return &out
}

// clonePtr returns a pointer to a copy of *p, or nil.
func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func cloneIntegrationCredential(c *vault.IntegrationCredential) *vault.IntegrationCredential {
	out := *c
	out.Description = clonePtr(c.Description)
	return &out
}

func cloneSobject(o *vault.Sobject) *vault.Sobject {
	out := *o
	out.KeyOps = slices.Clone(o.KeyOps)
	out.CustomMetadata = maps.Clone(o.CustomMetadata)
	out.DeactivationDate = clonePtr(o.DeactivationDate)
	out.PubKey = bytes.Clone(o.PubKey)
	out.Ciphertext = bytes.Clone(o.Ciphertext)
	return &out
}
