package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/client"
)

func newTrustCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	rf := &remoteFlags{}
	return remoteGroup(&cobra.Command{
		Use:   "trust",
		Short: "Manage trust policies: which workload tokens may be exchanged for keys",
		Long: `Manage trust policies on a running vault, through its admin API
(/admin/v1/trust-policies). A trust policy lets workloads that hold a token
from one issuer — a Kubernetes service-account token, a GitHub Actions OIDC
token — exchange it at POST /oauth/token for a short-lived API key with the
policy's role in its account, so that no long-lived key is deployed (see
"Workload identity" in the README).

The server and key come from --url/--api-key, else CREDVAULT_URL and
CREDVAULT_API_KEY, else the profile saved by ` + "`credvault login`" + `; the key must
belong to an admin of the policy's account, or of the system account.
Exit status: 0 success, 1 error, 2 usage error.`,
	}, rf,
		newTrustCreateCmd(o, rf, stdout, stderr),
		newTrustListCmd(o, rf, stdout),
		newTrustGetCmd(o, rf, stdout),
		newTrustDeleteCmd(o, rf, stderr),
	)
}

func newTrustCreateCmd(o *options, rf *remoteFlags, stdout, stderr io.Writer) *cobra.Command {
	var issuer, jwksURL, jwksFile, role, output string
	var discovery bool
	var audiences, claims []string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "create NAME --account ACCOUNT_ID --issuer ISS (--jwks-url URL | --jwks-file F | --discovery) --audience AUD --claim sub=PATTERN [--claim k=v]… --role ROLE [--ttl 15m] [-o json]",
		Short: "Create a trust policy",
		Long: `Create a trust policy: tokens whose iss is ISS, signed by one of the
issuer's keys, with one of the audiences, and whose claims match every
--claim rule, are exchanged for keys of ROLE in the account, valid for
--ttl (default 15m, at most 12h).

The issuer's keys come from its OIDC discovery document (--discovery),
from a JWKS URL (--jwks-url), or from a JWKS document stored in the policy
(--jwks-file) for an issuer the server cannot reach, such as a private
cluster's (kubectl get --raw /openid/v1/jwks).

A --claim rule is claim=pattern: an exact value, or a glob when the
pattern has *, ? or [ ('*' matches any run of characters, '/' and ':'
included). A rule on sub is required, e.g.
  --claim sub='system:serviceaccount:payments:*'
  --claim sub='repo:acme/api:ref:refs/heads/main' --claim repository=acme/api
Prints the new policy's id alone on stdout (-o json: the policy, with "id").`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkIDOutput(output); err != nil {
				return err
			}
			p := client.TrustPolicyParams{Name: args[0], AccountID: rf.account, Issuer: issuer, Audiences: audiences, Role: role,
				TTLSeconds: int64(ttl / time.Second)}
			if p.AccountID == "" {
				return usageError{errors.New("--account is required: the account the policy grants a role in")}
			}
			n := 0
			for _, set := range []bool{discovery, jwksURL != "", jwksFile != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				return usageError{errors.New("give exactly one of --discovery, --jwks-url URL and --jwks-file F")}
			}
			switch {
			case discovery:
				p.KeySource = client.KeySourceDiscovery
			case jwksURL != "":
				p.KeySource, p.JWKSURL = client.KeySourceJWKSURL, jwksURL
			default:
				b, err := os.ReadFile(jwksFile)
				if err != nil {
					return fmt.Errorf("--jwks-file: %w", err)
				}
				if !json.Valid(b) {
					return usageError{fmt.Errorf("--jwks-file %s is not JSON", jwksFile)}
				}
				p.KeySource, p.JWKS = client.KeySourceJWKS, b
			}
			if ttl%time.Second != 0 || ttl < 0 {
				return usageError{fmt.Errorf("--ttl %s: want a whole number of seconds", ttl)}
			}
			for _, kv := range claims {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" || v == "" {
					return usageError{fmt.Errorf("--claim %q: want claim=pattern", kv)}
				}
				p.Claims = append(p.Claims, client.ClaimRule{Claim: k, Pattern: v})
			}
			r, err := o.connect(trustFlags(rf))
			if err != nil {
				return err
			}
			tp, err := r.c.Trust.Create(cmd.Context(), p)
			if err != nil {
				return r.explain(err)
			}
			return printCreated(stdout, stderr, output, tp, tp.ID, "created trust policy %s: tokens of %s get role %s in account %s for %s\n",
				tp.Name, tp.Issuer, tp.Role, tp.AccountID, time.Duration(tp.TTLSeconds)*time.Second)
		},
	}
	f := cmd.Flags()
	f.StringVar(&issuer, "issuer", "", "issuer URL (https); a token's iss must equal it")
	f.BoolVar(&discovery, "discovery", false, "fetch the issuer's keys through its OIDC discovery document")
	f.StringVar(&jwksURL, "jwks-url", "", "fetch the issuer's keys from this JWKS URL (https)")
	f.StringVar(&jwksFile, "jwks-file", "", "store this JWKS document (public keys) in the policy")
	f.StringArrayVar(&audiences, "audience", nil, "accepted audience (repeatable; at least one)")
	f.StringArrayVar(&claims, "claim", nil, "claim rule claim=pattern (repeatable; one on sub is required)")
	f.StringVar(&role, "role", "", "role granted: reader, secret_reader, writer or admin")
	f.DurationVar(&ttl, "ttl", 15*time.Minute, "lifetime of the issued keys (at most 12h)")
	idOutputFlag(cmd, &output)
	return cmd
}

