package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/client"
)

func newCredentialCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	rf := &remoteFlags{}
	return remoteGroup(&cobra.Command{
		Use:   "credential",
		Short: "Create, list, show, reveal, update and delete credentials on a running vault",
		Long: `Create, list, show, reveal, update and delete credentials on a running vault,
through its SGP v5 API.

The server and key come from --url/--api-key/--account, else CREDVAULT_URL,
CREDVAULT_API_KEY, CREDVAULT_ACCOUNT, else the profile saved by
` + "`credvault login`" + `. A payload is never taken from the command line (where the
process list would show it): it is read from stdin or --payload-file.

NAME_OR_ID is a credential's id (a UUID) or its name.
Exit status: 0 success, 1 error, 2 usage error.`,
	}, rf,
		newCredentialCreateCmd(o, rf, stdout, stderr),
		newCredentialListCmd(o, rf, stdout),
		newCredentialGetCmd(o, rf, stdout),
		newCredentialRevealCmd(o, rf, stdout),
		newCredentialUpdateCmd(o, rf, stdout, stderr),
		newCredentialDeleteCmd(o, rf, stdout, stderr),
	)
}

// outputFlag is -o table|json.
func outputFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVarP(v, "output", "o", "table", "output format: table (for people) or json (for scripts)")
}

func checkOutput(v string) error {
	if v != "table" && v != "json" {
		return usageError{fmt.Errorf("-o must be table or json, not %q", v)}
	}
	return nil
}

// withOutput gives cmd the flag -o table|json and makes run its RunE, called
// once the flag is checked with whether JSON was asked for.
func withOutput(cmd *cobra.Command, run func(cmd *cobra.Command, args []string, asJSON bool) error) *cobra.Command {
	var output string
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(output); err != nil {
			return err
		}
		return run(cmd, args, output == "json")
	}
	outputFlag(cmd, &output)
	return cmd
}

// idOutputFlag is -o id|json, for commands that create something: see
// checkIDOutput and printCreated.
func idOutputFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVarP(v, "output", "o", "id", "output: id (the new id alone) or json")
}

func checkIDOutput(v string) error {
	if v == "id" {
		return nil
	}
	return checkOutput(v)
}

