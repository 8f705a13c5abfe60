package sqlstore

import (
	"bytes"
	"sync"

	"github.com/credvault/credvault/internal/vault"
)

// credCacheMax bounds the credential rows a server keeps (about 0.5 KiB
// each with a small payload: a few MiB at most).
const credCacheMax = 20_000

// credCache keeps credential rows as stored — metadata and ciphertext,
// never plaintext — read by id, so that a get or a decrypt of a hot
// credential runs no SQL. Each row is kept with the value its shard's change
// counter had before the row was read, and is used only while the counter
// still has that value and the counters are fresh (changes.go): an update
// or deletion through this server invalidates it before the write returns,
// one elsewhere within RevocationBound.
type credCache struct {
	mu   sync.RWMutex
	rows map[credKey]cachedCredential
}

type credKey struct{ account, id string }

type cachedCredential struct {
	gen uint64
	c   vault.Credential
}

// clone returns a copy that shares no memory with the cache.
func cloneCredential(c *vault.Credential) *vault.Credential {
	out := *c
	out.Metadata = bytes.Clone(c.Metadata)
	out.Ciphertext = bytes.Clone(c.Ciphertext)
	return &out
}

// cachedCredential returns the cached row of (accountID, id) if it is
// still valid, and otherwise the counter value to cache a fresh read under.
func (db *DB) cachedCredential(accountID, id string) (c *vault.Credential, gen uint64, cacheable bool) {
	if !db.changes.usable() {
		return nil, 0, false
	}
	gen = db.changes.gen[credentialShard(id)].Load()
	db.creds.mu.RLock()
	e, ok := db.creds.rows[credKey{accountID, id}]
	db.creds.mu.RUnlock()
	if ok && e.gen == gen {
		return cloneCredential(&e.c), gen, true
	}
	return nil, gen, true
}

// keepCredential caches c, read after the shard counter was gen, unless
// the counter has moved since (the read may predate the change).
func (db *DB) keepCredential(gen uint64, c *vault.Credential) {
	db.creds.mu.Lock()
	defer db.creds.mu.Unlock()
	if db.changes.gen[credentialShard(c.ID)].Load() != gen {
		return
	}
	if db.creds.rows == nil {
		db.creds.rows = map[credKey]cachedCredential{}
	}
	k := credKey{c.AccountID, c.ID}
	if _, ok := db.creds.rows[k]; !ok && len(db.creds.rows) >= credCacheMax {
		for old := range db.creds.rows { // evict an arbitrary row
			delete(db.creds.rows, old)
			break
		}
	}
	db.creds.rows[k] = cachedCredential{gen, *cloneCredential(c)}
}
