package pgtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// PostmasterPID returns the process id of the running cluster's postmaster
// (the first line of postmaster.pid).
func (c *Cluster) PostmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("pgtest: postmaster.pid: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	pid, err := strconv.Atoi(strings.TrimSpace(string(line)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pgtest: postmaster.pid: bad pid %q", line)
	}
	return pid, nil
}

// Processes returns the postmaster's pid followed by those of its children
// (backends and auxiliary processes) at this moment, found through /proc.
// Only this cluster's processes are listed: never the shared server's.
func (c *Cluster) Processes() ([]int, error) {
	pm, err := c.PostmasterPID()
	if err != nil {
		return nil, err
	}
	pids := []int{pm}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid …; comm may contain spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == pm {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Signal sends sig to the postmaster and to every child it has: SIGSTOP
// freezes the whole server (it accepts TCP connections in the kernel but
// answers nothing), SIGCONT thaws it. Processes that exit meanwhile are
// ignored.
func (c *Cluster) Signal(sig syscall.Signal) error {
	pids, err := c.Processes()
	if err != nil {
		return err
	}
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("pgtest: kill -%d %d: %w", sig, pid, err))
		}
	}
	return errors.Join(errs...)
}
