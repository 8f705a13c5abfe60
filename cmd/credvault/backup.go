package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func newBackupCmd(o *options, stdout io.Writer) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Take an online, consistent backup of the database",
		Long: `Take an online backup while the server keeps serving: every table is read in
one read-only snapshot transaction and written as gzip-compressed JSON lines.
The backup holds ciphertext and metadata only; restoring it needs the same
master key. The format is engine-neutral (SQLite ↔ PostgreSQL).

For PostgreSQL, pg_dump and continuous archiving (PITR) work as for any
database and are the better tool for large installations; see docs/operations.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := o.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			var w io.Writer = stdout
			var f *os.File
			if out != "-" {
				f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return fmt.Errorf("backup: %w", err)
				}
				w = f
			}
			st, err := db.Backup(cmd.Context(), w)
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
		Short: "Restore a backup into a new, empty database",
		Long: `Restore a backup made by 'credvault backup' into the configured database, which
must be empty (never served). The restore runs in one transaction: if it
fails, nothing is written. Serve the restored database with the same master
key as the original.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r io.Reader = os.Stdin
			if in != "-" {
				f, err := os.Open(in)
				if err != nil {
					return fmt.Errorf("restore: %w", err)
				}
				defer f.Close()
				r = f
			}
			db, err := o.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			st, err := db.Restore(cmd.Context(), r)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "restored %d tables, %d rows\n", st.Tables, st.Rows)
			return nil
		},
	}
	cmd.Flags().StringVar(&in, "in", "", "backup file, or - for stdin")
	_ = cmd.MarkFlagRequired("in")
	return cmd
}
