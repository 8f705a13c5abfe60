package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/internal/app"
)

func newBackupCmd(o *options, stdout io.Writer) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Take an online, consistent, authenticated backup of the database",
		Long: `Take an online backup while the server keeps serving: every table is read in
one read-only snapshot transaction and written as gzip-compressed JSON lines.
The backup holds ciphertext and metadata only, and is authenticated with an
HMAC under a key derived from the master key: restore refuses a backup that
was edited in any way. So backup needs the master key (configured as for
serve), and restoring needs the same one. The database must exist (run the
command where serve ran, or with the same --data-dir/--database-url).
The format is engine-neutral (SQLite ↔ PostgreSQL).
For PostgreSQL, pg_dump and continuous archiving (PITR) work as for any
database and are the better tool for large installations; see docs/operations.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := o.appConfig(slog.New(slog.DiscardHandler))
			// Refuse a missing database before creating the output file.
			db, err := o.openStore(cmd.Context())
			if err != nil {
				return err
			}
			db.Close()
			var w io.Writer = stdout
			var f *os.File
			if out != "-" {
				f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return fmt.Errorf("backup: %w", err)
				}
				w = f
			}
			st, err := app.Backup(cmd.Context(), cfg, w)
			if err == nil && f != nil {
				err = f.Sync()
			}
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					os.Remove(out)
				}
			}
			if err != nil {
				return err
			}
			if out != "-" {
				fmt.Fprintf(stdout, "backup written to %s: %d tables, %d rows\n", out, st.Tables, st.Rows)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "backup file to create (must not exist), or - for stdout")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func newRestoreCmd(o *options, stdout io.Writer) *cobra.Command {
	var in string
	cmd := &cobra.Command{
		Use:   "restore --in FILE",
		Short: "Verify a backup and restore it into a new, empty database",
		Long: `Restore a backup made by 'credvault backup' into the configured database, which
must be empty (never served). A SQLite database is created if it does not
exist; a PostgreSQL database must already exist (create it first, e.g. with
createdb).

It needs the master key of the vault the backup was taken from
(--master-key-file or $CREDVAULT_MASTER_KEY; a development vault keeps it in
<data-dir>/master-key.json — copy that file, it is never generated here).
Before anything is written the key is checked against the backup's key check
value and the whole backup is read to verify its MAC: a wrong key, or a
backup edited in any way (a renamed credential, a deleted row, a changed
ciphertext), is refused. The restore then runs in one transaction: if it
fails, nothing is written. Serve the restored database with the same master
key as the original.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r io.ReadSeeker
			if in == "-" {
				// Verification reads the backup twice: spool stdin to a
				// private temporary file (it holds ciphertext only).
				tmp, err := os.CreateTemp("", "credvault-restore-*")
				if err != nil {
					return fmt.Errorf("restore: %w", err)
				}
				defer os.Remove(tmp.Name())
				defer tmp.Close()
				if _, err := io.Copy(tmp, os.Stdin); err != nil {
					return fmt.Errorf("restore: read stdin: %w", err)
				}
				if _, err := tmp.Seek(0, io.SeekStart); err != nil {
					return fmt.Errorf("restore: %w", err)
				}
				r = tmp
			} else {
				f, err := os.Open(in)
				if err != nil {
					return fmt.Errorf("restore: %w", err)
				}
				defer f.Close()
				r = f
			}
			st, err := app.Restore(cmd.Context(), o.appConfig(slog.New(slog.DiscardHandler)), r)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "backup verified; restored %d tables, %d rows\n", st.Tables, st.Rows)
			return nil
		},
	}
	cmd.Flags().StringVar(&in, "in", "", "backup file, or - for stdin")
	_ = cmd.MarkFlagRequired("in")
	return cmd
}
