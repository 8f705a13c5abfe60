package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/internal/crypto"
)

func newKeygenCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new master key (a Tink AES-256-GCM JSON keyset)",
		Long: `Print a new master key: a Tink JSON keyset with one AES-256-GCM key from
crypto/rand. Store it where the database and its backups are not (a secrets
manager, a KMS-protected file, a separate volume) and hand it to serve through
--master-key-file or CREDVAULT_MASTER_KEY.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := crypto.NewKEK()
			if err != nil {
				return err
			}
			b, err := crypto.MarshalKEK(h)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, string(b))
			return err
		},
	}
}
