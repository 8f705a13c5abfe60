package main

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// openPTY returns a pseudo-terminal: the controller side and the terminal
// a command sees.
func openPTY(t *testing.T) (ctrl, tty *os.File) {
	t.Helper()
	ctrl, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ctrl.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ctrl.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close(); ctrl.Close() })
	return ctrl, tty
}

// drain collects what the terminal shows.
type drain struct{ vaulttest.SyncBuffer }

// waitFor polls until the terminal showed s.
func (d *drain) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(d.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never showed %q; it showed %q", s, d.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// onTTY runs a command in-process with stdin, stdout and stderr on a
// pseudo-terminal; typed is written to the terminal after prompt appears.
func onTTY(t *testing.T, env map[string]string, prompt, typed string, args ...string) (shown *drain, err error) {
	t.Helper()
	ctrl, tty := openPTY(t)
	d := &drain{}
	go io.Copy(d, ctrl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := newRootCmd(func(k string) string { return env[k] }, tty, tty)
	root.SetIn(tty)
	root.SetArgs(args)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	if prompt != "" {
		d.waitFor(t, prompt)
		ctrl.Write([]byte(typed + "\r"))
	}
	err = <-done
	return d, err
}

// TestOnATerminal: prompts read without echo, reveal adds a newline only
// on a terminal, import draws a progress bar there.
func TestOnATerminal(t *testing.T) {
	v := vaulttest.New(t, vaulttest.Engines()[0])
	env := clientEnv(t, v, v.AdminKey)

	shown, err := onTTY(t, env, "(input hidden): ", "typed-secret-1", "credential", "create", "typed")
	if err != nil {
		t.Fatal(err)
	}
	shown.waitFor(t, "created credential typed")
	if strings.Contains(shown.String(), "typed-secret-1") {
		t.Errorf("the payload was echoed: %q", shown)
	}
	if out, _, _ := cliIn(t, env, "", "credential", "reveal", "typed"); out != "typed-secret-1" {
		t.Fatalf("stored %q", out)
	}
	shown, err = onTTY(t, env, "", "", "credential", "reveal", "typed")
	if err != nil {
		t.Fatal(err)
	}
	shown.waitFor(t, "typed-secret-1\r\n")

	cfg := map[string]string{"CREDVAULT_CONFIG_DIR": t.TempDir()}
	shown, err = onTTY(t, cfg, "(input hidden): ", v.AdminKey, "login", "--url", v.URL)
	if err != nil {
		t.Fatal(err)
	}
	shown.waitFor(t, "logged in")
	if strings.Contains(shown.String(), v.AdminKey) {
		t.Errorf("the key was echoed: %q", shown)
	}

	file := t.TempDir() + "/in.json"
	os.WriteFile(file, []byte(`{"p1":"a","p2":"b","p3":"c"}`), 0o600)
	shown, err = onTTY(t, env, "", "", "import", file)
	if err != nil {
		t.Fatal(err)
	}
	shown.waitFor(t, "3 created")
	if !strings.Contains(shown.String(), "] 3/3") {
		t.Errorf("no progress bar: %q", shown)
	}
}
