package vault

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
)

// BulkCredentialStore inserts many credentials in one transaction (bulk
// loading, benchmarks).
type BulkCredentialStore interface {
	// CreateCredentials inserts all of cs or none of them. ErrConflict if a
	// name is taken in its account.
	CreateCredentials(ctx context.Context, cs []*Credential) error
}

// BulkCreateCredentials creates many credentials at once (bulk loading,
// benchmarks). Every input is validated exactly as CreateCredential does;
// payloads are sealed in parallel across GOMAXPROCS, with the same
// associated data as CreateCredential, and stored in one transaction:
// either all credentials are created or none. One audit event records the
// whole batch.
func (s *Service) BulkCreateCredentials(ctx context.Context, id *Identity, ins []CredentialInput) (cs []*Credential, err error) {
	ctx = s.auditing(ctx, id, "credential.bulk_create", "credential", func() string { return "" })
	defer func() {
		if aerr := s.Audit(ctx, id, "credential.bulk_create", "credential", "", err); aerr != nil && err == nil {
			cs, err = nil, aerr
		}
	}()
	if err := id.requireAccountWide(ActWrite); err != nil {
		return nil, err
	}
	if len(ins) == 0 {
		return nil, nil
	}
	cs = make([]*Credential, len(ins))
	for i := range ins {
		c, err := s.newCredential(id, &ins[i])
		if err != nil {
			return nil, bulkItemError(i, err)
		}
		cs[i] = c
	}
	if err := s.sealParallel(ctx, cs, ins); err != nil {
		return nil, err
	}
	if err := s.store.CreateCredentials(ctx, cs); err != nil {
		if KindOf(err) == KindConflict {
			return nil, &Error{Kind: KindConflict, Field: "name", Msg: "a credential with one of these names already exists in this account", Err: err}
		}
		return nil, fmt.Errorf("bulk create credentials: %w", err)
	}
	return cs, nil
}

// sealParallel seals ins[i].Payload into cs[i].Ciphertext using GOMAXPROCS
// workers over contiguous chunks.
func (s *Service) sealParallel(ctx context.Context, cs []*Credential, ins []CredentialInput) error {
	workers := min(runtime.GOMAXPROCS(0), len(cs))
	chunk := (len(cs) + workers - 1) / workers
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for lo := 0; lo < len(cs); lo += chunk {
		hi := min(lo+chunk, len(cs))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				if i%256 == 0 && ctx.Err() != nil {
					mu.Lock()
					errs = append(errs, ctx.Err())
					mu.Unlock()
					return
				}
				c := cs[i]
				ct, err := s.sealer.Seal(ins[i].Payload, credentialAD(c.AccountID, c.ID, c.Version))
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("bulk create credentials: seal: %w", err))
					mu.Unlock()
					return
				}
				c.Ciphertext = ct
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func bulkItemError(i int, err error) error {
	var ve *Error
	if errors.As(err, &ve) {
		e := *ve
		e.Msg = fmt.Sprintf("item %d: %s", i, ve.Msg)
		return &e
	}
	return fmt.Errorf("item %d: %w", i, err)
}

// WriterIdentity returns an Identity acting in accountID for operator tools
// that work on the database directly (the bulk loader, the benchmark): the
// first principal, in creation order, that is an admin of the account, or
// failing that a writer. accountID "" selects the only account, if there is
// exactly one.
func (s *Service) WriterIdentity(ctx context.Context, accountID string) (*Identity, error) {
	if accountID == "" {
		as, err := s.store.ListAccounts(ctx)
		if err != nil {
			return nil, fmt.Errorf("writer identity: %w", err)
		}
		switch len(as) {
		case 0:
			return nil, Errorf(KindNotFound, "the vault has no account yet (run credvault serve once to bootstrap it)")
		case 1:
			accountID = as[0].ID
		default:
			return nil, FieldError("account", "the vault has %d accounts: choose one", len(as))
		}
	}
	if _, err := s.store.GetAccount(ctx, accountID); err != nil {
		return nil, fmt.Errorf("writer identity: account %s: %w", accountID, err)
	}
	ps, err := s.store.ListPrincipals(ctx)
	if err != nil {
		return nil, fmt.Errorf("writer identity: %w", err)
	}
	var best *Identity
	for _, p := range ps {
		ms, err := s.store.ListMemberships(ctx, p.ID)
		if err != nil {
			return nil, fmt.Errorf("writer identity: %w", err)
		}
		for _, m := range ms {
			if m.AccountID != accountID || !m.Role.Allows(ActWrite) {
				continue
			}
			if m.Role == RoleAdmin {
				return &Identity{Principal: p, AccountID: accountID, Role: m.Role}, nil
			}
			if best == nil {
				best = &Identity{Principal: p, AccountID: accountID, Role: m.Role}
			}
		}
	}
	if best == nil {
		return nil, Errorf(KindNotFound, "no principal may write in account %s", accountID)
	}
	return best, nil
}
