package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Change event types. Events never carry a payload or any secret: only
// ids, names, versions, the actor and the time.
const (
	EventCredentialCreated    = "credential.created"
	EventCredentialUpdated    = "credential.updated"
	EventCredentialDeleted    = "credential.deleted"
	EventCredentialRestored   = "credential.restored"
	EventCredentialPurged     = "credential.purged"
	EventCredentialRolledBack = "credential.rolled_back"
	EventCredentialExpiring   = "credential.expiring"
	EventCredentialExpired    = "credential.expired"
	EventAPIKeyCreated        = "apikey.created"
	EventAPIKeyRevoked        = "apikey.revoked"
	EventIntegrationRotated   = "integration_credential.rotated"
)

// EventTypes lists every event type a webhook may subscribe to.
var EventTypes = []string{
	EventCredentialCreated, EventCredentialUpdated, EventCredentialDeleted, EventCredentialRestored,
	EventCredentialPurged, EventCredentialRolledBack, EventCredentialExpiring, EventCredentialExpired,
	EventAPIKeyCreated, EventAPIKeyRevoked, EventIntegrationRotated,
}

// EventData is what an event says about its object. Nothing else may be
// added: no payload, no metadata, no description.
type EventData struct {
	ObjectType string     `json:"object_type"`
	ObjectID   string     `json:"object_id"`
	Name       string     `json:"name,omitempty"`
	Version    int64      `json:"version,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// EventActor is who caused an event.
type EventActor struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// Event is one change event as stored in the outbox and sent to webhooks.
type Event struct {
	ID        string     `json:"id"`
	Object    string     `json:"object"` // "event"
	Type      string     `json:"type"`
	AccountID string     `json:"account_id"`
	CreatedAt time.Time  `json:"created_at"`
	Actor     EventActor `json:"actor"`
	Data      EventData  `json:"data"`
}

// Body returns the event's wire form.
func (e *Event) Body() []byte {
	b, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("marshal event: %v", err)) // plain fields only
	}
	return b
}

// TxEvents are the events of a change, carried by the context from the
// service into the store, which writes them (with one delivery per
// matching webhook) in the transaction that makes the change: the outbox
// holds an event if and only if its change committed.
type TxEvents struct {
	txOnce
	build    []func() Event
	onCommit func()
}

type txEventsKey struct{}

// TxEventsFrom returns the events a store must write in its next write
// transaction on ctx, or nil.
func TxEventsFrom(ctx context.Context) *TxEvents {
	return pendingFrom[*TxEvents](ctx, txEventsKey{})
}

// Events builds the events. It runs inside the store's transaction, after
// the change, so they can name what the change generated.
func (e *TxEvents) Events() (evs []Event, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("events: %v", r)
		}
	}()
	for _, b := range e.build {
		evs = append(evs, b())
	}
	return evs, nil
}

// Committed tells e that the transaction holding its events committed.
func (e *TxEvents) Committed() {
	e.committed.Store(true)
	if e.onCommit != nil {
		e.onCommit()
	}
}

// emitting returns ctx carrying an event of type typ by id, whose data is
// computed inside the change's transaction (see TxEvents).
func (s *Service) emitting(ctx context.Context, id *Identity, typ string, data func() EventData) context.Context {
	te := pendingFrom[*TxEvents](ctx, txEventsKey{})
	if te == nil {
		te = &TxEvents{onCommit: s.onEvents}
		ctx = context.WithValue(ctx, txEventsKey{}, te)
	}
	te.build = append(te.build, func() Event {
		ev := Event{ID: NewID(), Object: "event", Type: typ, CreatedAt: s.Now(), Data: data()}
		if id != nil {
			ev.AccountID = id.AccountID
			ev.Actor = EventActor{ID: id.Principal.ID, Type: string(id.Principal.Kind)}
		}
		return ev
	})
	return ctx
}

func credentialEvent(c *Credential) EventData {
	return EventData{ObjectType: "credential", ObjectID: c.ID, Name: c.Name, Version: c.Version, ExpiresAt: c.ExpiresAt}
}