// printCreated prints what a command created: v as JSON for -o json, else
// its id alone on stdout (X=$(credvault …) captures it), then a summary on
// stderr.
func printCreated(stdout, stderr io.Writer, output string, v any, id, format string, args ...any) error {
	if output == "json" {
		return writeJSON(stdout, v)
	}
	fmt.Fprintln(stdout, id)
	fmt.Fprintf(stderr, format, args...)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printOutput writes v as indented JSON when asJSON, else as a table for
// people: the header line (if any), then the tab-separated lines rows
// writes.
func printOutput(w io.Writer, asJSON bool, v any, header string, rows func(tw io.Writer)) error {
	if asJSON {
		return writeJSON(w, v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header != "" {
		fmt.Fprintln(tw, header)
	}
	rows(tw)
	return tw.Flush()
}

// readPayload reads a payload from file ("-" is stdin) or stdin, byte for
// byte (a trailing newline is part of it).
func readPayload(cmd *cobra.Command, stderr io.Writer, file, name string) (client.Secret, error) {
	var b []byte
	var err error
	if file != "" && file != "-" {
		b, err = os.ReadFile(file)
	} else {
		b, err = readSecret(cmd.InOrStdin(), stderr, "Payload for "+name+" (input hidden): ")
	}
	if err != nil {
		return "", fmt.Errorf("read payload: %w", err)
	}
	if len(b) == 0 {
		return "", usageError{errors.New("empty payload: pipe it on stdin or name a file with --payload-file")}
	}
	return client.Secret(b), nil
}

func parseMetadata(kvs []string) (map[string]any, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]any{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--metadata %q: want key=value", kv)}
		}
		m[k] = v
	}
	return m, nil
}

func newCredentialCreateCmd(o *options, rf *remoteFlags, stdout, stderr io.Writer) *cobra.Command {
	var typ, desc, payloadFile, output string
	var meta []string
	cmd := &cobra.Command{
		Use:   "create NAME [--type key|json] [--description D] [--metadata k=v]… [--payload-file F]",
		Short: "Create a credential; the payload comes from stdin or --payload-file",
		Long: `Create a credential. The payload is read from stdin or from --payload-file,
byte for byte: a trailing newline is part of it, so pipe it with
printf '%s', not echo. On a terminal, stdin is one line typed without echo
after a prompt (use --payload-file for several lines).
Prints the new credential's id alone on stdout (-o json: the credential).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if typ != client.TypeKey && typ != client.TypeJSON {
				return usageError{fmt.Errorf("--type must be key or json, not %q", typ)}
			}
			if err := checkIDOutput(output); err != nil {
				return err
			}
			m, err := parseMetadata(meta)
			if err != nil {
				return err
			}
			r, err := o.connect(rf)
			if err != nil {
				return err
			}
			payload, err := readPayload(cmd, stderr, payloadFile, args[0])
			if err != nil {
				return err
			}
			cred, err := r.c.Credentials.Create(cmd.Context(), client.CreateParams{Type: typ, Name: args[0], Description: desc, Payload: payload, Metadata: m})
			if errors.Is(err, client.ErrConflict) {
				return fmt.Errorf("a credential named %q already exists: update it with `credvault credential update %s`", args[0], args[0])
			}
			if err != nil {
				return r.explain(err)
			}
			return printCreated(stdout, stderr, output, cred, cred.ID, "created credential %s (type %s)\n", cred.Name, cred.Type)
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", client.TypeKey, "key (an opaque string) or json (the payload must be JSON text)")
	f.StringVar(&desc, "description", "", "description")
	f.StringArrayVar(&meta, "metadata", nil, "metadata entry key=value (repeatable)")
	f.StringVar(&payloadFile, "payload-file", "", "read the payload from this file instead of stdin")
	idOutputFlag(cmd, &output)
	return cmd
}

func newCredentialListCmd(o *options, rf *remoteFlags, stdout io.Writer) *cobra.Command {
	var name string
	cmd := withOutput(&cobra.Command{
		Use:   "list [--name N] [-o table|json]",
		Short: "List credentials (metadata only), ordered by name",
		Args:  usageArgs(cobra.NoArgs),
	}, func(cmd *cobra.Command, _ []string, asJSON bool) error {
		r, err := o.connect(rf)
		if err != nil {
			return err
		}
		creds := []client.Credential{}
		for c, err := range r.c.Credentials.All(cmd.Context(), client.ListParams{Name: name, SortBy: "name", Limit: 1000}) {
			if err != nil {
				return r.explain(err)
			}
			creds = append(creds, *c)
		}
		return printOutput(stdout, asJSON, creds, "NAME\tTYPE\tID\tUPDATED\tDESCRIPTION", func(tw io.Writer) {
			for _, c := range creds {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, c.Type, c.ID, c.UpdatedAt.UTC().Format(time.RFC3339), oneLine(c.Description))
			}
		})
	})
	cmd.Flags().StringVar(&name, "name", "", "only the credential with exactly this name")
	return cmd
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func newCredentialGetCmd(o *options, rf *remoteFlags, stdout io.Writer) *cobra.Command {
	return withOutput(&cobra.Command{
		Use:   "get NAME_OR_ID [-o table|json]",
		Short: "Show a credential's metadata (never its payload: see reveal)",
		Args:  usageArgs(cobra.ExactArgs(1)),
	}, func(cmd *cobra.Command, args []string, asJSON bool) error {
		_, c, err := o.credential(cmd.Context(), rf, args[0])
		if err != nil {
			return err
		}
		return printOutput(stdout, asJSON, c, "", func(tw io.Writer) {
			meta, _ := json.Marshal(c.Metadata)
			fmt.Fprintf(tw, "name:\t%s\nid:\t%s\ntype:\t%s\ndescription:\t%s\nmetadata:\t%s\ncreated:\t%s\nupdated:\t%s\ncreated by:\t%s (%s)\n",
				c.Name, c.ID, c.Type, oneLine(c.Description), meta,
				c.CreatedAt.UTC().Format(time.RFC3339), c.UpdatedAt.UTC().Format(time.RFC3339), c.CreatedByUserID, c.CreatedByIdentityType)
		})
	})
}

func newCredentialRevealCmd(o *options, rf *remoteFlags, stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "reveal NAME_OR_ID",
		Short: "Print a credential's payload byte for byte",
		Long: `Print a credential's payload byte for byte, with a trailing newline only when
stdout is a terminal. Every reveal is recorded in the audit trail. To hand
secrets to a program, prefer ` + "`credvault run`" + `, which writes nothing anywhere.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := o.connect(rf)
			if err != nil {
				return err
			}
			s, err := r.reveal(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if _, err := io.WriteString(stdout, string(s)); err != nil {
				return err
			}
			if onTerminal(stdout) {
				fmt.Fprintln(stdout)
			}
			return nil
		},
	}
}

func newCredentialUpdateCmd(o *options, rf *remoteFlags, stdout, stderr io.Writer) *cobra.Command {
	var desc, payloadFile string
	var payloadStdin bool
	cmd := &cobra.Command{
		Use:   "update NAME_OR_ID [--payload-file F | --payload-stdin] [--description D]",
		Short: "Change a credential's payload and/or description",
		Long: `Change a credential's payload (from --payload-file, or stdin with
--payload-stdin, byte for byte) and/or its description. Prints the id.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			descSet := cmd.Flags().Changed("description")
			if payloadFile != "" && payloadStdin {
				return usageError{errors.New("--payload-file and --payload-stdin exclude each other")}
			}
			if payloadFile == "" && !payloadStdin && !descSet {
				return usageError{errors.New("nothing to change: give --payload-file, --payload-stdin or --description")}
			}
			r, c, err := o.credential(cmd.Context(), rf, args[0])
			if err != nil {
				return err
			}
			var p client.UpdateParams
			if descSet {
				p.Description = &desc
			}
			if payloadFile != "" || payloadStdin {
				s, err := readPayload(cmd, stderr, payloadFile, c.Name)
				if err != nil {
					return err
				}
				p.Payload = &s
			}
			if _, err := r.c.Credentials.Update(cmd.Context(), c.ID, p); err != nil {
				return r.explainMissing(err, notFound(args[0]))
			}
			fmt.Fprintln(stdout, c.ID)
			fmt.Fprintf(stderr, "updated credential %s\n", c.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&desc, "description", "", "new description")
	f.StringVar(&payloadFile, "payload-file", "", "read the new payload from this file")
	f.BoolVar(&payloadStdin, "payload-stdin", false, "read the new payload from stdin")
	return cmd
}

func newCredentialDeleteCmd(o *options, rf *remoteFlags, stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME_OR_ID",
		Short: "Delete a credential",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, c, err := o.credential(cmd.Context(), rf, args[0])
			if err != nil {
				return err
			}
			if err := r.c.Credentials.Delete(cmd.Context(), c.ID); err != nil {
				return r.explainMissing(err, notFound(args[0]))
			}
			fmt.Fprintln(stdout, c.ID)
			fmt.Fprintf(stderr, "deleted credential %s\n", c.Name)
			return nil
		},
	}
}
