package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// MaxWebhooksPerAccount bounds an account's webhooks.
const MaxWebhooksPerAccount = 100

// WebhookInput is the input of CreateWebhook and UpdateWebhook (nil
// fields of an update are left as they are).
type WebhookInput struct {
	URL         *string
	Events      []string // nil: unchanged (update); empty is refused
	Description *string
}

// webhookAD binds a webhook's sealed signing secret to its account and id.
func webhookAD(accountID, id string) []byte {
	return []byte("credvault/webhook-secret/v1\x00" + accountID + "\x00" + id)
}

func checkWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(raw) > 2048 || !storable(raw) {
		return FieldError("url", "url must be an absolute http or https URL without credentials, at most 2048 bytes")
	}
	return nil
}

func checkEvents(evs []string) error {
	if len(evs) == 0 {
		return FieldError("events", "events must list at least one event type")
	}
	for _, e := range evs {
		if e != "*" && !slices.Contains(EventTypes, e) {
			return FieldError("events", "unknown event type %q; one of %s or \"*\"", e, strings.Join(EventTypes, ", "))
		}
	}
	return nil
}

// CreateWebhook registers a webhook (account admins) and returns it with
// its signing secret, shown only here.
func (s *Service) CreateWebhook(ctx context.Context, id *Identity, in WebhookInput) (w *Webhook, secret string, err error) {
	const action = "webhook.create"
	ctx = s.auditing(ctx, id, action, "webhook", func() string { return w.ID })
	defer func() { err = s.auditWebhook(ctx, id, action, w, "", err) }()
	if err := id.requireAccountWide(ActAdmin); err != nil {
		return nil, "", err
	}
	if in.URL == nil {
		return nil, "", FieldError("url", "url is required")
	}
	if err := checkWebhookURL(*in.URL); err != nil {
		return nil, "", err
	}
	if err := checkEvents(in.Events); err != nil {
		return nil, "", err
	}
	desc := ""
	if in.Description != nil {
		desc = *in.Description
		if err := checkDescription(desc); err != nil {
			return nil, "", err
		}
	}
	existing, err := s.store.ListWebhooks(ctx, id.AccountID)
	if err != nil {
		return nil, "", fmt.Errorf("create webhook: %w", err)
	}
	if len(existing) >= MaxWebhooksPerAccount {
		return nil, "", Errorf(KindConflict, "an account may have at most %d webhooks", MaxWebhooksPerAccount)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, "", fmt.Errorf("create webhook: %w", err)
	}
	secret = "whsec_" + hex.EncodeToString(raw[:])
	now := s.Now()
	w = &Webhook{ID: NewID(), AccountID: id.AccountID, URL: *in.URL, Events: slices.Clone(in.Events), Description: desc,
		CreatedBy: id.Principal.ID, CreatedAt: now, UpdatedAt: now}
	if w.Secret, err = s.sealer.Seal([]byte(secret), webhookAD(w.AccountID, w.ID)); err != nil {
		return nil, "", fmt.Errorf("create webhook: seal: %w", err)
	}
	if err := s.store.CreateWebhook(ctx, w); err != nil {
		return nil, "", fmt.Errorf("create webhook: %w", err)
	}
	return w, secret, nil
}

func (s *Service) auditWebhook(ctx context.Context, id *Identity, action string, w *Webhook, whID string, opErr error) error {
	return s.auditOutcome(ctx, id, action, "webhook", resultID(w, whID), opErr)
}

// GetWebhook returns a webhook (account admins).
func (s *Service) GetWebhook(ctx context.Context, id *Identity, whID string) (*Webhook, error) {
	if err := id.requireAccountWideOn(ActAdmin, "webhook", whID); err != nil {
		return nil, err
	}
	w, err := s.store.GetWebhook(ctx, id.AccountID, whID)
	if err != nil {
		return nil, notFoundAs(err, "webhook")
	}
	return w, nil
}

// ListWebhooks returns the account's webhooks (account admins).
func (s *Service) ListWebhooks(ctx context.Context, id *Identity) ([]Webhook, error) {
	if err := id.requireAccountWide(ActAdmin); err != nil {
		return nil, err
	}
	ws, err := s.store.ListWebhooks(ctx, id.AccountID)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return ws, nil
}

// UpdateWebhook changes a webhook's url, events or description.
func (s *Service) UpdateWebhook(ctx context.Context, id *Identity, whID string, in WebhookInput) (w *Webhook, err error) {
	const action = "webhook.update"
	ctx = s.auditing(ctx, id, action, "webhook", func() string { return whID })
	defer func() { err = s.auditWebhook(ctx, id, action, nil, whID, err) }()
	if w, err = s.GetWebhook(ctx, id, whID); err != nil {
		return nil, err
	}
	if in.URL != nil {
		if err := checkWebhookURL(*in.URL); err != nil {
			return nil, err
		}
		w.URL = *in.URL
	}
	if in.Events != nil {
		if err := checkEvents(in.Events); err != nil {
			return nil, err
		}
		w.Events = slices.Clone(in.Events)
	}
	if in.Description != nil {
		if err := checkDescription(*in.Description); err != nil {
			return nil, err
		}
		w.Description = *in.Description
	}
	w.UpdatedAt = s.Now()
	if err := s.store.UpdateWebhook(ctx, w); err != nil {
		return nil, notFoundAs(err, "webhook")
	}
	return w, nil
}

// DeleteWebhook removes a webhook; its pending deliveries are dropped.
func (s *Service) DeleteWebhook(ctx context.Context, id *Identity, whID string) (err error) {
	const action = "webhook.delete"
	ctx = s.auditing(ctx, id, action, "webhook", func() string { return whID })
	defer func() { err = s.auditWebhook(ctx, id, action, nil, whID, err) }()
	if err := id.requireAccountWideOn(ActAdmin, "webhook", whID); err != nil {
		return err
	}
	if err := s.store.DeleteWebhook(ctx, id.AccountID, whID); err != nil {
		return notFoundAs(err, "webhook")
	}
	return nil
}

// ListDeliveries returns a webhook's delivery log, newest first.
func (s *Service) ListDeliveries(ctx context.Context, id *Identity, whID string, limit int) ([]Delivery, error) {
	if _, err := s.GetWebhook(ctx, id, whID); err != nil {
		return nil, err
	}
	if limit < 1 || limit > 1000 {
		return nil, FieldError("limit", "limit must be between 1 and 1000")
	}
	ds, err := s.store.ListDeliveries(ctx, id.AccountID, whID, limit)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return ds, nil
}

// WebhookSecret opens a webhook's sealed signing secret (for the worker).
func (s *Service) WebhookSecret(accountID, whID string, sealed []byte) ([]byte, error) {
	pt, err := s.sealer.Open(sealed, webhookAD(accountID, whID))
	if err != nil {
		return nil, IntegrityError("webhook", fmt.Errorf("open webhook %s secret: %w", whID, err))
	}
	return pt, nil
}

// WebhookMatches reports whether a webhook subscribed to events receives
// an event of type typ.
func WebhookMatches(events []string, typ string) bool {
	return slices.Contains(events, "*") || slices.Contains(events, typ)
}
