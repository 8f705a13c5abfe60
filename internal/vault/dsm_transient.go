package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Transient security objects.
//
// A transient object is created like any other but never stored: the
// caller receives a handle, the object sealed under the master key with
// associated data that binds it to the account and to the caller's
// session, and presents that handle instead of a kid or a name. Nothing
// about it is kept on the server, so every replica that holds the master
// key can use it, and it ceases to exist with what it is bound to:
//
//   - created through a session (a dialect's bearer session), it is bound to
//     that session: it works only with requests authenticated by the same
//     session, for as long as the session lives (refreshes included), and
//     dies when the session ends or is terminated;
//   - created with an API key alone (no session), it is bound to that key
//     and lives as long as a session opened at the same moment would
//     (DefaultSessionTTL, never beyond the key's expiry).
//
// A handle from another account, session or key, a tampered one and an
// expired one all answer as a missing object. A master-key rotation that
// drops the key that sealed a handle ends the object too. Its key
// material inside the handle is sealed once more exactly as a stored
// object's (sobjectAD), so the operations treat both alike; and the
// handle, like any sealed blob, shows nothing without the master key.

// transientVersion prefixes every handle, so that a later format can be
// told apart.
const transientVersion = 1

// transientObject is the sealed content of a handle.
type transientObject struct {
	KID            string            `json:"kid"` // internal: names the object in the audit trail
	GroupID        string            `json:"group_id"`
	Name           string            `json:"name,omitempty"`
	Description    string            `json:"description,omitempty"`
	ObjType        string            `json:"obj_type"`
	KeySize        int               `json:"key_size,omitempty"`
	Curve          string            `json:"curve,omitempty"`
	KeyOps         []string          `json:"key_ops"`
	CustomMetadata map[string]string `json:"custom_metadata,omitempty"`
	Enabled        bool              `json:"enabled"`
	PublicOnly     bool              `json:"public_only,omitempty"`
	Creator        Creator           `json:"creator"`
	CreatedAt      time.Time         `json:"created_at"`
	Deactivation   *time.Time        `json:"deactivation,omitempty"`
	ExpiresAt      *time.Time        `json:"expires_at,omitempty"` // nil: bound to a session
	PubKey         []byte            `json:"pub_key,omitempty"`
	Ciphertext     []byte            `json:"ct"`
}

// transientAD binds a handle to the caller's account and session (or,
// without a session, to the API key or principal that created it).
func transientAD(id *Identity) []byte {
	binding := "principal:" + id.Principal.ID
	switch {
	case id.SessionID != "":
		binding = "session:" + id.SessionID
	case id.KeyID != "":
		binding = "key:" + id.KeyID
	}
	return []byte("credvault transient sobject v1\x00" + id.AccountID + "\x00" + binding)
}

// sealTransient turns the new, unstored object o into a transient one and
// sets its handle.
func (s *Service) sealTransient(id *Identity, o *Sobject) (*Sobject, error) {
	t := transientObject{KID: o.KID, GroupID: o.GroupID, Name: o.Name, Description: o.Description, ObjType: o.ObjType, KeySize: o.KeySize,
		Curve: o.EllipticCurve, KeyOps: o.KeyOps, CustomMetadata: o.CustomMetadata, Enabled: o.Enabled, PublicOnly: o.PublicOnly,
		Creator: o.Creator, CreatedAt: o.CreatedAt, Deactivation: o.DeactivationDate, PubKey: o.PubKey, Ciphertext: o.Ciphertext}
	if id.SessionID == "" {
		end := sessionEnd(id, o.CreatedAt)
		t.ExpiresAt = &end
	}
	plain, err := json.Marshal(&t)
	if err != nil {
		return nil, fmt.Errorf("transient object: %w", err)
	}
	sealed, err := s.sealer.Seal(plain, transientAD(id))
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("seal transient object: %w", err)
	}
	o.Origin = OriginTransient
	o.TransientKey = append([]byte{transientVersion}, sealed...)
	return o, nil
}

// openTransient resolves a transient object's handle for the caller.
func (s *Service) openTransient(id *Identity, handle []byte) (*Sobject, error) {
	if len(handle) < 2 || handle[0] != transientVersion {
		return nil, notFound("security object")
	}
	plain, err := s.sealer.Open(handle[1:], transientAD(id))
	if err != nil {
		// Another account's, session's or key's handle, a tampered one, or
		// one sealed under a master key that is gone.
		return nil, notFound("security object")
	}
	var t transientObject
	err = json.Unmarshal(plain, &t)
	clear(plain)
	if err != nil || t.KID == "" {
		return nil, Wrap(KindInternal, fmt.Errorf("transient object: %w", err), "the transient security object cannot be read")
	}
	if t.ExpiresAt != nil && !s.Now().Before(*t.ExpiresAt) {
		return nil, notFound("security object")
	}
	o := &Sobject{KID: t.KID, AccountID: id.AccountID, GroupID: t.GroupID, Name: t.Name, Description: t.Description, ObjType: t.ObjType,
		KeySize: t.KeySize, EllipticCurve: t.Curve, KeyOps: t.KeyOps, CustomMetadata: t.CustomMetadata, Enabled: t.Enabled, State: StateActive,
		Origin: OriginTransient, PublicOnly: t.PublicOnly, Creator: t.Creator,
		CreatedAt: t.CreatedAt, UpdatedAt: t.CreatedAt, ActivationDate: t.CreatedAt, DeactivationDate: t.Deactivation, PubKey: t.PubKey,
		Version: 1, Ciphertext: t.Ciphertext}
	o.NeverExportable = !o.HasOp(OpExport)
	return o, nil
}

// findTransient resolves a handle within the caller's group scope, like a
// stored object.
func (s *Service) findTransient(ctx context.Context, id *Identity, handle []byte) (*Sobject, error) {
	sc, err := s.scope(ctx, id)
	if err != nil {
		return nil, err
	}
	o, err := s.openTransient(id, handle)
	if err != nil {
		return nil, err
	}
	if !sc.has(o.GroupID) {
		return nil, notFound("security object")
	}
	return o, nil
}
