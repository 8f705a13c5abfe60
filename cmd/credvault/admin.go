package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/internal/api/admin"
	"github.com/credvault/credvault/internal/app"
)

// The account, principal and apikey commands are clients of the admin API
// (/admin/v1, api/admin-v1.openapi.yaml). With --url and --api-key they
// talk to a server; without --url they act on the database named by
// --data-dir/--database-url directly (operator break-glass, e.g. before
// the first admin exists), through the same API served in-process as the
// operator "operator:cli:<OS user>", which the audit trail records.

// stdin is where --password-stdin reads (a variable so tests can set it).
var stdin io.Reader = os.Stdin

// adminFlags are the flags every admin command has.
type adminFlags struct {
	url    string
	apiKey string
	output string
}

func addAdminFlags(cmd *cobra.Command, o *options, af *adminFlags) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&af.url, "url", o.env("CREDVAULT_URL", ""), "server to manage through its admin API, e.g. https://vault.example.com ($CREDVAULT_URL); without it the command acts on the database directly")
	pf.StringVar(&af.apiKey, "api-key", o.env("CREDVAULT_API_KEY", ""), "API key to authenticate to --url with ($CREDVAULT_API_KEY)")
	pf.StringVarP(&af.output, "output", "o", "text", "output format: text or json")
}

// adminClient calls the admin API, remotely or in-process.
type adminClient struct {
	http  *http.Client
	base  string
	key   string
	close func()
}

func (af *adminFlags) client(ctx context.Context, o *options) (*adminClient, error) {
	if af.output != "text" && af.output != "json" {
		return nil, fmt.Errorf("-o must be text or json (got %q)", af.output)
	}
	if af.url != "" {
		u, err := url.Parse(af.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--url must be an http(s) URL such as https://vault.example.com")
		}
		if af.apiKey == "" {
			return nil, fmt.Errorf("--url needs --api-key (or $CREDVAULT_API_KEY)")
		}
		return &adminClient{http: &http.Client{Timeout: time.Minute}, base: strings.TrimRight(af.url, "/"), key: af.apiKey, close: func() {}}, nil
	}
	a, err := app.OpenAdmin(ctx, o.appConfig(slog.New(slog.DiscardHandler)), operatorName())
	if err != nil {
		return nil, err
	}
	h := admin.NewLocalHandler(admin.Deps{Service: a.Service}, a.Actor)
	return &adminClient{http: &http.Client{Transport: localTransport{h}}, base: "http://local", close: func() { a.Close() }}, nil
}

// localTransport serves requests with an in-process handler.
type localTransport struct{ h http.Handler }

func (t localTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// call sends a request and decodes a successful JSON answer into out (if
// not nil). An error answer becomes an error with the server's detail.
func (c *adminClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		req.Header.Set("x-api-key", c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Detail string `json:"detail"`
		}
		if json.Unmarshal(b, &e) != nil || e.Detail == "" {
			e.Detail = strings.TrimSpace(string(b))
		}
		return fmt.Errorf("%s (HTTP %d)", e.Detail, resp.StatusCode)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
		}
	}
	return nil
}

// operatorName names the CLI's operator in the audit trail: "cli:" and the
// OS user running the command.
func operatorName() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	} else if v := os.Getenv("USER"); v != "" {
		name = v
	}
	return "cli:" + name
}

// callAdmin opens a client, makes one call with it (see adminClient.call)
// and closes it.
func callAdmin(cmd *cobra.Command, o *options, af *adminFlags, method, path string, body, out any) error {
	return runAdmin(cmd, o, af, func(ctx context.Context, c *adminClient) error {
		return c.call(ctx, method, path, body, out)
	})
}

// runAdmin opens a client, runs fn with it and closes it.
func runAdmin(cmd *cobra.Command, o *options, af *adminFlags, fn func(ctx context.Context, c *adminClient) error) error {
	c, err := af.client(cmd.Context(), o)
	if err != nil {
		return err
	}
	defer c.close()
	return fn(cmd.Context(), c)
}

type accountJSON struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at,omitempty"`
}

