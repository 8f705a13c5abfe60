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
	var toURI, toFile string
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
every step is idempotent. Back up the master key file before and after.

With --master-key-uri (a root key in an HSM) the keyset is the one stored in
the database, encrypted under that key: the new key is added there, and
servers on every host pick it up from the database.

Moving a vault between a key file and an HSM, online:
  credvault rekey --master-key-file F --to-master-key-uri pkcs11:…
stores the file's keyset in the database encrypted under the HSM key
(generated if missing). Nothing is re-encrypted, so servers still running with
the file keep serving; restart them one by one with --master-key-uri, then
run "credvault rekey --master-key-uri …" so that no data depends on the keys
in the file any more, and destroy the file (it holds them in the clear).
  credvault rekey --master-key-uri pkcs11:… --to-master-key-file NEW
moves it back: NEW (mode 0600) gets the keyset, the database copy is removed.
Both are idempotent and recorded in the audit trail (master_key.migrate).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger := o.logger(stdout)
			logf := func(msg string, args ...any) { logger.Info(msg, args...) }
			cfg := o.appConfig(slog.New(slog.DiscardHandler))
			switch {
			case toURI != "" && toFile != "":
				return fmt.Errorf("rekey: give --to-master-key-uri or --to-master-key-file, not both")
			case toURI != "":
				rep, err := app.MigrateToRootKey(vault.WithActor(cmd.Context(), vault.OperatorIdentity(operatorName())), cfg, toURI, logf)
				if err != nil {
					return err
				}
				if rep.AlreadyMigrated {
					fmt.Fprintf(stdout, "the vault's keyset is already stored under %s; nothing to do\n", rep.To)
					return nil
				}
				fmt.Fprintf(stdout, "the vault's keyset is now stored in the database, encrypted under %s\n", rep.To)
				if rep.LeftOver != "" {
					fmt.Fprintf(stdout, "WARNING: %s still holds the keyset in the clear. Restart every server with --master-key-uri, run `credvault rekey --master-key-uri …` so that no data depends on its keys, then destroy the file (shred it and its backups).\n", rep.LeftOver)
				}
				return nil
			case toFile != "":
				rep, err := app.MigrateToFile(vault.WithActor(cmd.Context(), vault.OperatorIdentity(operatorName())), cfg, toFile, logf)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "the vault's keyset is now in %s (mode 0600) and no longer in the database; restart servers with --master-key-file %s\n", rep.To, rep.To)
				return nil
			}
			rep, err := app.Rekey(cmd.Context(), cfg, app.RekeyOptions{
				Resume: resume, Grace: grace, Actor: vault.OperatorIdentity(operatorName()), Log: logf,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "master key rotated: primary key id %d; %d ciphertexts scanned, %d re-wrapped; retired key ids %v\n",
				rep.NewPrimary, rep.Scanned, rep.Rewrapped, rep.Retired)
			return nil
		},
	}
	cmd.Flags().StringVar(&toURI, "to-master-key-uri", "", "move the vault's keyset from its key file into the database, encrypted under this HSM key")
	cmd.Flags().StringVar(&toFile, "to-master-key-file", "", "move the vault's keyset from the database (under --master-key-uri) to this new key file")
	cmd.Flags().BoolVar(&resume, "resume", false, "finish an interrupted rotation without adding another key")
	cmd.Flags().DurationVar(&grace, "grace", 5*time.Second, "wait after changing the key file so running servers load it; 0 also means 5s")
	return cmd
}
