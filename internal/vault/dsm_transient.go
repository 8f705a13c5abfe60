package vault

import (
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
//     (DefaultSessionTTL, never beyond the key's expiry). An app's key id is
//     the app's id, so for an app the handle is bound to the app: it
//     outlives a reset of the app's secret, within that lifetime.
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

// transientObject is the sealed content of a handle: the object as it
// would be stored (its material sealed under sobjectAD) and, for one
// bound to an API key, when it ends.
type transientObject struct {
	Object    *Sobject
	ExpiresAt *time.Time `json:",omitempty"` // nil: bound to a session
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
	o.Origin = OriginTransient
	t := transientObject{Object: o}
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
	if err != nil || t.Object == nil || t.Object.KID == "" {
		return nil, Wrap(KindInternal, fmt.Errorf("transient object: %w", err), "the transient security object cannot be read")
	}
	if t.ExpiresAt != nil && !s.Now().Before(*t.ExpiresAt) {
		return nil, notFound("security object")
	}
	o := t.Object
	o.AccountID, o.Origin, o.TransientKey = id.AccountID, OriginTransient, nil
	return o, nil
}
