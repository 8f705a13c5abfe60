package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// reaperScript runs in a separate process beside each cluster. It blocks
// reading a pipe whose only write end is held by the test process. When the
// test process goes away for any reason — orderly exit, a panicking test, a
// `go test -timeout` crash, SIGKILL, Ctrl-C — the kernel closes that end, the
// read returns, and the script stops the postmaster (SIGINT = fast shutdown,
// SIGKILL after 30 s) and removes the cluster's directory. It ignores the
// terminal's signals and has its own process group, so a Ctrl-C that kills
// the test process does not kill it first. After an orderly cleanup it finds
// nothing left to do.
//
// It runs as the test process's user: as root it can signal the postmaster
// and remove the directory of the unprivileged user PostgreSQL runs as.
const reaperScript = `
trap '' INT TERM HUP QUIT PIPE
read -r line || :
pidfile="$2/postmaster.pid"
if [ -f "$pidfile" ]; then
	pid=$(head -n 1 "$pidfile" 2>/dev/null)
	case "$pid" in ''|*[!0-9]*) pid= ;; esac
	if [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; then
		i=0
		while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i+1)); done
		kill -KILL "$pid" 2>/dev/null
	fi
fi
rm -rf "$1"
`

type reaper struct {
	w    *os.File
	done chan struct{}
}

func startReaper(root, data string) (*reaper, error) {
	r, w, err := os.Pipe() // close-on-exec: no other child inherits w
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/bin/sh", "-c", reaperScript, "pgtest-reaper", root, data)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("starting the cleanup watchdog: %w", err)
	}
	r.Close()
	rp := &reaper{w: w, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(rp.done)
	}()
	return rp, nil
}

// release lets the reaper run (it finds nothing left after an orderly stop)
// and waits a bounded time for it to finish.
func (r *reaper) release() {
	r.w.Close()
	t := time.NewTimer(45 * time.Second)
	defer t.Stop()
	select {
	case <-r.done:
	case <-t.C:
	}
}