type membershipJSON struct {
	AccountID string `json:"account_id"`
	Role      string `json:"role"`
}

type principalJSON struct {
	ID          string           `json:"id"`
	Kind        string           `json:"kind,omitempty"`
	Name        string           `json:"name,omitempty"`
	AccountID   string           `json:"account_id,omitempty"`
	Email       *string          `json:"email,omitempty"`
	HasPassword bool             `json:"has_password"`
	Disabled    bool             `json:"disabled"`
	CreatedAt   string           `json:"created_at,omitempty"`
	Memberships []membershipJSON `json:"memberships,omitempty"`
}

func dash(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

// readPassword reads one line from stdin (never from argv, which other
// users of the machine can see).
func readPassword() (string, error) {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fmt.Errorf("--password-stdin: no password on stdin")
	}
	return pw, nil
}

func newAccountCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	af := &adminFlags{}
	cmd := &cobra.Command{Use: "account", Short: "Manage accounts (tenants)"}
	addAdminFlags(cmd, o, af)
	var adminID string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an account",
		Long: `Create an account (operators only). With --admin, that principal becomes the
account's admin. Prints the new account's id alone on stdout
(ACCT=$(credvault account create acme) captures it); the human-readable
summary goes to stderr. -o json prints {"id": …, "name": …}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAdmin(cmd, o, af, func(ctx context.Context, c *adminClient) error {
				var a accountJSON
				if err := c.call(ctx, "POST", "/admin/v1/accounts", map[string]string{"name": args[0]}, &a); err != nil {
					return err
				}
				if adminID != "" {
					if err := c.call(ctx, "PUT", "/admin/v1/principals/"+url.PathEscape(adminID)+"/memberships/"+a.ID, map[string]string{"role": "admin"}, nil); err != nil {
						return fmt.Errorf("account %s created, but making %s its admin failed: %w", a.ID, adminID, err)
					}
				}
				return report(af, stdout, stderr, accountJSON{ID: a.ID, Name: a.Name}, a.ID, "account %s created (name %q)\n", a.ID, a.Name)
			})
		},
	}
	create.Flags().StringVar(&adminID, "admin", "", "principal id to make admin of the new account")
	list := &cobra.Command{
		Use:   "list",
		Short: "List accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct {
				Items []accountJSON `json:"items"`
			}
			if err := callAdmin(cmd, o, af, "GET", "/admin/v1/accounts", nil, &res); err != nil {
				return err
			}
			return printOutput(stdout, af.output == "json", res, "ID\tNAME\tCREATED", func(tw io.Writer) {
				for _, a := range res.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", a.ID, a.Name, a.CreatedAt)
				}
			})
		},
	}
	show := func(use, short, method string, body func(args []string) any, path func(args []string) string) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.ExactArgs(strings.Count(use, " ")),
			RunE: func(cmd *cobra.Command, args []string) error {
				var a accountJSON
				if err := callAdmin(cmd, o, af, method, path(args), body(args), &a); err != nil {
					return err
				}
				return report(af, stdout, stderr, a, a.ID, "account %s: name %q, created %s\n", a.ID, a.Name, a.CreatedAt)
			},
		}
	}
	get := show("get ACCOUNT_ID", "Show an account", "GET", func([]string) any { return nil },
		func(a []string) string { return "/admin/v1/accounts/" + url.PathEscape(a[0]) })
	rename := show("rename ACCOUNT_ID NAME", "Rename an account", "PATCH", func(a []string) any { return map[string]string{"name": a[1]} },
		func(a []string) string { return "/admin/v1/accounts/" + url.PathEscape(a[0]) })
	var force bool
	del := &cobra.Command{
		Use:   "delete ACCOUNT_ID",
		Short: "Delete an account (refused while it holds anything, unless --force)",
		Long: `Delete an account (operators only; never the system account). It is refused
while the account holds credentials, security objects or principals; with
--force they are deleted with it, and the audit trail records a forced delete.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := callAdmin(cmd, o, af, "DELETE", "/admin/v1/accounts/"+url.PathEscape(args[0])+fmt.Sprintf("?force=%t", force), nil, nil); err != nil {
				return err
			}
			return done(af, stdout, stderr, map[string]any{"id": args[0], "deleted": true}, "account %s deleted\n", args[0])
		},
	}
	del.Flags().BoolVar(&force, "force", false, "also delete everything the account holds")
	cmd.AddCommand(create, list, get, rename, del)
	return cmd
}

