package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/client"
)

func newImportCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	rf := &remoteFlags{}
	var format, typ, onConflict string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "import FILE [--format dotenv|json] [--type key] [--on-conflict fail|skip|overwrite] [--dry-run]",
		Short: "Create or update credentials from a dotenv or JSON file (- is stdin)",
		Long: `Create or update credentials from FILE, in the formats ` + "`credvault export`" + `
writes (see its help): dotenv (a "# credvault-name:" comment names the
credential, else the variable's name is used) or json ({"name": "payload"}).
The format defaults to json for a .json file, dotenv otherwise.

--on-conflict says what to do with a name that already exists: fail (the
default: checked before anything is written, so nothing is), skip, or
overwrite (its payload is replaced). --dry-run prints what would happen and
changes nothing. A progress bar is drawn on a terminal; a summary is
printed to stderr at the end.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format == "" {
				format = "dotenv"
				if strings.EqualFold(filepath.Ext(args[0]), ".json") {
					format = "json"
				}
			}
			if format != "dotenv" && format != "json" {
				return usageError{fmt.Errorf("--format must be dotenv or json, not %q", format)}
			}
			if typ != client.TypeKey && typ != client.TypeJSON {
				return usageError{fmt.Errorf("--type must be key or json, not %q", typ)}
			}
			if onConflict != "fail" && onConflict != "skip" && onConflict != "overwrite" {
				return usageError{fmt.Errorf("--on-conflict must be fail, skip or overwrite, not %q", onConflict)}
			}
			var b []byte
			var err error
			if args[0] == "-" {
				b, err = io.ReadAll(cmd.InOrStdin())
			} else {
				b, err = os.ReadFile(args[0])
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", args[0], err)
			}
			entries, err := parseImport(b, format)
			clear(b)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			r, err := o.connect(rf)
			if err != nil {
				return err
			}
			return importEntries(cmd, r, entries, typ, cmd.Flags().Changed("type"), onConflict, dryRun, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "", "dotenv or json (default: by the file's extension)")
	f.StringVar(&typ, "type", client.TypeKey, "type of the credentials created: key or json")
	f.StringVar(&onConflict, "on-conflict", "fail", "when a name exists: fail, skip or overwrite")
	f.BoolVar(&dryRun, "dry-run", false, "print what would be done, change nothing")
	addRemoteFlags(f, rf)
	return cmd
}

type importEntry struct{ Name, Value string }

func parseImport(b []byte, format string) ([]importEntry, error) {
	var out []importEntry
	seen := map[string]bool{}
	add := func(name, value, where string) error {
		if name == "" {
			return fmt.Errorf("%sempty credential name", where)
		}
		if seen[name] {
			return fmt.Errorf("%scredential %q appears twice", where, name)
		}
		seen[name] = true
		out = append(out, importEntry{Name: name, Value: value})
		return nil
	}
	if format == "json" {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, errors.New("not a JSON object of name → payload strings")
		}
		for _, name := range sortedKeys(m) {
			var s string
			if err := json.Unmarshal(m[name], &s); err != nil {
				return nil, fmt.Errorf("the value of %q is not a string", name)
			}
			if err := add(name, s, ""); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	es, err := parseDotenv(string(b))
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if err := add(e.Name, e.Value, fmt.Sprintf("line %d: ", e.Line)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func importEntries(cmd *cobra.Command, r *remote, entries []importEntry, typ string, typeSet bool, onConflict string, dryRun bool, stdout, stderr io.Writer) error {
	ctx := cmd.Context()
	// Which names exist, before anything is written.
	existing := map[string]string{} // name → id
	for _, e := range entries {
		c, err := r.c.Credentials.GetByName(ctx, e.Name)
		switch {
		case err == nil:
			existing[e.Name] = c.ID
		case errors.Is(err, client.ErrNotFound):
		default:
			return r.explain(err)
		}
	}
	if onConflict == "fail" && len(existing) > 0 {
		names := make([]string, 0, len(existing))
		for _, e := range entries {
			if _, ok := existing[e.Name]; ok {
				names = append(names, e.Name)
			}
		}
		return fmt.Errorf("%d credential(s) already exist: %s; nothing was imported (use --on-conflict skip or overwrite)", len(names), nameList(names))
	}
	var created, updated, skipped int
	bar := newProgress(stderr, len(entries))
	for i, e := range entries {
		id, exists := existing[e.Name]
		action := "create"
		if exists {
			action = map[string]string{"skip": "skip", "overwrite": "overwrite"}[onConflict]
		}
		if dryRun {
			fmt.Fprintf(stdout, "%s %s\n", action, e.Name)
		} else {
			var err error
			switch action {
			case "create":
				_, err = r.c.Credentials.Create(ctx, client.CreateParams{Type: typ, Name: e.Name, Payload: client.Secret(e.Value)})
				if errors.Is(err, client.ErrConflict) && onConflict == "skip" {
					action, err = "skip", nil
				}
			case "overwrite":
				p := client.UpdateParams{Payload: (*client.Secret)(&e.Value)}
				if typeSet {
					p.Type = &typ
				}
				_, err = r.c.Credentials.Update(ctx, id, p)
			}
			if err != nil {
				bar.done()
				return fmt.Errorf("%s %q: %w (%d created, %d updated, %d skipped before it)", action, e.Name, r.explain(err), created, updated, skipped)
			}
		}
		switch action {
		case "create":
			created++
		case "overwrite":
			updated++
		default:
			skipped++
		}
		bar.set(i + 1)
	}
	bar.done()
	verb := "imported"
	if dryRun {
		verb = "dry run, nothing changed: would import"
	}
	fmt.Fprintf(stderr, "%s %d credential(s): %d created, %d updated, %d skipped\n", verb, len(entries), created, updated, skipped)
	return nil
}

// progress draws a bar on a terminal and nothing elsewhere.
type progress struct {
	w     io.Writer
	total int
	on    bool
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, on: onTerminal(w) && total > 0}
}

func (p *progress) set(n int) {
	if !p.on {
		return
	}
	const width = 30
	fill := n * width / p.total
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), n, p.total)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
