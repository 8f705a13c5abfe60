package vault

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync/atomic"
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

// AuditChain chains events after the trail's head: it numbers them, links
// each to the previous record's hash and authenticates the new head. It
// refuses to extend a head that does not authenticate. internal/audit's
// Trail implements it; a store calls it inside the transaction that writes
// the records (see TxAudit).
type AuditChain interface {
	Chain(head AuditHead, evs []AuditEvent) ([]AuditRecord, AuditHead, error)
}

// auditRefused is the message of every refusal caused by an audit record
// that could not be written.
const auditRefused = "the audit trail cannot be written; the operation was refused"

// AuditWriteError wraps the failure to write an audit record: Unavailable,
// with a message that says the operation was refused.
func AuditWriteError(err error) error { return Wrap(KindUnavailable, err, auditRefused) }

func (s *Service) event(ctx context.Context, id *Identity, action, objectType, objectID string, opErr error) AuditEvent {
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
	return ev
}

// Audit records that id performed action on an object, with the outcome
// given by opErr (nil = success). It returns an error only when the record
// could not be written; for secret accesses the caller must then refuse to
// return the secret.
//
// When ctx comes from Service.auditing for the same action and the change
// committed with its record (opErr nil), Audit has nothing left to do. A
// failed change rolled its record back, so the failure is recorded here.
func (s *Service) Audit(ctx context.Context, id *Identity, action, objectType, objectID string, opErr error) error {
	if s.auditor == nil {
		return nil
	}
	if a, _ := ctx.Value(txAuditKey{}).(*TxAudit); a != nil && a.action == action && opErr == nil && a.committed.Load() {
		return nil
	}
	if err := s.auditor.Append(ctx, s.event(ctx, id, action, objectType, objectID, opErr)); err != nil {
		return AuditWriteError(err)
	}
	return nil
}

// TxAudit is the audit record of a change, carried by the context from the
// service into the store. The store writes it in the transaction that
// makes the change, so that a change is committed if and only if its
// record is: a failure to write the record rolls the change back, and a
// crash cannot separate them. Secret reads do not use it: their record is
// committed before the plaintext leaves (fail closed), through Audit.
type TxAudit struct {
	txOnce
	chain  AuditChain
	action string
	event  func() AuditEvent
}

// txOnce is the state of what a change's context carries into the store's
// transaction (TxAudit, TxEvents): written by the first write transaction
// on the context, then marked committed.
type txOnce struct{ committed atomic.Bool }

func (o *txOnce) pending() bool { return !o.committed.Load() }

// pendingFrom returns the P that ctx carries under key, or nil when there
// is none or it was committed.
func pendingFrom[P interface {
	*T
	pending() bool
}, T any](ctx context.Context, key any) P {
	p, _ := ctx.Value(key).(P)
	if p == nil || !p.pending() {
		return nil
	}
	return p
}

type txAuditKey struct{}

// TxAuditFrom returns the audit record a store must write in its next
// write transaction on ctx, or nil when there is none or it was written.
func TxAuditFrom(ctx context.Context) *TxAudit {
	return pendingFrom[*TxAudit](ctx, txAuditKey{})
}

// Records returns the records to insert after head, and the new head. It
// runs inside the store's transaction, so a panic (an object id read before
// the object exists) becomes an error that rolls the change back rather
// than leaving the transaction open.
func (a *TxAudit) Records(head AuditHead) (recs []AuditRecord, next AuditHead, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("audit record of %s: %v", a.action, r)
		}
	}()
	return a.chain.Chain(head, []AuditEvent{a.event()})
}

// Committed tells a that the transaction holding its record committed.
func (a *TxAudit) Committed() { a.committed.Store(true) }

// auditing returns ctx carrying the record of a successful action by id,
// for the store to write with the change (see TxAudit). objectID is called
// inside that transaction, so a create can name the object it generated
// just before storing it. Use it at the top of a mutating method whose
// deferred Audit call records the outcome:
//
//	ctx = s.auditing(ctx, id, "group.delete", "group", func() string { return groupID })
//	defer func() { err = s.auditOutcome(ctx, id, "group.delete", "group", groupID, err) }()
//
// A change is planned on the rows as stored, never on cached copies: the
// context it returns also asks the store for fresh reads (WithFreshRead).
func (s *Service) auditing(ctx context.Context, id *Identity, action, objectType string, objectID func() string) context.Context {
	ctx = WithFreshRead(ctx)
	if s.chain == nil {
		return ctx
	}
	a := &TxAudit{chain: s.chain, action: action}
	a.event = func() AuditEvent { return s.event(ctx, id, action, objectType, objectID(), nil) }
	return context.WithValue(ctx, txAuditKey{}, a)
}

// resultID is the id an operation's audit record names its object by:
// that of its result o once it has one, else asked, the id the operation
// was asked for ("" for a create that failed before it had its object).
func resultID[P interface {
	*T
	auditID() string
}, T any](o P, asked string) string {
	if o == nil {
		return asked
	}
	return o.auditID()
}

// auditID is the id by which the audit trail names an object (resultID).
func (c *Credential) auditID() string            { return c.ID }
func (c *IntegrationCredential) auditID() string { return c.ID }
func (w *Webhook) auditID() string               { return w.ID }
func (o *Sobject) auditID() string               { return o.KID }
func (g *Group) auditID() string                 { return g.ID }
func (a *App) auditID() string                   { return a.ID }
func (s *Session) auditID() string               { return s.ID }

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
	AuditReader
	// AppendAudit appends records in one transaction. build receives the
	// head (seq 0 and no hash for an empty trail), read under a lock that
	// serialises appenders across processes, and returns the chained
	// records to insert and the new head.
	AppendAudit(ctx context.Context, build func(head AuditHead) ([]AuditRecord, AuditHead, error)) error
	// ScanAudit calls fn for every record in sequence order.
	ScanAudit(ctx context.Context, fn func(AuditRecord) error) error
	// AuditHead returns the head row (seq 0 when the trail is empty).
	AuditHead(ctx context.Context) (AuditHead, error)
}

// AuditReader reads the audit trail: the core's audit-log endpoints.
type AuditReader interface {
	// ListAudit returns records matching q, newest first.
	ListAudit(ctx context.Context, q AuditQuery) ([]AuditRecord, error)
}

// AuditHead is the head row of the trail: the newest record's sequence
// number and hash, and a MAC over both under a key derived from the master
// key (empty for an empty trail, or when no key is configured), so that
// the head cannot be moved back without the master key.
type AuditHead struct {
	Seq  int64
	Hash []byte
	MAC  []byte
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
