package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/vault"
)

func newAuditCmd(o *options, stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify and export the audit trail"}
	var expect []string
	var anchorFile string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit trail's hash chain and head; exit non-zero if it was tampered with",
		Long: `Walk the whole audit trail and recompute its hash chain. An edited record, an
inserted record and a deleted record are each reported with the sequence number
where the chain breaks. The head row's MAC (a key derived from the master key,
so the master key must be configured) is checked, which detects the newest
records cut off and the head moved back.

A rollback to an older, genuine head (restoring an old copy of the database,
or an old head row kept by someone with database access) and a rewrite of the
whole trail are detected only against a head recorded outside the database:
--expect-head SEQ:HASH (as printed below) and --anchor-file (the checkpoints
serve writes with --audit-anchor-file) check that the trail still contains
them. Record the printed anchor outside the database (a ticket, a log shipper,
a WORM bucket).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var anchors []audit.Anchor
			for _, e := range expect {
				a, err := audit.ParseAnchor(e)
				if err != nil {
					return err
				}
				anchors = append(anchors, a)
			}
			a, err := app.OpenAdmin(cmd.Context(), o.appConfig(slog.New(slog.DiscardHandler)), operatorName())
			if err != nil {
				return err
			}
			defer a.Close()
			var bad []string
			if anchorFile != "" {
				f, err := os.Open(anchorFile)
				if err != nil {
					return fmt.Errorf("anchor file: %w", err)
				}
				cps, err := audit.ReadCheckpoints(f)
				f.Close()
				if err != nil {
					return err
				}
				for _, c := range cps {
					if err := audit.VerifyCheckpoint(a.Keyring, c); err != nil {
						bad = append(bad, err.Error())
						continue
					}
					an, err := c.Anchor()
					if err != nil {
						return err
					}
					anchors = append(anchors, an)
				}
			}
			rep, err := audit.Verify(cmd.Context(), a.Store, audit.VerifyOptions{Keys: a.Keyring, Anchors: anchors})
			if err != nil {
				return err
			}
			for _, p := range append(bad, rep.Problems...) {
				fmt.Fprintln(stdout, "TAMPERED:", p)
			}
			fmt.Fprintf(stdout, "records: %d, head: seq %d hash %s (authenticated: %v), anchors checked: %d\n",
				rep.Records, rep.HeadSeq, hex.EncodeToString(rep.HeadHash), rep.HeadAuthenticated, rep.AnchorsChecked)
			fmt.Fprintf(stdout, "anchor: %d:%s\n", rep.HeadSeq, hex.EncodeToString(rep.HeadHash))
			if !rep.OK() || len(bad) > 0 {
				return errors.New("audit trail verification failed")
			}
			fmt.Fprintln(stdout, "audit trail intact")
			return nil
		},
	}
	verify.Flags().StringArrayVar(&expect, "expect-head", nil, "SEQ:HASH of a head recorded earlier (as printed by verify); the trail must still contain it (repeatable)")
	verify.Flags().StringVar(&anchorFile, "anchor-file", "", "file of checkpoints written by serve --audit-anchor-file; every one must verify and be in the trail")

	sealHead := &cobra.Command{
		Use:   "seal-head",
		Short: "Authenticate an unauthenticated audit head (after checking the trail against an anchor)",
		Long: `Append a record "audit.seal_head" and authenticate the new head with the
master key, without checking the current head's MAC. Use it once for a trail
written by a version without head MACs, or restored from such a backup, and
only after "credvault audit verify --expect-head" against a head recorded
outside the database showed the trail is complete: while the head does not
authenticate, every change is refused (503).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := app.OpenAdmin(cmd.Context(), o.appConfig(slog.New(slog.DiscardHandler)), operatorName())
			if err != nil {
				return err
			}
			defer a.Close()
			ev := vault.AuditEvent{Time: time.Now().UTC().Truncate(time.Microsecond), PrincipalID: a.Actor.Principal.ID,
				PrincipalKind: a.Actor.Principal.Kind, Action: "audit.seal_head", ObjectType: "audit_trail", Outcome: "success"}
			if err := a.Trail.SealHead(cmd.Context(), ev); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "audit head authenticated")
			return nil
		},
	}
	export := &cobra.Command{
		Use:   "export",
		Short: "Write the audit trail as JSON lines (oldest first) to stdout",
		Args:  cobra.NoArgs,
		RunE: o.withStore(func(cmd *cobra.Command, _ []string, db store.Engine) error {
			enc := json.NewEncoder(stdout)
			return db.ScanAudit(cmd.Context(), func(r vault.AuditRecord) error {
				return enc.Encode(exportRecord{
					Seq: r.Seq, ID: r.ID, Time: r.Time.Format(time.RFC3339Nano), AccountID: r.AccountID,
					PrincipalID: r.PrincipalID, PrincipalKind: string(r.PrincipalKind), Action: r.Action,
					ObjectType: r.ObjectType, ObjectID: r.ObjectID, Outcome: r.Outcome, RequestID: r.RequestID,
					ClientAddr: r.ClientAddr, PrevHash: hex.EncodeToString(r.PrevHash), Hash: hex.EncodeToString(r.Hash),
				})
			})
		}),
	}
	cmd.AddCommand(verify, export, sealHead)
	return cmd
}

type exportRecord struct {
	Seq           int64  `json:"seq"`
	ID            string `json:"id"`
	Time          string `json:"time"`
	AccountID     string `json:"account_id"`
	PrincipalID   string `json:"principal_id"`
	PrincipalKind string `json:"principal_kind"`
	Action        string `json:"action"`
	ObjectType    string `json:"object_type"`
	ObjectID      string `json:"object_id"`
	Outcome       string `json:"outcome"`
	RequestID     string `json:"request_id"`
	ClientAddr    string `json:"client_addr"`
	PrevHash      string `json:"prev_hash"`
	Hash          string `json:"hash"`
}
