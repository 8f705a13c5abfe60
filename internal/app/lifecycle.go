package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/credvault/credvault/internal/vault"
	"github.com/credvault/credvault/internal/webhook"
)

// LifecycleConfig configures the credential lifecycle (issue 15).
type LifecycleConfig struct {
	// DeleteRetention is how long deleted credentials stay recoverable
	// (vault.DefaultDeleteRetention if 0).
	DeleteRetention time.Duration
	// WebhookAllowHosts lists hosts and CIDRs webhooks may be delivered to
	// even though they are not public addresses.
	WebhookAllowHosts []string
	// WebhookTimeout bounds each delivery attempt (webhook.DefaultTimeout
	// if 0); WebhookRetryBase is the first retry's delay
	// (webhook.DefaultRetryBase if 0).
	WebhookTimeout   time.Duration
	WebhookRetryBase time.Duration
	// Manual stops the background loops (tests drive them with
	// App.RunLifecycle and App.Webhooks.RunOnce).
	Manual bool
}

// lifecycleInterval is how often the purge and the expiry notices run.
const lifecycleInterval = time.Minute

func (c LifecycleConfig) serviceOptions() vault.LifecycleOptions {
	return vault.LifecycleOptions{DeleteRetention: c.DeleteRetention}
}

// wakeup is the webhook worker's wake-up: the store (made first) sends on
// it after a commit that wrote webhook deliveries, the worker (made after
// the service, which it needs) waits on it.
type wakeup chan struct{}

func newWakeup() wakeup { return make(wakeup, 1) }

func (w wakeup) wake() {
	select {
	case w <- struct{}{}:
	default:
	}
}

// startLifecycle starts the webhook worker and the lifecycle loop.
func (a *App) startLifecycle(cfg Config, wake wakeup) error {
	w, err := webhook.New(webhook.Options{
		Service: a.Service, Store: a.Store, Wake: wake, Logger: cfg.Logger, Now: cfg.Clock,
		Timeout: cfg.Lifecycle.WebhookTimeout, RetryBase: cfg.Lifecycle.WebhookRetryBase, AllowHosts: cfg.Lifecycle.WebhookAllowHosts,
	})
	if err != nil {
		return err
	}
	a.Webhooks = w
	if cfg.Lifecycle.Manual {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { w.Run(ctx); done <- struct{}{} }()
	go func() { runLifecycle(ctx, a, cfg.Logger); done <- struct{}{} }()
	a.stopLifecycle = func() { cancel(); <-done; <-done }
	return nil
}

// RunLifecycle purges the deleted credentials whose window ended and
// raises due expiry notices, once.
func (a *App) RunLifecycle(ctx context.Context) (purged, notices int, err error) {
	purged, err = a.Service.PurgeDueTrash(ctx)
	if err != nil {
		return purged, 0, err
	}
	notices, err = a.Service.NotifyExpiry(ctx)
	return purged, notices, err
}

// runLifecycle runs RunLifecycle at start and every lifecycleInterval: the
// work is found in the database, so it survives restarts, and each item
// is done once even with several replicas (see vault.PurgeDueTrash).
func runLifecycle(ctx context.Context, a *App, log *slog.Logger) {
	t := time.NewTicker(lifecycleInterval)
	defer t.Stop()
	for {
		purged, notices, err := a.RunLifecycle(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("credential lifecycle: purge or expiry notices failed; retrying later", "err", err.Error())
		}
		if purged > 0 || notices > 0 {
			log.Info("credential lifecycle", "purged", purged, "expiry_notices", notices)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
