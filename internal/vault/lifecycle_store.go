package vault

import (
	"context"
	"time"
)

// LifecycleStore holds what the credential lifecycle adds (issue 15):
// versions, the trash of deleted credentials, expiry notices, webhooks and
// the event outbox. Events and deliveries are written by the store in the
// transaction of the change they describe (see TxEvents).
type LifecycleStore interface {
	// ListCredentialVersions returns the kept versions of a live
	// credential, newest first, without ciphertext. ErrNotFound if the
	// credential is not live.
	ListCredentialVersions(ctx context.Context, accountID, credID string) ([]CredentialVersion, error)
	// GetCredentialVersion returns one kept version of a live credential,
	// with its ciphertext.
	GetCredentialVersion(ctx context.Context, accountID, credID string, version int64) (*CredentialVersion, error)
	// MaxVersions returns the account's version retention (0: unset).
	MaxVersions(ctx context.Context, accountID string) (int, error)
	SetMaxVersions(ctx context.Context, accountID string, n int) error

	// ListTrash returns a page of the account's deleted credentials,
	// newest deletion first; after is a credential id (cursor). An unknown
	// cursor is KindInvalid with Field "after".
	ListTrash(ctx context.Context, accountID, after string, limit int) ([]TrashedCredential, bool, error)
	// RestoreCredential moves a deleted credential back. ErrNotFound if
	// it is not in the trash, ErrConflict if its name is taken.
	RestoreCredential(ctx context.Context, accountID, id string) (*Credential, error)
	GetTrashedCredential(ctx context.Context, accountID, id string) (*TrashedCredential, error)
	// PurgeCredential destroys a deleted credential and its versions if it
	// was deleted before deletedBefore (zero: any time). ErrNotFound if
	// there is no such credential (another replica purged it).
	PurgeCredential(ctx context.Context, accountID, id string, deletedBefore time.Time) (*TrashedCredential, error)
	// DueTrash returns deleted credentials deleted before t.
	DueTrash(ctx context.Context, before time.Time, limit int) ([]TrashedCredential, error)

	// DueExpiry returns live credentials whose expires_at is before t and
	// that have no notice of stage for that expiry yet.
	DueExpiry(ctx context.Context, before time.Time, stage string, limit int) ([]Credential, error)
	// NoteExpiry records the notice of stage for c's expiry, with the
	// events ctx carries; false if it was already recorded.
	NoteExpiry(ctx context.Context, c *Credential, stage string) (bool, error)

	// APIKeyOwner returns the default account of an API key's principal,
	// the key's name and whether it is revoked (for apikey.* events).
	APIKeyOwner(ctx context.Context, keyID string) (accountID, name string, revoked bool, err error)

	CreateWebhook(ctx context.Context, w *Webhook) error
	GetWebhook(ctx context.Context, accountID, id string) (*Webhook, error)
	ListWebhooks(ctx context.Context, accountID string) ([]Webhook, error)
	UpdateWebhook(ctx context.Context, w *Webhook) error
	DeleteWebhook(ctx context.Context, accountID, id string) error
	ListDeliveries(ctx context.Context, accountID, webhookID string, limit int) ([]Delivery, error)
}

// DeliveryStore is what the webhook worker (internal/webhook) needs: the
// outbox's due deliveries, leased so that one replica sends each. The core
// does not call it; store.Engine carries it.
type DeliveryStore interface {
	// ClaimDeliveries leases up to limit due deliveries (pending, next
	// attempt at or before now, not leased) until now+lease, so that one
	// replica sends each; it returns them with their event and webhook.
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]ClaimedDelivery, error)
	// FinishDelivery records an attempt's outcome if the lease token
	// still holds.
	FinishDelivery(ctx context.Context, d *ClaimedDelivery, outcome DeliveryOutcome) error
}

// CredentialVersion is one kept payload version of a credential.
type CredentialVersion struct {
	AccountID    string
	CredentialID string
	Version      int64
	CreatedAt    time.Time
	CreatedBy    string
	Ciphertext   []byte
}

// TrashedCredential is a deleted credential, recoverable until its purge.
type TrashedCredential struct {
	Credential
	DeletedAt time.Time
	DeletedBy string
}

// Webhook is an account's subscription to change events.
type Webhook struct {
	ID          string
	AccountID   string
	URL         string
	Events      []string
	Description string
	CreatedBy   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Secret      []byte // sealed signing secret
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed" // given up after the retry window
)

// Delivery is one event to send to one webhook, and how it went so far.
type Delivery struct {
	ID         string
	AccountID  string
	WebhookID  string
	EventID    string
	EventType  string
	Status     string
	Attempts   int
	CreatedAt  time.Time
	NextAt     time.Time
	LastAt     *time.Time
	LastStatus int // HTTP status of the last attempt (0: none)
	LastError  string
}

// ClaimedDelivery is a leased delivery with what sending it needs.
type ClaimedDelivery struct {
	Delivery
	Token   string // the lease
	Body    []byte // the event, as sent
	URL     string
	Secret  []byte // sealed
	Expired bool   // the webhook was deleted: drop it
}

// DeliveryOutcome is the result of one attempt.
type DeliveryOutcome struct {
	At     time.Time
	Status string // DeliveryDelivered, DeliveryPending (retry at NextAt) or DeliveryFailed
	NextAt time.Time
	Code   int
	Error  string
}

type deleterKey struct{}

// DeleterFrom returns the principal a context says deletes a credential.
func DeleterFrom(ctx context.Context) string {
	s, _ := ctx.Value(deleterKey{}).(string)
	return s
}

func withDeleter(ctx context.Context, principalID string) context.Context {
	return context.WithValue(ctx, deleterKey{}, principalID)
}
