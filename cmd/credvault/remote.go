package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/credvault/credvault/client"
)

// The client commands (credential, run, export, import, login) act on a
// running vault through the Go SDK. They find it through flags, then
// CREDVAULT_* variables, then the profile saved by `credvault login`.

// addClientCommands registers the client commands and makes every flag
// error a usage error (exit status 2).
func addClientCommands(root *cobra.Command, o *options, stdout, stderr io.Writer) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newCredentialCmd(o, stdout, stderr))
	root.AddCommand(newRunCmd(o, stdout, stderr))
	root.AddCommand(newExportCmd(o, stdout, stderr))
	root.AddCommand(newImportCmd(o, stdout, stderr))
	root.AddCommand(newLoginCmd(o, stdout, stderr))
	root.AddCommand(newTrustCmd(o, stdout, stderr))
}

// Exit statuses: 0 success, 1 error, 2 usage error; `run` exits with its
// program's status.
const (
	exitError = 1
	exitUsage = 2
)

// usageError is a command line that cannot be run as given.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// usageArgs makes an argument-count error a usage error.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// exitStatusError ends the process with a given status; its message, if
// any, is printed first.
type exitStatusError struct {
	code int
	msg  string
}

func (e *exitStatusError) Error() string { return e.msg }

// exitCode is the process exit status for err.
func exitCode(err error) int {
	var es *exitStatusError
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &es):
		return es.code
	case errors.As(err, &ue):
		return exitUsage
	}
	// cobra's own untyped usage errors.
	msg := err.Error()
	for _, p := range []string{"unknown command ", "unknown flag", "unknown shorthand flag", "required flag", "invalid argument ", "flag needs an argument", "accepts ", "requires at least "} {
		if strings.HasPrefix(msg, p) {
			return exitUsage
		}
	}
	return exitError
}

// remoteFlags locate the vault and the key.
type remoteFlags struct {
	url, apiKey, account, caFile, profile string
	oidcTokenFile                         string
}

func addRemoteFlags(f interface {
	StringVar(p *string, name, value, usage string)
}, rf *remoteFlags) {
	f.StringVar(&rf.url, "url", "", "server URL, e.g. https://vault.example:8080 ($CREDVAULT_URL; else the saved profile)")
	f.StringVar(&rf.apiKey, "api-key", "", "API key ($CREDVAULT_API_KEY; else the saved profile); prefer the variable or \"credvault login\": a flag is visible in the process list")
	f.StringVar(&rf.account, "account", "", "account id to act in; default: the key's own account ($CREDVAULT_ACCOUNT; else the saved profile)")
	f.StringVar(&rf.caFile, "ca-file", "", "PEM certificate(s) of the CA to trust for an https server ($CREDVAULT_CA_FILE; else the saved profile)")
	f.StringVar(&rf.profile, "profile", "", "profile saved by \"credvault login\" to use ($CREDVAULT_PROFILE; default \"default\")")
	f.StringVar(&rf.oidcTokenFile, "oidc-token-file", "", "authenticate with no stored key: exchange the workload token in this file (e.g. a Kubernetes projected service-account token) for a short-lived key, again before it expires ($CREDVAULT_OIDC_TOKEN_FILE; else the saved profile)")
}

// remoteGroup makes cmd the group of subs, client commands that share its
// remote flags rf; run alone, it prints its help.
func remoteGroup(cmd *cobra.Command, rf *remoteFlags, subs ...*cobra.Command) *cobra.Command {
	cmd.Args = usageArgs(cobra.NoArgs)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	addRemoteFlags(cmd.PersistentFlags(), rf)
	cmd.AddCommand(subs...)
	return cmd
}

// profile is one saved login.
type profile struct {
	URL     string `json:"url"`
	APIKey  string `json:"api_key"`
	Account string `json:"account,omitempty"`
	CAFile  string `json:"ca_file,omitempty"`
	// OIDCTokenFile, instead of APIKey: a workload token to exchange.
	OIDCTokenFile string `json:"oidc_token_file,omitempty"`
}

type profilesFile struct {
	Profiles map[string]profile `json:"profiles"`
}

// profilesPath is where `credvault login` saves profiles:
// $CREDVAULT_CONFIG_DIR/profiles.json, default <user config dir>/credvault.
func (o *options) profilesPath() (string, error) {
	dir := o.getenv("CREDVAULT_CONFIG_DIR")
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("no configuration directory (set CREDVAULT_CONFIG_DIR): %w", err)
		}
		dir = filepath.Join(base, "credvault")
	}
	return filepath.Join(dir, "profiles.json"), nil
}

func (o *options) loadProfiles() (profilesFile, string, error) {
	var pf profilesFile
	path, err := o.profilesPath()
	if err != nil {
		return pf, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return pf, path, nil
	}
	if err != nil {
		return pf, path, fmt.Errorf("read profiles: %w", err)
	}
	if err := json.Unmarshal(b, &pf); err != nil {
		return pf, path, fmt.Errorf("profiles file %s is not valid JSON: %w", path, err)
	}
	return pf, path, nil
}

// saveProfiles writes the profiles file with mode 0600 (directory 0700),
// atomically.
func saveProfiles(path string, pf profilesFile) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save profile: %w", err)
	}
	b, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".profiles-*.json") // mode 0600
	if err != nil {
		return fmt.Errorf("save profile: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("save profile: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save profile: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("save profile: %w", err)
	}
	return nil
}

// remote is a resolved connection: where, and the SDK client.
type remote struct {
	url string
	c   *client.Client
}

