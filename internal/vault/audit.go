package vault

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"time"
)

// RequestMeta is what the transport knows about a request that the audit
// trail records: its id and the client's address.
type RequestMeta struct {
	RequestID  string
	ClientAddr string
}

type requestMetaKey struct{}

// WithRequestMeta returns ctx carrying m.
func WithRequestMeta(ctx context.Context, m RequestMeta) context.Context {
	return context.WithValue(ctx, requestMetaKey{}, m)
}

// RequestMetaFrom returns the RequestMeta carried by ctx.
func RequestMetaFrom(ctx context.Context) RequestMeta {
	m, _ := ctx.Value(requestMetaKey{}).(RequestMeta)
	return m
}

// AuditEvent is one record of the audit trail. It never holds secret values
// or API keys: only who did what to which object, and how it ended.
type AuditEvent struct {
	Time        time.Time
	AccountID   string
	PrincipalID string
	// PrincipalKind is the actor's kind (user, service_account, app).
	PrincipalKind PrincipalKind
	Action        string // e.g. "credential.create", "credential.decrypt", "sobject.export", "auth.failure"
	ObjectType    string // e.g. "credential", "sobject", "group", "app", "session", "api_key"
	ObjectID      string
	Outcome       string // "success", or the error kind ("not_found", "permission_denied", …)
	RequestID     string
	ClientAddr    string
}

// Auditor appends events to the audit trail. Append must return an error if
// the event was not durably recorded; callers of secret accesses then refuse
// the access (fail closed).
type Auditor interface {
	Append(ctx context.Context, ev AuditEvent) error
}

// SetAuditor installs the audit trail. Without one, events are dropped.
func (s *Service) SetAuditor(a Auditor) { s.auditor = a }

// Audit records that id performed action on an object, with the outcome
// given by opErr (nil = success). It returns an error only when the record
// could not be written; for secret accesses the caller must then refuse to
// return the secret.
func (s *Service) Audit(ctx context.Context, id *Identity, action, objectType, objectID string, opErr error) error {
	if s.auditor == nil {
		return nil
	}
	meta := RequestMetaFrom(ctx)
	ev := AuditEvent{
		Time:       s.Now(),
		Action:     action,
		ObjectType: objectType,
		ObjectID:   objectID,
		Outcome:    "success",
		RequestID:  meta.RequestID,
		ClientAddr: meta.ClientAddr,
	}
	if id != nil {
		ev.AccountID, ev.PrincipalID, ev.PrincipalKind = id.AccountID, id.Principal.ID, id.Principal.Kind
	}
	if opErr != nil {
		ev.Outcome = KindOf(opErr).String()
	}
	if err := s.auditor.Append(ctx, ev); err != nil {
		return Wrap(KindUnavailable, err, "the audit trail cannot be written; the operation was refused")
	}
	return nil
}

// AuditRecord is an AuditEvent as stored: numbered and chained.
type AuditRecord struct {
	AuditEvent
	Seq      int64
	ID       string
	PrevHash []byte
	Hash     []byte
}

// AuditQuery selects audit records of one account, newest first.
type AuditQuery struct {
	AccountID   string
	Since       *time.Time
	Until       *time.Time
	ObjectID    string
	PrincipalID string
	BeforeSeq   int64 // only records with seq < BeforeSeq (0 = no bound)
	Offset      int
	Limit       int
	// Reach, if set, keeps only the records a group-scoped DSM caller may
	// see (see AuditReach).
	Reach *AuditReach
}

// AuditReach is the part of an account's audit trail a group-scoped DSM
// caller sees: records performed by ActorID, and records about one of
// Groups or about a security object, integration credential or app that
// is currently in one of them.
type AuditReach struct {
	Groups  []string
	ActorID string
}

// AuditStore holds the audit trail.
type AuditStore interface {
	// AppendAudit appends records in one transaction. build receives the
	// sequence number and hash of the newest record (0 and nil for an empty
	// trail), read under a lock that serialises appenders across processes,
	// and returns the chained records to insert.
	AppendAudit(ctx context.Context, build func(headSeq int64, headHash []byte) ([]AuditRecord, error)) error
	// ListAudit returns records matching q, newest first.
	ListAudit(ctx context.Context, q AuditQuery) ([]AuditRecord, error)
	// ScanAudit calls fn for every record in sequence order.
	ScanAudit(ctx context.Context, fn func(AuditRecord) error) error
	// AuditHead returns the newest (seq, hash) as recorded in the head row.
	AuditHead(ctx context.Context) (int64, []byte, error)
}

// AuditRecordID is the id of the record with sequence number seq: a UUID (the
// form DSM's audit API uses) whose last 48 bits are seq and whose other bits
// are random, so ids are unique, unguessable in their random part, and
// resolve to their record without an index (SeqOfID).
func AuditRecordID(seq int64) string {
	var b [16]byte
	_, _ = rand.Read(b[:10])
	b[6] = b[6]&0x0f | 0x80 // version 8: custom
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	for i := 0; i < 6; i++ {
		b[15-i] = byte(seq >> (8 * i))
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// AuditSeqOfID returns the sequence number encoded in a record id made by
// AuditRecordID.
func AuditSeqOfID(id string) (int64, bool) {
	if len(id) != 36 || id[14] != '8' {
		return 0, false
	}
	seq, err := strconv.ParseInt(id[24:], 16, 64)
	if err != nil || seq <= 0 {
		return 0, false
	}
	return seq, true
}
