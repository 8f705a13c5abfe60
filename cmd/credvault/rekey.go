package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/vault"
)

func newRekeyCmd(o *options, stdout io.Writer) *cobra.Command {
	var resume bool
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "rekey",
		Short: "Rotate the master key online and re-wrap every data key",
		Long: `Rotate the master key (key-encryption key) while servers keep serving:

  1. a new AES-256-GCM key is added to the master key file as its primary;
     running servers load it (they watch the file);
  2. every data key in the database is re-wrapped under it (payload
     ciphertexts are untouched; concurrent writes are never overwritten);
  3. old keys that nothing depends on any more are removed from the file.

The master key must be in a file (--master-key-file, or the development key in
the data directory). If the command is interrupted, run it again with --resume:
every step is idempotent. Back up the master key file before and after.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger := o.logger(stdout)
			rep, err := app.Rekey(cmd.Context(), o.appConfig(slog.New(slog.DiscardHandler)), app.RekeyOptions{
				Resume: resume, Grace: grace, Actor: vault.OperatorIdentity(operatorName()),
				Log: func(msg string, args ...any) { logger.Info(msg, args...) },
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "master key rotated: primary key id %d; %d ciphertexts scanned, %d re-wrapped; retired key ids %v\n",
				rep.NewPrimary, rep.Scanned, rep.Rewrapped, rep.Retired)
			return nil
		},
	}
	cmd.Flags().BoolVar(&resume, "resume", false, "finish an interrupted rotation without adding another key")
	cmd.Flags().DurationVar(&grace, "grace", 5*time.Second, "wait after changing the key file so running servers load it")
	return cmd
}
