package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/client"
)

func newLoginCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	var url, account, caFile, name string
	cmd := &cobra.Command{
		Use:   "login [--url URL] [--account ID] [--ca-file F] [--profile NAME]",
		Short: "Check an API key against a server and save it as a profile",
		Long: `Read an API key from a prompt (without echo) or from stdin, check it against
the server, and save URL, key, account and CA file as a profile (default
"default") in <user config dir>/credvault/profiles.json (mode 0600; the
directory: $CREDVAULT_CONFIG_DIR). The client commands use the profile for
whatever the flags and CREDVAULT_URL, CREDVAULT_API_KEY, CREDVAULT_ACCOUNT,
CREDVAULT_CA_FILE do not give; the saved key and account are used only with
the profile's own URL, never sent to another server. The URL defaults to CREDVAULT_URL, then to the
profile's.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			pf, path, err := o.loadProfiles()
			if err != nil {
				return err
			}
			if pf.Profiles == nil {
				pf.Profiles = map[string]profile{}
			}
			old := pf.Profiles[name]
			p := profile{
				URL:     first(url, o.getenv("CREDVAULT_URL"), old.URL),
				Account: first(account, o.getenv("CREDVAULT_ACCOUNT"), old.Account),
				CAFile:  first(caFile, o.getenv("CREDVAULT_CA_FILE"), old.CAFile),
			}
			if p.URL == "" {
				return usageError{errors.New("no server URL: pass --url (or set CREDVAULT_URL)")}
			}
			key, err := readSecret(cmd.InOrStdin(), stderr, "API key for "+p.URL+" (input hidden): ")
			if err != nil {
				return fmt.Errorf("read API key: %w", err)
			}
			p.APIKey = string(bytes.TrimSpace(key))
			if p.APIKey == "" {
				return usageError{errors.New("no API key given (type it at the prompt or pipe it on stdin)")}
			}
			var rf remoteFlags
			rf.url, rf.apiKey, rf.account, rf.caFile = p.URL, p.APIKey, p.Account, p.CAFile
			r, err := (&options{getenv: func(string) string { return "" }}).connect(&rf)
			if err != nil {
				return err
			}
			if _, err := r.c.Credentials.List(cmd.Context(), client.ListParams{Limit: 1}); err != nil {
				return fmt.Errorf("not saved: %w", r.explain(err))
			}
			pf.Profiles[name] = p
			if err := saveProfiles(path, pf); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "logged in to %s; profile %q saved in %s\n", p.URL, name, path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "", "server URL ($CREDVAULT_URL)")
	f.StringVar(&account, "account", "", "account id to act in; default: the key's own ($CREDVAULT_ACCOUNT)")
	f.StringVar(&caFile, "ca-file", "", "PEM CA certificate(s) to trust for an https server ($CREDVAULT_CA_FILE)")
	f.StringVar(&name, "profile", "default", "profile name")
	return cmd
}
