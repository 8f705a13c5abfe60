package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// envVarName is what run and export accept as an environment variable name.
var envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// mapping is one VAR=NAME pair and where it came from.
type mapping struct{ Var, Name, From string }

func newRunCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	rf := &remoteFlags{}
	var envs []string
	var envFile string
	cmd := &cobra.Command{
		Use:   "run --env VAR=NAME [--env VAR2=NAME2]… [--env-file MAPPING_FILE] -- CMD [ARGS…]",
		Short: "Run a program with credentials in its environment, nothing on disk",
		Long: `Run CMD with each VAR set to the payload of credential NAME. Every payload is
fetched before CMD starts: an unknown name fails, naming it, and nothing is
started. Payloads go only into the child's environment (which only its user
can read, in /proc/<pid>/environ); nothing is written to disk, and
CREDVAULT_API_KEY is removed from the child's environment.

MAPPING_FILE holds VAR=NAME lines (blank lines and # comments are ignored).
SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to CMD (a Ctrl-C on a
terminal reaches CMD directly as well, as for any program in the
foreground). The exit status is CMD's (128+N if a signal N ended it; 127 if
CMD cannot be started); credvault's own errors exit 1, usage errors 2.`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			maps, err := parseMappings(envs, envFile)
			if err != nil {
				return err
			}
			if len(maps) == 0 {
				return usageError{errors.New("no --env VAR=NAME and no --env-file: nothing to put in the environment")}
			}
			r, err := o.connect(rf)
			if err != nil {
				return err
			}
			values := map[string]string{}
			for _, m := range maps {
				s, err := r.reveal(cmd.Context(), m.Name)
				if err != nil {
					return fmt.Errorf("%s=%s (%s): %w; %s was not started", m.Var, m.Name, m.From, err, args[0])
				}
				if strings.IndexByte(string(s), 0) >= 0 {
					return fmt.Errorf("%s=%s: the payload holds a NUL byte, which an environment variable cannot; %s was not started", m.Var, m.Name, args[0])
				}
				values[m.Var] = string(s)
			}
			return runChild(cmd.InOrStdin(), stdout, stderr, args, childEnv(os.Environ(), values))
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // everything from CMD on is CMD's
	f.StringArrayVar(&envs, "env", nil, "VAR=NAME: set VAR to the payload of credential NAME (repeatable)")
	f.StringVar(&envFile, "env-file", "", "file of VAR=NAME lines (a mapping, not secrets)")
	addRemoteFlags(f, rf)
	return cmd
}

// parseMappings reads --env values and the mapping file; a variable mapped
// twice is an error.
func parseMappings(envs []string, file string) ([]mapping, error) {
	var out []mapping
	seen := map[string]string{}
	add := func(line, from string) error {
		v, n, ok := strings.Cut(line, "=")
		v, n = strings.TrimSpace(v), strings.TrimSpace(n)
		if !ok || n == "" || !envVarName.MatchString(v) {
			return usageError{fmt.Errorf("%s: %q is not VAR=NAME with VAR a variable name", from, line)}
		}
		if prev, dup := seen[v]; dup {
			return usageError{fmt.Errorf("%s: %s is already mapped (%s)", from, v, prev)}
		}
		seen[v] = from
		out = append(out, mapping{Var: v, Name: n, From: from})
		return nil
	}
	for _, e := range envs {
		if err := add(e, "--env"); err != nil {
			return nil, err
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--env-file: %w", err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if err := add(line, fmt.Sprintf("%s:%d", file, i+1)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// childEnv is environ without CREDVAULT_API_KEY and the mapped variables,
// plus the mapped variables set to their payloads.
func childEnv(environ []string, values map[string]string) []string {
	out := make([]string, 0, len(environ)+len(values))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if _, mapped := values[k]; mapped || k == "CREDVAULT_API_KEY" {
			continue
		}
		out = append(out, kv)
	}
	for k, v := range values {
		out = append(out, k+"="+v)
	}
	return out
}

// runChild runs argv with env, forwarding signals, and returns its exit
// status as an *exitStatusError (nil for 0).
func runChild(stdin io.Reader, stdout, stderr io.Writer, argv []string, env []string) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return &exitStatusError{code: 127, msg: fmt.Sprintf("cannot run %s: %v", argv[0], err)}
	}
	c := exec.Command(path, argv[1:]...)
	c.Args[0] = argv[0]
	c.Env = env
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr

	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigc)
	if err := c.Start(); err != nil {
		return &exitStatusError{code: 127, msg: fmt.Sprintf("cannot run %s: %v", argv[0], err)}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigc:
				_ = c.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = c.Wait()
	close(done)
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return &exitStatusError{code: 128 + int(ws.Signal())}
	}
	return &exitStatusError{code: ee.ExitCode()}
}