// connect resolves the settings (flag, then environment, then profile)
// and returns a client.
func (o *options) connect(rf *remoteFlags) (*remote, error) {
	name := first(rf.profile, o.getenv("CREDVAULT_PROFILE"), "default")
	pf, path, err := o.loadProfiles()
	if err != nil {
		return nil, err
	}
	p, saved := pf.Profiles[name]
	if !saved && (rf.profile != "" || o.getenv("CREDVAULT_PROFILE") != "") {
		return nil, usageError{fmt.Errorf("no profile %q in %s: create it with `credvault login --profile %s`", name, path, name)}
	}
	url := first(rf.url, o.getenv("CREDVAULT_URL"), p.URL)
	if url == "" {
		return nil, usageError{errors.New("no server URL: set CREDVAULT_URL, pass --url, or run `credvault login --url URL`")}
	}
	// The profile's key (and account) are sent only to the profile's
	// server, never to another URL given by a flag or the environment.
	if saved && strings.TrimRight(url, "/") != strings.TrimRight(p.URL, "/") {
		p = profile{CAFile: p.CAFile}
	}
	key := first(rf.apiKey, o.getenv("CREDVAULT_API_KEY"), p.APIKey)
	account := first(rf.account, o.getenv("CREDVAULT_ACCOUNT"), p.Account)
	caFile := first(rf.caFile, o.getenv("CREDVAULT_CA_FILE"), p.CAFile)
	tokenFile := workloadTokenFile(rf, o.getenv, p)
	if tokenFile != "" {
		key = ""
	}
	if key == "" && tokenFile == "" {
		return nil, usageError{fmt.Errorf("no API key for %s: set CREDVAULT_API_KEY, or run `credvault login --url %s`", url, url)}
	}
	opts := []client.Option{client.WithUserAgent("credvault-cli/" + client.Version())}
	if tokenFile != "" {
		opts = append(opts, client.WithWorkloadIdentity(client.WorkloadIdentity{Token: client.TokenFile(tokenFile)}))
	}
	if account != "" {
		opts = append(opts, client.WithAccount(account))
	}
	if caFile != "" {
		opts = append(opts, client.WithCAFile(caFile))
	}
	c, err := client.New(url, key, opts...)
	if err != nil {
		return nil, usageError{err}
	}
	return &remote{url: url, c: c}, nil
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// explain turns an SDK error into one line saying what to do.
func (r *remote) explain(err error) error {
	var ce *client.ConnectionError
	var ae *client.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		cause := ce.Err
		var ue *neturl.Error
		if errors.As(cause, &ue) {
			cause = ue.Err
		}
		return fmt.Errorf("cannot reach the credvault server at %s (%v): is it running, and are --url / CREDVAULT_URL right?", r.url, cause)
	case errors.As(err, &ae) && ae.StatusCode == 401:
		return fmt.Errorf("the server refused the API key (401, request id %s): check --api-key / CREDVAULT_API_KEY, or run `credvault login` again", ae.RequestID)
	case errors.As(err, &ae) && ae.StatusCode == 403:
		return fmt.Errorf("permission denied (403: %s; request id %s): ask an admin for a role that allows this, or choose another account with --account", ae.Detail, ae.RequestID)
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case errors.As(err, &ae):
		return errors.New(strings.TrimPrefix(ae.Error(), "credvault: ")) // main adds the prefix
	}
	return err
}

// notFound is the error for a credential name or id that does not exist.
func notFound(ref string) error {
	return fmt.Errorf("credential %q not found in this account: see `credvault credential list` (or choose the account with --account)", ref)
}

// resolve finds a credential by id (when ref is a UUID) or by name.
func (r *remote) resolve(ctx context.Context, ref string) (*client.Credential, error) {
	return byRef(ctx, r, ref, r.c.Credentials.Get, r.c.Credentials.GetByName)
}

// reveal returns the payload of a credential named by id or name.
func (r *remote) reveal(ctx context.Context, ref string) (client.Secret, error) {
	return byRef(ctx, r, ref, r.c.Credentials.Decrypt, r.c.Credentials.DecryptByName)
}

// byRef calls byID when ref is a UUID that names a credential, byName
// otherwise; a credential that exists under neither is notFound(ref).
func byRef[T any](ctx context.Context, r *remote, ref string, byID, byName func(context.Context, string) (T, error)) (T, error) {
	if _, err := uuid.Parse(ref); err == nil {
		v, err := byID(ctx, ref)
		if !errors.Is(err, client.ErrNotFound) {
			return v, r.explain(err)
		}
	}
	v, err := byName(ctx, ref)
	return v, r.explainMissing(err, notFound(ref))
}

// explainMissing is explain, except that a not-found answer is missing
// (the error saying how to find what the command names).
func (r *remote) explainMissing(err, missing error) error {
	if errors.Is(err, client.ErrNotFound) {
		return missing
	}
	return r.explain(err)
}

// credential connects and resolves the credential ref names.
func (o *options) credential(ctx context.Context, rf *remoteFlags, ref string) (*remote, *client.Credential, error) {
	r, err := o.connect(rf)
	if err != nil {
		return nil, nil, err
	}
	c, err := r.resolve(ctx, ref)
	return r, c, err
}

// onTerminal reports whether v is an *os.File on a terminal.
func onTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// readSecret reads a secret: from a terminal without echo after a prompt
// on stderr, otherwise every byte of in.
func readSecret(in io.Reader, stderr io.Writer, prompt string) ([]byte, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		return b, err
	}
	return io.ReadAll(in)
}
