package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// buildCLI builds this command into a temp dir (go's build cache keeps it
// quick) for tests that need a real process.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "credvault")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cliProcess prepares the binary with env (plus PATH) and nothing else of
// ours: no CREDVAULT_* variable leaks in.
func cliProcess(bin string, env map[string]string, args ...string) *exec.Cmd {
	c := exec.Command(bin, args...)
	c.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		c.Env = append(c.Env, k+"="+v)
	}
	return c
}

func exitStatus(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if !errors.As(err, &ee) {
		t.Fatalf("wait: %v", err)
	}
	return ee.ExitCode()
}

// TestRun: `credvault run` as a real process on both engines: payloads
// reach the child's environment exactly, the child's exit status is
// credvault's, SIGTERM and SIGINT are forwarded, an unknown name fails
// before anything starts, and no payload is in any argv, in credvault's own
// environment, in the temp dir or in the logs.
func TestRun(t *testing.T) {
	bin := buildCLI(t)
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		env := clientEnv(t, v, v.AdminKey)
		env["TMPDIR"] = t.TempDir()
		secretA := "canary-run-" + v.Engine + "-" + awkward["newlines"] + awkward["quotes"]
		secretB := "canary-b-" + awkward["dollar"]
		for name, p := range map[string]string{"svc-a": secretA, "svc-b": secretB} {
			if _, _, err := cliIn(t, env, p, "credential", "create", name); err != nil {
				t.Fatal(err)
			}
		}
		mapFile := filepath.Join(t.TempDir(), "mapping")
		os.WriteFile(mapFile, []byte("# mapping\nB_VAR=svc-b\n"), 0o600)

		t.Run("env", func(t *testing.T) {
			var out, errb bytes.Buffer
			c := cliProcess(bin, env, "run", "--env", "A_VAR=svc-a", "--env-file", mapFile, "--",
				"sh", "-c", `printf '%s|%s|%s' "$A_VAR" "$B_VAR" "${CREDVAULT_API_KEY-unset}"`)
			c.Stdout, c.Stderr = &out, &errb
			if err := c.Run(); err != nil {
				t.Fatalf("%v: %s", err, errb.String())
			}
			if want := secretA + "|" + secretB + "|unset"; out.String() != want {
				t.Fatalf("child saw %q; want %q", out.String(), want)
			}
		})
		t.Run("exit-status", func(t *testing.T) {
			for _, code := range []int{0, 3, 7, 255} {
				c := cliProcess(bin, env, "run", "--env", "A=svc-a", "--", "sh", "-c", "exit "+strconv.Itoa(code))
				if got := exitStatus(t, c.Run()); got != code {
					t.Errorf("child exited %d, credvault %d", code, got)
				}
			}
			c := cliProcess(bin, env, "run", "--env", "A=svc-a", "--", "no-such-program-xyz")
			if got := exitStatus(t, c.Run()); got != 127 {
				t.Errorf("missing program: exit %d; want 127", got)
			}
		})
		t.Run("unknown-name", func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "started")
			var errb bytes.Buffer
			c := cliProcess(bin, env, "run", "--env", "A=svc-a", "--env", "GONE=no-such-cred", "--", "touch", marker)
			c.Stderr = &errb
			if got := exitStatus(t, c.Run()); got != 1 {
				t.Errorf("exit %d; want 1", got)
			}
			if !strings.Contains(errb.String(), `"no-such-cred" not found`) || !strings.Contains(errb.String(), "GONE=no-such-cred") || !strings.Contains(errb.String(), "touch was not started") {
				t.Errorf("stderr = %q; want the unknown name and that nothing started", errb.String())
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the program ran")
			}
		})
		t.Run("usage", func(t *testing.T) {
			for _, args := range [][]string{{"run", "--", "true"}, {"run", "--env", "1BAD=svc-a", "--", "true"}, {"run", "--env", "A=svc-a"}, {"credential", "get"}, {"no-such-command"}} {
				if got := exitStatus(t, cliProcess(bin, env, args...).Run()); got != 2 {
					t.Errorf("%v: exit %d; want 2", args, got)
				}
			}
		})
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
			t.Run("forward-"+sig.String(), func(t *testing.T) {
				c := cliProcess(bin, env, "run", "--env", "A=svc-a", "--", "sh", "-c",
					`trap 'echo got-signal; exit 42' TERM INT; echo ready; while :; do sleep 0.05; done`)
				c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				stdout, _ := c.StdoutPipe()
				if err := c.Start(); err != nil {
					t.Fatal(err)
				}
				// Bound the test: should the signal not arrive, end the group.
				stop := time.AfterFunc(15*time.Second, func() { syscall.Kill(-c.Process.Pid, syscall.SIGKILL) })
				defer stop.Stop()
				r := bufio.NewReader(stdout)
				if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
					c.Process.Kill()
					t.Fatalf("child: %q %v", line, err)
				}
				// Only credvault gets the signal (it is not in a terminal's
				// process group): the child sees it only if it is forwarded.
				c.Process.Signal(sig)
				rest, _ := io.ReadAll(r)
				if got := exitStatus(t, c.Wait()); got != 42 || string(rest) != "got-signal\n" {
					t.Errorf("exit %d, child printed %q; want 42 and got-signal", got, rest)
				}
			})
		}
		t.Run("no-trace", func(t *testing.T) {
			c := cliProcess(bin, env, "run", "--env", "A_VAR=svc-a", "--env", "B_VAR=svc-b", "--", "sh", "-c", `echo ready; read x; exit 0`)
			stdin, _ := c.StdinPipe()
			stdout, _ := c.StdoutPipe()
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			defer c.Process.Kill()
			if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
				t.Fatalf("child: %q %v", line, err)
			}
			pid := c.Process.Pid
			// The child may have been forked by any of credvault's threads.
			tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
			var kids []string
			for _, task := range tasks {
				b, _ := os.ReadFile(task)
				kids = append(kids, strings.Fields(string(b))...)
			}
			if len(kids) != 1 {
				t.Fatalf("children of credvault: %q", kids)
			}
			child := kids[0]
			read := func(p string) string {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatalf("read %s: %v", p, err)
				}
				return string(b)
			}
			for _, p := range []string{"/proc/" + strconv.Itoa(pid) + "/cmdline", "/proc/" + strconv.Itoa(pid) + "/environ", "/proc/" + child + "/cmdline"} {
				content := read(p)
				for _, s := range []string{secretA, secretB, "canary-"} {
					if strings.Contains(content, s) {
						t.Errorf("%s holds a payload", p)
					}
				}
			}
			// The child's environment has them (so the check above looked at
			// the right processes), readable only by its owner.
			if e := read("/proc/" + child + "/environ"); !strings.Contains(e, "A_VAR="+secretA+"\x00") || !strings.Contains(e, "B_VAR="+secretB+"\x00") {
				t.Error("the child's environment lacks the payloads")
			}
			fi, err := os.Stat("/proc/" + child + "/environ")
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("/proc/<child>/environ: uid %d mode %v; want ours and owner-only", st.Uid, fi.Mode().Perm())
			}
			// Nothing on disk: the temp dir and the config dir stay empty.
			for _, dir := range []string{env["TMPDIR"], env["CREDVAULT_CONFIG_DIR"]} {
				entries, _ := os.ReadDir(dir)
				for _, e := range entries {
					t.Errorf("%s holds %s during run", dir, e.Name())
				}
			}
			stdin.Close()
			if got := exitStatus(t, c.Wait()); got != 0 {
				t.Errorf("exit %d", got)
			}
		})
		for _, s := range []string{secretA, secretB, "canary-"} {
			if strings.Contains(v.Logs(), s) {
				t.Error("the server log holds a payload")
			}
		}
	})
}
