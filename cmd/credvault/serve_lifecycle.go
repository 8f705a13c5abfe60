package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/vault"
	"github.com/credvault/credvault/internal/webhook"
)

// lifecycleFlags are serve's credential-lifecycle flags (issue 15).
type lifecycleFlags struct {
	deleteRetention  time.Duration
	allowHosts       string
	webhookTimeout   time.Duration
	webhookRetryBase time.Duration
}

func (l *lifecycleFlags) register(f *pflag.FlagSet, o *options) {
	f.DurationVar(&l.deleteRetention, "delete-retention", o.envDuration("CREDVAULT_DELETE_RETENTION", vault.DefaultDeleteRetention),
		"how long a deleted credential stays recoverable (GET /v5/trash/credentials) before it and its versions are purged ($CREDVAULT_DELETE_RETENTION)")
	f.StringVar(&l.allowHosts, "webhook-allow-hosts", o.env("CREDVAULT_WEBHOOK_ALLOW_HOSTS", ""),
		"comma-separated hosts or CIDRs webhooks may be delivered to although they are loopback, private or link-local addresses (refused by default) ($CREDVAULT_WEBHOOK_ALLOW_HOSTS)")
	f.DurationVar(&l.webhookTimeout, "webhook-timeout", o.envDuration("CREDVAULT_WEBHOOK_TIMEOUT", webhook.DefaultTimeout),
		"time allowed for one webhook delivery attempt ($CREDVAULT_WEBHOOK_TIMEOUT)")
	f.DurationVar(&l.webhookRetryBase, "webhook-retry-base", o.envDuration("CREDVAULT_WEBHOOK_RETRY_BASE", webhook.DefaultRetryBase),
		"delay before the first retry of a failed webhook delivery; each next retry waits twice as long (at most 4h), for 25h ($CREDVAULT_WEBHOOK_RETRY_BASE)")
}

func (l *lifecycleFlags) apply(cfg *app.Config) error {
	if l.deleteRetention <= 0 {
		return fmt.Errorf("--delete-retention (%s) must be positive", l.deleteRetention)
	}
	if l.webhookTimeout <= 0 || l.webhookRetryBase <= 0 {
		return fmt.Errorf("--webhook-timeout and --webhook-retry-base must be positive")
	}
	cfg.Lifecycle.DeleteRetention = l.deleteRetention
	cfg.Lifecycle.WebhookTimeout, cfg.Lifecycle.WebhookRetryBase = l.webhookTimeout, l.webhookRetryBase
	for _, h := range strings.Split(l.allowHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.Lifecycle.WebhookAllowHosts = append(cfg.Lifecycle.WebhookAllowHosts, h)
		}
	}
	return nil
}
