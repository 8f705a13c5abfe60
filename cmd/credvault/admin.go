package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/vault"
)

// adminService opens the store and the master key directly (admin commands
// must work before any API key exists) and returns a service whose changes
// are audited, in the change's own transaction, as the operator
// "operator:cli:<OS user>" (see operatorName), with the context to call it
// with.
func adminService(ctx context.Context, o *options) (*vault.Service, context.Context, func(), error) {
	a, err := app.OpenAdmin(ctx, o.appConfig(slog.New(slog.DiscardHandler)), operatorName())
	if err != nil {
		return nil, nil, nil, err
	}
	return a.Service, a.Context(ctx), func() { a.Close() }, nil
}

// withAdmin is a command's RunE that runs fn with the audited admin
// service (see adminService) and a context acting as the CLI operator.
func (o *options) withAdmin(fn func(ctx context.Context, svc *vault.Service, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		svc, ctx, done, err := adminService(cmd.Context(), o)
		if err != nil {
			return err
		}
		defer done()
		return fn(ctx, svc, args)
	}
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

func newAccountCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Manage accounts (tenants)"}
	var admin string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an account",
		Long: `Create an account. With --admin, that principal becomes the account's admin.
Prints the new account's id alone on stdout (ACCT=$(credvault account create
acme) captures it); the human-readable summary goes to stderr.`,
		Args: cobra.ExactArgs(1),
		RunE: o.withAdmin(func(ctx context.Context, svc *vault.Service, args []string) error {
			a, err := svc.CreateAccount(ctx, args[0], admin)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "account %s created (name %q)\n", a.ID, a.Name)
			_, err = fmt.Fprintln(stdout, a.ID)
			return err
		}),
	}
	create.Flags().StringVar(&admin, "admin", "", "principal id to make admin of the new account")
	list := &cobra.Command{
		Use:   "list",
		Short: "List accounts",
		Args:  cobra.NoArgs,
		RunE: o.withStore(func(cmd *cobra.Command, _ []string, db store.Engine) error {
			as, err := db.ListAccounts(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tCREATED")
			for _, a := range as {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", a.ID, a.Name, a.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		}),
	}
	cmd.AddCommand(create, list)
	return cmd
}

func newPrincipalCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "principal", Short: "Manage principals (users and service accounts)"}
	var account, role, kind string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a user or service account in an account",
		Long: `Create a principal with a role in an account (its default account).
Roles: admin (everything), writer (create/update/delete and read secrets),
secret_reader (read metadata and secrets), reader (metadata only).
Prints the new principal's id alone on stdout; the summary goes to stderr.`,
		Args: cobra.ExactArgs(1),
		RunE: o.withAdmin(func(ctx context.Context, svc *vault.Service, args []string) error {
			p, err := svc.CreatePrincipal(ctx, vault.PrincipalKind(kind), args[0], account, vault.Role(role))
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "principal %s created (%s %q, role %s in account %s)\n", p.ID, p.Kind, p.Name, role, account)
			_, err = fmt.Fprintln(stdout, p.ID)
			return err
		}),
	}
	create.Flags().StringVar(&account, "account", "", "account id (required)")
	create.Flags().StringVar(&role, "role", "writer", "role in the account: admin, writer, secret_reader, reader")
	create.Flags().StringVar(&kind, "kind", "user", "user or service_account")
	_ = create.MarkFlagRequired("account")

	var grantRole string
	grant := &cobra.Command{
		Use:   "grant PRINCIPAL_ID ACCOUNT_ID",
		Short: "Make a principal a member of another account (or change its role)",
		Args:  cobra.ExactArgs(2),
		RunE: o.withAdmin(func(ctx context.Context, svc *vault.Service, args []string) error {
			if err := svc.AddMembership(ctx, args[0], args[1], vault.Role(grantRole)); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "principal %s is now %s in account %s\n", args[0], grantRole, args[1])
			return nil
		}),
	}
	grant.Flags().StringVar(&grantRole, "role", "writer", "role in the account: admin, writer, secret_reader, reader")

	list := &cobra.Command{
		Use:   "list",
		Short: "List principals",
		Args:  cobra.NoArgs,
		RunE: o.withStore(func(cmd *cobra.Command, _ []string, db store.Engine) error {
			ps, err := db.ListPrincipals(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tNAME\tDEFAULT ACCOUNT")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ID, p.Kind, p.Name, p.DefaultAccountID)
			}
			return tw.Flush()
		}),
	}
	cmd.AddCommand(create, grant, list)
	return cmd
}

func newAPIKeyCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "Manage API keys"}
	var name string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create PRINCIPAL_ID",
		Short: "Create an API key for a principal and print it once",
		Long: `Create an API key for a principal. The key is printed once and stored only
as a hash. It works as the SGP x-api-key header and as a DSM API key
(Authorization: Basic <key>).
The key alone goes to stdout (KEY=$(credvault apikey create …) captures it);
its id and expiry go to stderr.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// A negative lifetime would otherwise mean "never expires", and
			// an explicit zero is almost certainly a mistake too.
			if cmd.Flags().Changed("ttl") && ttl <= 0 {
				return fmt.Errorf("--ttl must be positive (got %s); omit it for a key without expiry", ttl)
			}
			svc, ctx, done, err := adminService(cmd.Context(), o)
			if err != nil {
				return err
			}
			defer done()
			k, secret, err := svc.CreateAPIKey(ctx, args[0], name, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "key id:  %s\n", k.ID)
			if k.ExpiresAt != nil {
				fmt.Fprintf(stderr, "expires: %s\n", k.ExpiresAt.Format(time.RFC3339))
			} else {
				fmt.Fprintln(stderr, "expires: never")
			}
			fmt.Fprintln(stderr, "The key below is shown once and stored only as a hash.")
			_, err = fmt.Fprintln(stdout, secret)
			return err
		},
	}
	create.Flags().StringVar(&name, "name", "", "a label for the key")
	create.Flags().DurationVar(&ttl, "ttl", 0, "key lifetime, a positive duration such as 720h (default: no expiry)")

	revoke := &cobra.Command{
		Use:   "revoke KEY_ID",
		Short: "Revoke an API key; it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: o.withAdmin(func(ctx context.Context, svc *vault.Service, args []string) error {
			if err := svc.RevokeAPIKey(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "key %s revoked\n", args[0])
			return nil
		}),
	}
	list := &cobra.Command{
		Use:   "list PRINCIPAL_ID",
		Short: "List a principal's API keys (ids and dates, never the keys)",
		Args:  cobra.ExactArgs(1),
		RunE: o.withStore(func(cmd *cobra.Command, args []string, db store.Engine) error {
			ks, err := db.ListAPIKeys(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tCREATED\tEXPIRES\tREVOKED\tLAST USED")
			for _, k := range ks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.CreatedAt.Format(time.RFC3339), fmtTime(k.ExpiresAt), fmtTime(k.RevokedAt), fmtTime(k.LastUsedAt))
			}
			return tw.Flush()
		}),
	}
	cmd.AddCommand(create, revoke, list)
	return cmd
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}