// report reports a command's result: v as JSON for -o json; otherwise a
// sentence on stderr and id alone on stdout (X=$(credvault …) captures it).
func report(af *adminFlags, stdout, stderr io.Writer, v any, id, format string, args ...any) error {
	if af.output == "json" {
		return writeJSON(stdout, v)
	}
	fmt.Fprintf(stderr, format, args...)
	_, err := fmt.Fprintln(stdout, id)
	return err
}

// done reports a change without a result object: JSON, or a sentence on stderr.
func done(af *adminFlags, stdout, stderr io.Writer, v any, format string, args ...any) error {
	if af.output == "json" {
		return writeJSON(stdout, v)
	}
	_, err := fmt.Fprintf(stderr, format, args...)
	return err
}

func printPrincipal(af *adminFlags, stdout, stderr io.Writer, p principalJSON) error {
	var members strings.Builder
	for _, m := range p.Memberships {
		fmt.Fprintf(&members, "  %s in %s\n", m.Role, m.AccountID)
	}
	return report(af, stdout, stderr, p, p.ID, "principal %s: %s %q in account %s, email %s, disabled %t\n%s",
		p.ID, p.Kind, p.Name, p.AccountID, dash(p.Email), p.Disabled, members.String())
}

func newPrincipalCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	af := &adminFlags{}
	cmd := &cobra.Command{Use: "principal", Short: "Manage principals (users and service accounts)"}
	addAdminFlags(cmd, o, af)
	pPath := func(id string) string { return "/admin/v1/principals/" + url.PathEscape(id) }

	var account, role, kind, email string
	var pwStdin bool
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a user or service account in an account",
		Long: `Create a principal with a role in an account (its home account).
Roles: admin (everything), writer (create/update/delete and read secrets),
secret_reader (read metadata and secrets), reader (metadata only).
A user may have an --email and a password (--password-stdin reads it from
stdin, never from the command line) to log in with.
Prints the new principal's id alone on stdout; the summary goes to stderr.
-o json prints {"id": …}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]string{"name": args[0], "account_id": account, "role": role, "kind": kind}
			if email != "" {
				body["email"] = email
			}
			if pwStdin {
				pw, err := readPassword()
				if err != nil {
					return err
				}
				body["password"] = pw
			}
			var p principalJSON
			if err := callAdmin(cmd, o, af, "POST", "/admin/v1/principals", body, &p); err != nil {
				return err
			}
			return report(af, stdout, stderr, map[string]string{"id": p.ID}, p.ID, "principal %s created (%s %q, role %s in account %s)\n", p.ID, p.Kind, p.Name, role, account)
		},
	}
	create.Flags().StringVar(&account, "account", "", "account id (required)")
	create.Flags().StringVar(&role, "role", "writer", "role in the account: admin, writer, secret_reader, reader")
	create.Flags().StringVar(&kind, "kind", "user", "user or service_account")
	create.Flags().StringVar(&email, "email", "", "the user's email, to log in with")
	create.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the user's password from stdin (one line)")
	_ = create.MarkFlagRequired("account")

	var grantRole string
	grant := &cobra.Command{
		Use:   "grant PRINCIPAL_ID ACCOUNT_ID",
		Short: "Make a principal a member of another account (or change its role)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := callAdmin(cmd, o, af, "PUT", pPath(args[0])+"/memberships/"+url.PathEscape(args[1]), map[string]string{"role": grantRole}, nil); err != nil {
				return err
			}
			if af.output == "json" {
				return writeJSON(stdout, map[string]string{"id": args[0], "account_id": args[1], "role": grantRole})
			}
			_, err := fmt.Fprintf(stdout, "principal %s is now %s in account %s\n", args[0], grantRole, args[1])
			return err
		},
	}
	grant.Flags().StringVar(&grantRole, "role", "writer", "role in the account: admin, writer, secret_reader, reader")

	var revokeAccount string
	revoke := &cobra.Command{
		Use:   "revoke-membership PRINCIPAL_ID --account ACCOUNT_ID",
		Short: "Remove a principal from an account (not its home account)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := callAdmin(cmd, o, af, "DELETE", pPath(args[0])+"/memberships/"+url.PathEscape(revokeAccount), nil, nil); err != nil {
				return err
			}
			return done(af, stdout, stderr, map[string]any{"id": args[0], "account_id": revokeAccount, "revoked": true},
				"principal %s is no longer a member of account %s\n", args[0], revokeAccount)
		},
	}
	revoke.Flags().StringVar(&revokeAccount, "account", "", "account id (required)")
	_ = revoke.MarkFlagRequired("account")

	var fAccount, fKind, fName, after string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List users and service accounts (paged; filter by account, kind, name)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"account_id": fAccount, "kind": fKind, "name": fName, "after": after} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			var res struct {
				Items      []principalJSON `json:"items"`
				NextCursor *string         `json:"next_cursor"`
			}
			if err := callAdmin(cmd, o, af, "GET", "/admin/v1/principals?"+q.Encode(), nil, &res); err != nil {
				return err
			}
			return printOutput(stdout, af.output == "json", res, "ID\tKIND\tNAME\tACCOUNT\tEMAIL\tDISABLED", func(tw io.Writer) {
				for _, p := range res.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\n", p.ID, p.Kind, p.Name, p.AccountID, dash(p.Email), p.Disabled)
				}
				if res.NextCursor != nil {
					fmt.Fprintf(stderr, "more: --after %s\n", *res.NextCursor)
				}
			})
		},
	}
	list.Flags().StringVar(&fAccount, "account", "", "only members of this account")
	list.Flags().StringVar(&fKind, "kind", "", "user or service_account")
	list.Flags().StringVar(&fName, "name", "", "exact name")
	list.Flags().StringVar(&after, "after", "", "cursor printed by the previous page")
	list.Flags().IntVar(&limit, "limit", 0, "page size (default 100)")

	one := func(use, short, method string, body func(cmd *cobra.Command) (any, error)) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				b, err := body(cmd)
				if err != nil {
					return err
				}
				var p principalJSON
				if err := callAdmin(cmd, o, af, method, pPath(args[0]), b, &p); err != nil {
					return err
				}
				return printPrincipal(af, stdout, stderr, p)
			},
		}
	}
	get := one("get PRINCIPAL_ID", "Show a principal and its memberships", "GET", func(*cobra.Command) (any, error) { return nil, nil })
	var newName, newEmail string
	update := one("update PRINCIPAL_ID", "Rename a principal or set its email", "PATCH", func(cmd *cobra.Command) (any, error) {
		b := map[string]string{}
		if cmd.Flags().Changed("name") {
			b["name"] = newName
		}
		if cmd.Flags().Changed("email") {
			b["email"] = newEmail
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("give --name or --email")
		}
		return b, nil
	})
	update.Flags().StringVar(&newName, "name", "", "new name")
	update.Flags().StringVar(&newEmail, "email", "", `new email ("" removes it)`)
	disable := one("disable PRINCIPAL_ID", "Disable a principal: its keys and sessions stop working at once", "PATCH",
		func(*cobra.Command) (any, error) { return map[string]bool{"disabled": true}, nil })
	enable := one("enable PRINCIPAL_ID", "Enable a disabled principal", "PATCH",
		func(*cobra.Command) (any, error) { return map[string]bool{"disabled": false}, nil })

	del := &cobra.Command{
		Use:   "delete PRINCIPAL_ID",
		Short: "Delete a principal with its keys, memberships and sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := callAdmin(cmd, o, af, "DELETE", pPath(args[0]), nil, nil); err != nil {
				return err
			}
			return done(af, stdout, stderr, map[string]any{"id": args[0], "deleted": true}, "principal %s deleted\n", args[0])
		},
	}
	setPW := &cobra.Command{
		Use:   "set-password PRINCIPAL_ID --password-stdin",
		Short: "Set a user's password (read from stdin); ends every session of the user",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword()
			if err != nil {
				return err
			}
			if err := callAdmin(cmd, o, af, "PUT", pPath(args[0])+"/password", map[string]string{"password": pw}, nil); err != nil {
				return err
			}
			return done(af, stdout, stderr, map[string]any{"id": args[0], "password_set": true}, "password of %s set\n", args[0])
		},
	}
	setPW.Flags().Bool("password-stdin", true, "read the password from stdin (always)")
	cmd.AddCommand(create, grant, revoke, list, get, update, disable, enable, del, setPW)
	return cmd
}

func newAPIKeyCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	af := &adminFlags{}
	cmd := &cobra.Command{Use: "apikey", Short: "Manage API keys"}
	addAdminFlags(cmd, o, af)
	var name string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create PRINCIPAL_ID",
		Short: "Create an API key for a principal and print it once",
		Long: `Create an API key for a principal. The key is printed once and stored only
