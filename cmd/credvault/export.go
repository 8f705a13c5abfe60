package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/client"
)

func newExportCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	rf := &remoteFlags{}
	var format string
	cmd := &cobra.Command{
		Use:   "export [--format dotenv|json] [NAME…]",
		Short: "Write credentials' payloads to stdout as dotenv or JSON",
		Long: `Write name → payload for the named credentials (all of the account's when no
NAME is given) to stdout. This prints secrets: redirect it to a file only you
can read, or prefer ` + "`credvault run`" + `.

json:   {"<credential name>": "<payload>", …}, names as they are.
dotenv: VAR='payload' lines. A name becomes a variable name by upper-casing
        it and replacing every character other than A-Z, 0-9 and _ with _
        (a leading digit gets a _ in front): openai-prod → OPENAI_PROD. When
        that differs from the name, a "# credvault-name: <name>" comment
        before the line keeps the name for ` + "`credvault import`" + `. Two names that
        map to one variable are an error. Values are single-quoted, or
        double-quoted (\\ \" \$ \n \r and backquotes escaped) when they hold a quote
        or a line break, so that import restores them byte for byte.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, names []string) error {
			if format != "dotenv" && format != "json" {
				return usageError{fmt.Errorf("--format must be dotenv or json, not %q", format)}
			}
			r, err := o.connect(rf)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if len(names) == 0 {
				for c, err := range r.c.Credentials.All(ctx, client.ListParams{SortBy: "name", Limit: 1000}) {
					if err != nil {
						return r.explain(err)
					}
					names = append(names, c.Name)
				}
			}
			sort.Strings(names)
			byVar := map[string]string{}
			for _, n := range names {
				if prev, dup := byVar[envName(n)]; dup && format == "dotenv" && prev != n {
					return fmt.Errorf("credentials %q and %q both map to the variable %s: export them with --format json, or one at a time", prev, n, envName(n))
				}
				byVar[envName(n)] = n
			}
			// Everything is fetched before anything is written.
			values := make(map[string]string, len(names))
			for _, n := range names {
				s, err := r.reveal(ctx, n)
				if err != nil {
					return err
				}
				values[n] = string(s)
			}
			var buf bytes.Buffer
			if format == "json" {
				enc := json.NewEncoder(&buf)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				if err := enc.Encode(values); err != nil {
					return err
				}
			} else {
				buf.WriteString("# credvault export (dotenv); `credvault import FILE` reads it back\n")
				for _, n := range names {
					if _, done := values[n]; !done {
						continue
					}
					v := envName(n)
					if v != n {
						fmt.Fprintf(&buf, "# credvault-name: %s\n", n)
					}
					fmt.Fprintf(&buf, "%s=%s\n", v, quoteDotenv(values[n]))
					delete(values, n) // a name given twice is written once
				}
			}
			_, err = stdout.Write(buf.Bytes())
			clear(values)
			return err
		},
	}
	cmd.Flags().StringVar(&format, "format", "dotenv", "dotenv or json")
	addRemoteFlags(cmd.Flags(), rf)
	return cmd
}

// nameList shows at most a few names.
func nameList(names []string) string {
	if len(names) > 5 {
		return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
	}
	return strings.Join(names, ", ")
}
