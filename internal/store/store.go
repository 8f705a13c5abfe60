// Package store names what credvault needs from a storage engine: the
// core's vault.Store (split by consumer in internal/vault) plus the
// capabilities the binary uses beyond the core — backup and restore,
// master-key re-wrapping, the start-up lock, planner statistics, purging
// tombstones and expired workload keys, the shared state of admin jobs and
// the web console's sessions. internal/app depends on
// Engine only, never on an engine's concrete type.
//
// An engine is a package whose Open returns an Engine and whose tests run
// the conformance suite, storetest.Run, against a real database: today
// internal/store/sqlstore for SQLite and PostgreSQL. A third engine is
// such a package plus one line in internal/app's Open.
package store

import (
	"context"
	"database/sql"
	"io"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// Engine is a storage engine as the binary uses it: the core's store and
// everything the binary calls beyond it. It is used through this interface
// only; nothing is reached by type assertion.
type Engine interface {
	vault.Store
	vault.AuditStore    // the audit trail appends and verifies (internal/audit)
	vault.DeliveryStore // the webhook worker's outbox (internal/webhook)
	Pinger
	GroupCommitter
	Backupper
	Rewrapper
	Locker
	Analyzer
	TombstonePurger
	WorkloadKeyPurger
	RekeyJobStore
	MasterKeysetStore
	ConsoleSessionStore

	// Engine names the engine ("sqlite", "postgres") for logs and reports.
	Engine() string
	// Pools returns the engine's connection pools by role, for metrics
	// (nil for an engine without database/sql pools).
	Pools() map[string]*sql.DB
	// Close releases the engine.
	Close() error
}

// Pinger answers the readiness probe (/readyz).
type Pinger interface {
	// Ping checks that the database answers and, after a storage failure,
	// that it can be written again: KindUnavailable until it can.
	Ping(ctx context.Context) error
}

// Backupper writes and reads authenticated logical backups (see
// sqlstore's backup.go for the format).
type Backupper interface {
	// Backup writes every table, read in one consistent snapshot, to w.
	Backup(ctx context.Context, w io.Writer, opts BackupOptions) (BackupStats, error)
	// Restore restores the backup in r into this empty database, in one
	// transaction; key returns the MAC key given the header. A backup
	// whose MAC does not verify restores nothing. KindConflict if the
	// database is not empty.
	Restore(ctx context.Context, r io.Reader, key BackupKeyFunc) (BackupStats, error)
}

// BackupStats summarises a backup or restore.
type BackupStats struct {
	Tables int
	Rows   int64
}

// BackupHeader is the first line of a backup.
type BackupHeader struct {
	Format        string `json:"format"`
	Version       int    `json:"version"`
	Engine        string `json:"engine"`
	SchemaVersion int    `json:"schema_version"`
	CreatedAt     string `json:"created_at"`
	MAC           string `json:"mac,omitempty"`
	// MACKeyID is the id of the master key the MAC key was derived from.
	MACKeyID uint32 `json:"mac_key_id,omitempty"`
	// KeyCheck is the database's master-key check value (sealed, never a
	// secret), absent if the database had none.
	KeyCheck []byte `json:"key_check,omitempty"`
	// RootKey and MasterKeyset are the database's data keyset, encrypted
	// under the root key named RootKey (see MasterKeysetStore), absent when
	// the vault's keyset is a key file: a restore needs them (and the root
	// key) before it can verify anything else.
	RootKey      string `json:"root_key,omitempty"`
	MasterKeyset []byte `json:"master_keyset,omitempty"`
}

// BackupOptions authenticate a backup.
type BackupOptions struct {
	// MACKey is the HMAC-SHA256 key (derived from the master key) and
	// MACKeyID the id of the master key it was derived from.
	MACKey   []byte
	MACKeyID uint32
}

// BackupKeyFunc returns the MAC key of a backup given its header. It is
// called before anything is written, and should refuse (with a clear
// error) a header whose key check the master key cannot open.
type BackupKeyFunc func(BackupHeader) ([]byte, error)

// Rewrapper re-wraps sealed values under another master key.
type Rewrapper interface {
	// RewrapAll re-wraps, in batches, every ciphertext for which needs
	// returns true, with rewrap, compare-and-set per row so that
	// concurrent writes are never lost. Safe to run again after an
	// interruption.
	RewrapAll(ctx context.Context, needs func([]byte) bool, rewrap func([]byte) ([]byte, error)) (RewrapStats, error)
	// WrappingKeysInUse counts ciphertexts by the master key id keyID
	// reads from them.
	WrappingKeysInUse(ctx context.Context, keyID func([]byte) (uint32, error)) (map[uint32]int64, error)
}

// RewrapStats counts the work of RewrapAll.
type RewrapStats struct {
	Scanned   int64
	Rewrapped int64
}

// Locker is the database-wide start-up lock.
type Locker interface {
	// Exclusive runs fn while holding the lock, so that one-time start-up
	// work (bootstrapping an empty vault) is done by exactly one of several
	// replicas starting at once; fn's error is returned as is.
	Exclusive(ctx context.Context, fn func() error) error
}

// Analyzer refreshes the query planner's statistics (after bulk loads).
type Analyzer interface {
	Analyze(ctx context.Context) error
}

// GroupCommitter reports the queue of an engine that commits concurrent
// writes together (sqlstore on SQLite); the binary exports it as a metric.
type GroupCommitter interface {
	// QueuedWrites returns the number of writes waiting for a transaction;
	// always 0 on an engine that commits each write on its own.
	QueuedWrites() int
}

// TombstonePurger frees the tombstones of deleted credentials that are
// past the cursor horizon (they are invisible already).
type TombstonePurger interface {
	// PurgeTombstones deletes expired tombstones and returns how many.
	PurgeTombstones(ctx context.Context) (int64, error)
}

// WorkloadKeyPurger frees the rows of keys issued through trust policies
// (workload identity) once they have expired: each token exchange adds one.
type WorkloadKeyPurger interface {
	// PurgeExpiredWorkloadKeys deletes the workload keys that expired
	// before before and returns how many.
	PurgeExpiredWorkloadKeys(ctx context.Context, before time.Time) (int64, error)
}

// MasterKeyset is the stored data-key keyset: encrypted under the root key
// named RootKey, never in the clear.
type MasterKeyset struct {
	RootKey   string
	Keyset    []byte
	Version   int64
	UpdatedAt time.Time
}

// MasterKeysetStore keeps the data-key keyset of a vault whose master key
// is a root key outside the process (an HSM key), encrypted under it.
type MasterKeysetStore interface {
	// GetMasterKeyset returns the stored keyset, ErrNotFound when the vault
	// keeps its keyset in a file.
	GetMasterKeyset(ctx context.Context) (*MasterKeyset, error)
	// MasterKeysetVersion returns the stored keyset's version (0 if none).
	MasterKeysetVersion(ctx context.Context) (int64, error)
	// PutMasterKeyset stores m as version prev+1 if the stored version is
	// still prev (0: none stored yet); KindConflict otherwise.
	PutMasterKeyset(ctx context.Context, m MasterKeyset, prev int64) error
	// DeleteMasterKeyset removes the stored keyset if its version is still
	// prev; KindConflict otherwise.
	DeleteMasterKeyset(ctx context.Context, prev int64) error
}

// Rekey job states.
const (
	RekeyRunning     = "running"
	RekeyDone        = "done"
	RekeyFailed      = "failed"
	RekeyInterrupted = "interrupted" // stopped by a shutdown or a crash; POST again to finish it
)

// RekeyJob is the shared record of an online master-key rotation started
// through the admin API. It lives in the database, so that every replica
// reports the same job and at most one runs at a time.
type RekeyJob struct {
	ID         string
	State      string // RekeyRunning, RekeyDone, RekeyFailed, RekeyInterrupted
	Resume     bool   // the job finishes an interrupted one (no new key)
	StartedAt  time.Time
	UpdatedAt  time.Time // the runner's heartbeat while running
	FinishedAt time.Time // zero while running
	// NewPrimary is the new primary master key id once it was added (0
	// before): an interrupted job with one is resumed, not restarted.
	NewPrimary uint32
	Report     []byte // JSON, the runner's report; never secret
	Error      string // client-safe failure message
}

// RekeyJobStore keeps rekey jobs.
type RekeyJobStore interface {
	// StartRekeyJob records j (State RekeyRunning) as the running job. A
	// running job whose heartbeat (UpdatedAt) is older than staleBefore is
	// first marked RekeyInterrupted (its runner died). KindConflict if
	// another job is running.
	StartRekeyJob(ctx context.Context, j *RekeyJob, staleBefore time.Time) error
	// UpdateRekeyJob writes j's state, heartbeat, key, report and error.
	// ErrNotFound if no job has j.ID.
	UpdateRekeyJob(ctx context.Context, j *RekeyJob) error
	// LatestRekeyJob returns the most recently started job, ErrNotFound if
	// none was ever started.
	LatestRekeyJob(ctx context.Context) (*RekeyJob, error)
}

// ConsoleSession is a web console session (internal/console) as stored:
// the SHA-256 hash of its token, never the token.
type ConsoleSession struct {
	TokenHash   []byte
	PrincipalID string
	AccountID   string
	KeyID       string // the API key it was opened with; "" for a password sign-in
	CreatedAt   time.Time
	LastSeenAt  time.Time
	ExpiresAt   time.Time // the absolute timeout
}

// ConsoleSessionStore keeps web console sessions in the database, so that
// every replica sees every session.
type ConsoleSessionStore interface {
	// CreateConsoleSession stores s.
	CreateConsoleSession(ctx context.Context, s *ConsoleSession) error
	// GetConsoleSession returns the session whose token hashes to hash;
	// ErrNotFound if there is none.
	GetConsoleSession(ctx context.Context, hash []byte) (*ConsoleSession, error)
	// TouchConsoleSession records activity on a session at t and moves it
	// to accountID; ErrNotFound if the session is gone.
	TouchConsoleSession(ctx context.Context, hash []byte, accountID string, at time.Time) error
	// DeleteConsoleSession removes a session (sign out); removing a
	// missing session is not an error.
	DeleteConsoleSession(ctx context.Context, hash []byte) error
	// DeleteConsoleSessionsBefore removes sessions whose absolute timeout
	// is before t or that were last seen before idleBefore.
	DeleteConsoleSessionsBefore(ctx context.Context, t, idleBefore time.Time) error
}
