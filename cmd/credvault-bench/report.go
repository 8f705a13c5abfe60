package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// row is one line of the result table.
type row struct {
	op       string
	conc     int
	res      cellResult
	bare     cellResult // the bare cell measured just before (for "bare": the median)
	bareRuns int
}

type reportInfo struct {
	engine                      string
	loadTime                    time.Duration
	deepIndex                   int
	rowsEnd                     int
	memStart, memLoaded, memEnd mem
	skipped                     []string
}

func report(w io.Writer, cfg config, info reportInfo, rows []row) {
	title := fmt.Sprintf("%s, %d preloaded rows", info.engine, cfg.rows)
	if cfg.noAudit {
		title += " — DIAGNOSIS: audit trail disabled (-no-audit)"
	}
	fmt.Fprintf(w, "### %s\n\n", title)
	fmt.Fprintf(w, "- machine: %d CPUs (GOMAXPROCS %d), %s, %s %s/%s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "- command: `go run ./cmd/credvault-bench %s`\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(w, "- %s measured + %s warm-up per cell; each cell is preceded by a bare-handler cell at the same concurrency; ratio = ops/s ÷ that bare cell's ops/s\n", cfg.duration, cfg.warmup)
	fmt.Fprintf(w, "- preload: %d credentials (%d-byte payloads) through the core's bulk path in %s (%.0f/s); list-deep cursor = row %d of %d in created_at order; %d rows at the end (creates add rows)\n\n",
		cfg.rows, cfg.payloadSize, info.loadTime.Round(time.Millisecond), float64(cfg.rows)/info.loadTime.Seconds(), info.deepIndex+1, cfg.rows, info.rowsEnd)

	fmt.Fprintln(w, "| operation | conc | ops/s | p50 | p99 | bare ops/s (adjacent) | ratio to bare | CPU/op | CPU use | errors |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range cfg.concs {
		names := []string{"bare"}
		for _, n := range cfg.ops {
			if n != "bare" {
				names = append(names, n)
			}
		}
		for _, name := range names {
			for _, r := range rows {
				if r.conc != c || r.op != name || (name == "bare" && r.bareRuns == 0) {
					continue
				}
				ratio := "—"
				if r.op == "bare" {
					ratio = fmt.Sprintf("1 (median of %d)", r.bareRuns)
				} else if r.bare.rate() > 0 {
					ratio = fmt.Sprintf("%.2f", r.res.rate()/r.bare.rate())
				}
				errs := fmt.Sprint(r.res.errs)
				if r.res.errs > 0 {
					errs += " (" + truncate(r.res.firstEr, 80) + ")"
				}
				use := 0.0
				if r.res.elapsed > 0 {
					use = 100 * r.res.cpu.Seconds() / r.res.elapsed.Seconds()
				}
				fmt.Fprintf(w, "| %s | %d | %.0f | %s | %s | %.0f | %s | %s | %.0f%% | %s |\n", r.op, r.conc, r.res.rate(), dur(r.res.p50), dur(r.res.p99), r.bare.rate(), ratio, dur(r.res.cpuPerOp()), use, errs)
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "CPU/op: user+system CPU time of the whole process (server, bare handler and load generator) per operation in the measured window; CPU use: the same over wall time (%d CPUs = %d%%).\n\n", runtime.NumCPU(), 100*runtime.NumCPU())
	fmt.Fprintf(w, "Memory of the benchmark process (server, bare handler and load generator share it; /proc/self/status): "+
		"VmRSS %s at start, %s after preload (after GC), %s at the end; peak VmHWM %s (includes the preload). Go heap in use at the end: %s.\n",
		kb(info.memStart.rssKB), kb(info.memLoaded.rssKB), kb(info.memEnd.rssKB), kb(info.memEnd.hwmKB), kb(info.memEnd.heapInuse/1024))
	if len(info.skipped) > 0 {
		fmt.Fprintf(w, "\nSkipped: %s.\n", strings.Join(info.skipped, "; "))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Operations:")
	for _, name := range cfg.ops {
		if op := findOp(name); op != nil {
			fmt.Fprintf(w, "- %s: %s\n", op.name, op.desc)
		}
	}
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	default:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
}

func kb(n uint64) string {
	return fmt.Sprintf("%.0f MiB", float64(n)/1024)
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "|", "/")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
