package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/vault"
)

type loadOptions struct {
	count     int
	account   string
	batch     int
	prefix    string
	start     int
	typ       string
	payloadSz int
}

func newLoadCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	lo := &loadOptions{}
	cmd := &cobra.Command{
		Use:   "load --count N",
		Short: "Bulk-load N test credentials (benchmarks, capacity tests)",
		Long: `Bulk-load N credentials into the configured database through the core:
each is validated and sealed exactly like a credential created through the
API (sealing runs in parallel on every CPU), and batches are inserted one
transaction each. Names are <prefix><9-digit number> (load-000000123), type
"key", with a random payload.

The master key is loaded as serve loads it. On an empty database, load
bootstraps the vault first and prints the admin API key once, as serve does.
Without --account the vault's only account is used.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLoad(cmd.Context(), o, lo, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.IntVar(&lo.count, "count", 0, "number of credentials to create (required)")
	f.StringVar(&lo.account, "account", "", "account id (default: the vault's only account)")
	f.IntVar(&lo.batch, "batch", 5000, "credentials per transaction")
	f.StringVar(&lo.prefix, "prefix", "load-", "name prefix")
	f.IntVar(&lo.start, "start", 0, "first number in the names (to add to an earlier load)")
	f.StringVar(&lo.typ, "type", "key", "credential type")
	f.IntVar(&lo.payloadSz, "payload-bytes", 40, "payload size in bytes (random base64 text)")
	_ = cmd.MarkFlagRequired("count")
	return cmd
}

func runLoad(ctx context.Context, o *options, lo *loadOptions, stdout, stderr io.Writer) error {
	if lo.count < 1 {
		return errors.New("--count must be at least 1")
	}
	if lo.batch < 1 {
		return errors.New("--batch must be at least 1")
	}
	if lo.payloadSz < 1 {
		return errors.New("--payload-bytes must be at least 1")
	}
	a, err := app.Open(ctx, o.appConfig(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	defer a.Close()
	boot, err := a.Bootstrap(ctx, o.getenv("CREDVAULT_BOOTSTRAP_API_KEY"))
	if err != nil {
		return err
	}
	if boot != nil {
		printBootstrap(stderr, boot.APIKey, o.getenv("CREDVAULT_BOOTSTRAP_API_KEY") != "", boot.Account.ID, boot.Principal.ID, "<addr>")
	}
	id, err := a.Service.WriterIdentity(ctx, lo.account)
	if err != nil {
		return err
	}
	stats, err := BulkLoad(ctx, a.Service, a.Store, id, LoadSpec{
		Count: lo.count, Batch: lo.batch, Prefix: lo.prefix, Start: lo.start, Type: lo.typ, PayloadBytes: lo.payloadSz,
		Progress: func(done int, elapsed time.Duration) {
			if done%100000 >= lo.batch && done != lo.count {
				return
			}
			fmt.Fprintf(stderr, "loaded %d/%d (%.0f/s)\n", done, lo.count, float64(done)/elapsed.Seconds())
		},
	})
	if err != nil {
		return err
	}
	// Refresh planner statistics: right after a large load PostgreSQL
	// would otherwise plan first pages with a full scan and sort.
	if err := a.Store.Analyze(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "loaded %d credentials into account %s (engine %s) in %s: %.0f credentials/s\n",
		stats.Created, id.AccountID, a.Store.Engine(), stats.Elapsed.Round(time.Millisecond), float64(stats.Created)/stats.Elapsed.Seconds())
	return nil
}

// LoadSpec describes a bulk load.
type LoadSpec struct {
	Count, Batch, Start, PayloadBytes int
	Prefix, Type                      string
	// Progress, if set, is called after each committed batch (serially).
	Progress func(done int, elapsed time.Duration)
}

// LoadStats is the outcome of a bulk load.
type LoadStats struct {
	Created int
	Elapsed time.Duration
}

// BulkLoad creates spec.Count credentials through svc.BulkCreateCredentials,
// batch by batch. Two batches are in flight at once, so that one is sealed
// (in parallel on every CPU) while the other is being inserted (databases
// take one write transaction at a time for SQLite anyway). At the end it
// refreshes st's planner statistics.
func BulkLoad(ctx context.Context, svc *vault.Service, st store.Analyzer, id *vault.Identity, spec LoadSpec) (LoadStats, error) {
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct{ lo, hi int }
	jobs := make(chan job)
	go func() {
		defer close(jobs)
		for lo := 0; lo < spec.Count; lo += spec.Batch {
			select {
			case jobs <- job{lo, min(lo+spec.Batch, spec.Count)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		mu      sync.Mutex
		done    int
		firstEr error
		wg      sync.WaitGroup
	)
	for range 2 {
		wg.Go(func() {
			raw := make([]byte, (spec.PayloadBytes*3+3)/4)
			for j := range jobs {
				ins := make([]vault.CredentialInput, j.hi-j.lo)
				for k := range ins {
					_, _ = rand.Read(raw)
					p := []byte(base64.RawURLEncoding.EncodeToString(raw))[:spec.PayloadBytes]
					ins[k] = vault.CredentialInput{Name: fmt.Sprintf("%s%09d", spec.Prefix, spec.Start+j.lo+k), Type: spec.Type, Payload: p}
				}
				_, err := svc.BulkCreateCredentials(ctx, id, ins)
				mu.Lock()
				if err != nil {
					if firstEr == nil {
						firstEr = fmt.Errorf("batch %d–%d: %w", spec.Start+j.lo, spec.Start+j.hi-1, err)
					}
					cancel()
				} else {
					done += len(ins)
					if spec.Progress != nil {
						spec.Progress(done, time.Since(start))
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return LoadStats{Created: done, Elapsed: time.Since(start)}, firstEr
}
