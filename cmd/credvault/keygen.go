package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/cobra"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/credvault/credvault/internal/crypto"
)

func newKeygenCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen [--out FILE]",
		Short: "Create a new master key (a Tink AES-256-GCM JSON keyset)",
		Long: `Create a new master key: a Tink JSON keyset with one AES-256-GCM key from
crypto/rand. With --out the key is written to FILE with mode 0600 (an
existing file is refused unless --force); without it the key is printed to
stdout, with a warning on stderr when stdout is not a terminal, because a file
made by shell redirection gets the umask's permissions (often world-readable).
Store it where the database and its backups are not (a secrets manager, a
KMS-protected file, a separate volume) and hand it to serve through
--master-key-file or CREDVAULT_MASTER_KEY.

With --master-key-uri pkcs11:… the key is instead generated inside the HSM:
an AES-256 key (CKA_SENSITIVE, not CKA_EXTRACTABLE) labelled with the URI's
object, which never leaves the token; nothing is printed or written. An
existing key with that label is kept. serve also generates it on the first
start of a new vault.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.masterKeyURI != "" {
				root, gen, err := crypto.OpenRootKey(cmd.Context(), o.masterKeyURI, crypto.RootKeyOptions{Generate: true})
				if err != nil {
					return err
				}
				defer root.Close()
				if gen {
					fmt.Fprintf(stdout, "generated the root key %s inside the HSM\n", root)
				} else {
					fmt.Fprintf(stdout, "the root key %s exists already; kept it\n", root)
				}
				return nil
			}
			h, err := crypto.NewKEK()
			if err != nil {
				return err
			}
			if out != "" {
				if err := writeKeyFile(out, h, force); err != nil {
					return err
				}
				fmt.Fprintf(stderr, "master key written to %s (mode 0600)\n", out)
				return nil
			}
			b, err := crypto.MarshalKEK(h)
			if err != nil {
				return err
			}
			if !isTerminal(stdout) {
				fmt.Fprintln(stderr, "credvault keygen: warning: writing the master key to a redirected stdout; a file created by the shell gets your umask's permissions (often readable by every user). Use --out FILE to write it with mode 0600.")
			}
			_, err = fmt.Fprintln(stdout, string(b))
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the key to this file with mode 0600 instead of stdout")
	cmd.Flags().BoolVar(&force, "force", false, "with --out: overwrite an existing file (the key in it is lost)")
	return cmd
}

// writeKeyFile writes a master keyset to path with mode 0600: a new file
// (refusing an existing one), or with force an atomic replacement.
func writeKeyFile(path string, h *keyset.Handle, force bool) error {
	if force {
		return (&crypto.FileProvider{Path: path}).Save(h)
	}
	b, err := crypto.MarshalKEK(h)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("keygen: %s already exists; refusing to overwrite a master key (use --force if you mean it)", path)
	}
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("keygen: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("keygen: %w", err)
	}
	return f.Close()
}

// isTerminal reports whether w is a terminal (a character device). Anything
// else — a file, a pipe, a test's buffer — counts as redirected.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
