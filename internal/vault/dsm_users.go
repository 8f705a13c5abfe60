package vault

import (
	"context"
	"fmt"
	"time"
)

// DSM users: a user principal with an email and a password opens a DSM
// session with them, as DSM users do (the dialect decides how the request
// carries them). Its session is a DSM session without an API key (KeyID ""):
// it ends after DefaultSessionTTL without a refresh and SessionMaxLifetime
// after it opened, and with the user (disabled, deleted, password changed).

// AuthenticateDSMUser checks a user's email and password for a DSM
// session: the identity acts in the user's home account.
func (s *Service) AuthenticateDSMUser(ctx context.Context, email, password string) (*Identity, error) {
	id, err := s.AuthenticatePassword(ctx, email, password)
	if err != nil {
		return nil, err
	}
	if id.Role == "" {
		return nil, Errorf(KindPermissionDenied, "this user is not a member of its home account")
	}
	end := s.Now().Add(SessionMaxLifetime)
	id.KeyExpiresAt = &end // caps the session like a key's expiry would
	return id, nil
}

// AccountMembership is an account with the caller's role in it.
type AccountMembership struct {
	Account Account
	Role    Role
}

// DSMAccounts lists the caller's accounts with its role in each (an app:
// its own account only).
func (s *Service) DSMAccounts(ctx context.Context, id *Identity) ([]AccountMembership, error) {
	if err := id.Require(ActRead); err != nil {
		return nil, err
	}
	ms, err := s.store.ListMemberships(ctx, id.Principal.ID)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	out := []AccountMembership{}
	for _, m := range ms {
		if id.Principal.Kind == PrincipalApp && m.AccountID != id.AccountID {
			continue
		}
		a, err := s.store.GetAccount(ctx, m.AccountID)
		if err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		out = append(out, AccountMembership{Account: *a, Role: m.Role})
	}
	return out, nil
}

// DSMUser is a user as DSM shows it: the principal and its role in the
// account the caller acts in.
type DSMUser struct {
	PrincipalDetail
	Role Role
}

// DSMGetUser returns a user who is a member of the caller's account (or
// the caller itself). Apps see no users.
func (s *Service) DSMGetUser(ctx context.Context, id *Identity, userID string) (*DSMUser, error) {
	if err := id.Require(ActRead); err != nil {
		return nil, err
	}
	notFound := Errorf(KindNotFound, "no such user in this account")
	if id.Principal.Kind == PrincipalApp && userID != id.Principal.ID {
		return nil, notFound
	}
	p, err := s.store.GetPrincipalDetail(ctx, userID)
	if KindOf(err) == KindNotFound {
		return nil, notFound
	}
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	if p.Kind != PrincipalUser || p.Email == "" { // DSM users have an email
		return nil, notFound
	}
	for _, m := range p.Memberships {
		if m.AccountID == id.AccountID {
			return &DSMUser{PrincipalDetail: *p, Role: m.Role}, nil
		}
	}
	return nil, notFound
}

// DSMListUsers lists the users with an email of the caller's account (at
// most limit, after offset, by id).
func (s *Service) DSMListUsers(ctx context.Context, id *Identity, limit, offset int) ([]DSMUser, error) {
	if err := id.Require(ActRead); err != nil {
		return nil, err
	}
	if id.Principal.Kind == PrincipalApp {
		return nil, Errorf(KindPermissionDenied, "apps cannot list users")
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	ps, _, err := s.store.ListPrincipalDetails(ctx, PrincipalQuery{AccountID: id.AccountID, Kind: PrincipalUser, Limit: 10000})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := []DSMUser{}
	n := 0
	for _, p := range ps {
		if p.Email == "" { // DSM users have an email
			continue
		}
		if n++; n <= offset {
			continue
		}
		if len(out) == limit {
			break
		}
		u := DSMUser{PrincipalDetail: p}
		for _, m := range p.Memberships {
			if m.AccountID == id.AccountID {
				u.Role = m.Role
			}
		}
		out = append(out, u)
	}
	return out, nil
}

// sessionCap is the end of a keyless (user) session: SessionMaxLifetime
// after it opened.
func sessionCap(created time.Time) *time.Time {
	t := created.Add(SessionMaxLifetime)
	return &t
}