as a hash. It works as the SGP x-api-key header, as a DSM API key
(Authorization: Basic <key>) and for the admin API (--api-key).
The key alone goes to stdout (KEY=$(credvault apikey create …) captures it);
its id and expiry go to stderr. -o json prints {"key_id": …, "api_key": …}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// A negative lifetime would otherwise mean "never expires", and
			// an explicit zero is almost certainly a mistake too.
			if cmd.Flags().Changed("ttl") && ttl <= 0 {
				return fmt.Errorf("--ttl must be positive (got %s); omit it for a key without expiry", ttl)
			}
			if ttl > 0 && ttl < time.Second {
				return fmt.Errorf("--ttl must be at least 1s (got %s)", ttl)
			}
			var k admin.APIKey
			body := map[string]any{"name": name, "ttl_seconds": int64(ttl / time.Second)}
			if err := callAdmin(cmd, o, af, "POST", "/admin/v1/principals/"+url.PathEscape(args[0])+"/api-keys", body, &k); err != nil {
				return err
			}
			if af.output == "json" {
				return writeJSON(stdout, map[string]string{"key_id": k.KeyID, "api_key": k.APIKey})
			}
			fmt.Fprintf(stderr, "key id:  %s\n", k.KeyID)
			if k.ExpiresAt != nil {
				fmt.Fprintf(stderr, "expires: %s\n", *k.ExpiresAt)
			} else {
				fmt.Fprintln(stderr, "expires: never")
			}
			fmt.Fprintln(stderr, "The key below is shown once and stored only as a hash.")
			_, err := fmt.Fprintln(stdout, k.APIKey)
			return err
		},
	}
	create.Flags().StringVar(&name, "name", "", "a label for the key")
	create.Flags().DurationVar(&ttl, "ttl", 0, "key lifetime, a positive duration such as 720h (default: no expiry)")

	revoke := &cobra.Command{
		Use:   "revoke KEY_ID",
		Short: "Revoke an API key; it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := callAdmin(cmd, o, af, "DELETE", "/admin/v1/api-keys/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			if af.output == "json" {
				return writeJSON(stdout, map[string]any{"key_id": args[0], "revoked": true})
			}
			_, err := fmt.Fprintf(stdout, "key %s revoked\n", args[0])
			return err
		},
	}
	list := &cobra.Command{
		Use:   "list PRINCIPAL_ID",
		Short: "List a principal's API keys (ids and dates, never the keys)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res struct {
				Items []admin.APIKey `json:"items"`
			}
			if err := callAdmin(cmd, o, af, "GET", "/admin/v1/principals/"+url.PathEscape(args[0])+"/api-keys", nil, &res); err != nil {
				return err
			}
			return printOutput(stdout, af.output == "json", res, "ID\tNAME\tCREATED\tEXPIRES\tREVOKED\tLAST USED", func(tw io.Writer) {
				for _, k := range res.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.KeyID, k.Name, k.CreatedAt, dash(k.ExpiresAt), dash(k.RevokedAt), dash(k.LastUsedAt))
				}
			})
		},
	}
	cmd.AddCommand(create, revoke, list)
	return cmd
}
