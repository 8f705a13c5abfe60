package vault

import (
	"context"
	"fmt"
)

// MaxAuditQueryLimit is the largest page of audit records (DSM's limit).
const MaxAuditQueryLimit = 1000

// AuditLogs returns audit records of the caller's account, newest first,
// for a dialect's log listing. Only admins may read them. An admin app,
// which reaches only its groups, sees only the records about what it
// reaches (its groups, the security objects, integration credentials and
// apps now in them) and its own actions; account-wide records (SGP
// credentials, other principals' actions elsewhere, records of objects
// since deleted) are left out. Users and service accounts with the admin
// role see the whole account.
func (s *Service) AuditLogs(ctx context.Context, id *Identity, q AuditQuery) ([]AuditRecord, error) {
	if err := id.Require(ActAdmin); err != nil {
		return nil, err
	}
	if q.Limit <= 0 || q.Limit > MaxAuditQueryLimit {
		q.Limit = MaxAuditQueryLimit
	}
	q.AccountID = id.AccountID
	sc, err := s.scope(ctx, id)
	if err != nil {
		return nil, err
	}
	if !sc.all {
		q.Reach = &AuditReach{Groups: sc.list(), ActorID: id.Principal.ID}
	}
	recs, err := s.store.ListAudit(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("audit logs: %w", err)
	}
	return recs, nil
}