func newTrustListCmd(o *options, rf *remoteFlags, stdout io.Writer) *cobra.Command {
	return withOutput(&cobra.Command{
		Use:   "list [--account ID] [-o table|json]",
		Short: "List the trust policies of an account (default: the key's)",
		Args:  usageArgs(cobra.NoArgs),
	}, func(cmd *cobra.Command, _ []string, asJSON bool) error {
		r, err := o.connect(trustFlags(rf))
		if err != nil {
			return err
		}
		ps, err := r.c.Trust.List(cmd.Context(), rf.account)
		if err != nil {
			return r.explain(err)
		}
		if ps == nil {
			ps = []client.TrustPolicy{}
		}
		return printOutput(stdout, asJSON, ps, "NAME\tID\tISSUER\tROLE\tTTL\tCLAIMS", func(tw io.Writer) {
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.ID, p.Issuer, p.Role, time.Duration(p.TTLSeconds)*time.Second, claimList(p.Claims))
			}
		})
	})
}

// trustFlags are rf without --account: for trust commands it names the
// policy's account (sent in the body or query), not the account the key
// acts in, so that an operator can manage accounts it is no member of.
func trustFlags(rf *remoteFlags) *remoteFlags {
	cp := *rf
	cp.account = ""
	return &cp
}

// trustNotFound is the error for a trust policy id that does not exist.
func trustNotFound(id string) error {
	return fmt.Errorf("trust policy %q not found: see `credvault trust list`", id)
}

func claimList(rules []client.ClaimRule) string {
	parts := make([]string, len(rules))
	for i, r := range rules {
		parts[i] = r.Claim + "=" + r.Pattern
	}
	return strings.Join(parts, " ")
}

func newTrustGetCmd(o *options, rf *remoteFlags, stdout io.Writer) *cobra.Command {
	return withOutput(&cobra.Command{
		Use:   "get ID [-o table|json]",
		Short: "Show a trust policy",
		Args:  usageArgs(cobra.ExactArgs(1)),
	}, func(cmd *cobra.Command, args []string, asJSON bool) error {
		r, err := o.connect(rf)
		if err != nil {
			return err
		}
		p, err := r.c.Trust.Get(cmd.Context(), args[0])
		if err != nil {
			return r.explainMissing(err, trustNotFound(args[0]))
		}
		return printOutput(stdout, asJSON, p, "", func(tw io.Writer) {
			src := p.KeySource
			if p.JWKSURL != "" {
				src += " " + p.JWKSURL
			}
			for _, row := range [][2]string{
				{"id", p.ID}, {"name", p.Name}, {"account", p.AccountID}, {"issuer", p.Issuer}, {"keys", src},
				{"audiences", strings.Join(p.Audiences, " ")}, {"claims", claimList(p.Claims)}, {"role", p.Role},
				{"ttl", (time.Duration(p.TTLSeconds) * time.Second).String()}, {"created", p.CreatedAt.UTC().Format(time.RFC3339)},
			} {
				fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
			}
		})
	})
}

func newTrustDeleteCmd(o *options, rf *remoteFlags, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a trust policy; keys issued through it stop working at once",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := o.connect(rf)
			if err != nil {
				return err
			}
			err = r.c.Trust.Delete(cmd.Context(), args[0])
			if err != nil {
				return r.explainMissing(err, trustNotFound(args[0]))
			}
			fmt.Fprintf(stderr, "deleted trust policy %s\n", args[0])
			return nil
		},
	}
}
