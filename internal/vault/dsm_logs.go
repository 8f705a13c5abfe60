package vault

import (
	"context"
	"fmt"
)

// MaxAuditQueryLimit is the largest page of audit records (DSM's limit).
const MaxAuditQueryLimit = 1000

// AuditLogs returns audit records of the caller's account, newest first,
// for DSM's GET /sys/v1/logs. Only admins may read them.
func (s *Service) AuditLogs(ctx context.Context, id *Identity, q AuditQuery) ([]AuditRecord, error) {
	if err := id.Require(ActAdmin); err != nil {
		return nil, err
	}
	if q.Limit <= 0 || q.Limit > MaxAuditQueryLimit {
		q.Limit = MaxAuditQueryLimit
	}
	q.AccountID = id.AccountID
	recs, err := s.store.ListAudit(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("audit logs: %w", err)
	}
	return recs, nil
}
