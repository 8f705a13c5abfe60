package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/client"
)

func newLoginCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	var url, account, caFile, name, tokenFile string
	cmd := &cobra.Command{
		Use:   "login [--url URL] [--account ID] [--ca-file F] [--profile NAME] [--oidc-token-file PATH]",
		Short: "Check an API key against a server and save it as a profile",
		Long: `Read an API key from a prompt (without echo) or from stdin, check it against
the server, and save URL, key, account and CA file as a profile (default
"default") in <user config dir>/credvault/profiles.json (mode 0600; the
directory: $CREDVAULT_CONFIG_DIR). The client commands use the profile for
whatever the flags and CREDVAULT_URL, CREDVAULT_API_KEY, CREDVAULT_ACCOUNT,
CREDVAULT_CA_FILE do not give; the saved key and account are used only with
the profile's own URL, never sent to another server. The URL defaults to CREDVAULT_URL, then to the
profile's.

With --oidc-token-file no key is read: the profile keeps the path of a
workload token (a Kubernetes projected service-account token, a CI job's
OIDC token written to a file), which every command exchanges at the
server's /oauth/token for a short-lived key (see "Workload identity" in
the README). The file is read again for every exchange, so a token the
platform rotates on disk is picked up.`,
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
			var rf remoteFlags
			if tokenFile != "" {
				if p.OIDCTokenFile, err = filepath.Abs(tokenFile); err != nil {
					return err
				}
				rf.oidcTokenFile = p.OIDCTokenFile
			} else {
				key, err := readSecret(cmd.InOrStdin(), stderr, "API key for "+p.URL+" (input hidden): ")
				if err != nil {
					return fmt.Errorf("read API key: %w", err)
				}
				p.APIKey = string(bytes.TrimSpace(key))
				if p.APIKey == "" {
					return usageError{errors.New("no API key given (type it at the prompt or pipe it on stdin)")}
				}
			}
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
	f.StringVar(&tokenFile, "oidc-token-file", "", "save a workload token file instead of an API key: commands exchange its token for short-lived keys")
	return cmd
}
