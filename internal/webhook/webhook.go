// Package webhook delivers credvault's change events to the webhooks
// accounts register: it takes due deliveries from the outbox (written in
// the transaction of each change, see vault.TxEvents), leases them so that
// one replica sends each, POSTs the event signed with the webhook's secret,
// and retries failures with exponential backoff for at least a day.
//
// Destinations are checked at connect time, on the address actually
// dialled (net.Dialer.Control), for every connection, including those a
// redirect or a changed DNS answer leads to: loopback, private, link-local
// and other non-public addresses are refused unless the operator allows
// the host or its network (Options.AllowHosts).
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/credvault/credvault/internal/netguard"
	"github.com/credvault/credvault/internal/vault"
)

// SignatureHeader carries "t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
const SignatureHeader = "credvault-signature"

// Defaults.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultRetryBase = 30 * time.Second
	MaxBackoff       = 4 * time.Hour
	// DefaultRetryWindow is how long a failing delivery is retried.
	DefaultRetryWindow = 25 * time.Hour
	pollInterval       = time.Second
	batchSize          = 16
)

// Sign returns the signature header value of body at t under secret.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

// mac is the HMAC-SHA256 under secret of "<ts>.<body>", what a v1
// signature signs.
func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a signature header against body and secret, and that its
// time is within tolerance of now (receivers should refuse old replays).
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("webhook signature: no valid t=")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhook signature: timestamp outside the tolerance")
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		got, err := hex.DecodeString(s)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("webhook signature: no v1 signature matches")
}

// Options configures a Worker.
type Options struct {
	// Service opens the webhooks' signing secrets; Store holds the outbox.
	Service *vault.Service
	Store   vault.DeliveryStore
	// Wake, if set, wakes the worker when deliveries were committed (the
	// store's sqlstore.Options.OnDeliveries sends on it; a buffer of 1 is
	// enough). Kick does the same. Between wake-ups the worker reads the
	// outbox every pollInterval (deliveries written by other replicas,
	// retries that fall due), not after every change.
	Wake   chan struct{}
	Logger *slog.Logger
	Now    func() time.Time // time.Now if nil
	// Timeout bounds each attempt (connect, TLS, headers, body).
	Timeout time.Duration
	// RetryBase is the first retry's delay; each next one doubles, up to
	// MaxBackoff. RetryWindow is how long after the event a failing
	// delivery is retried before it is marked failed.
	RetryBase   time.Duration
	RetryWindow time.Duration
	// AllowHosts lists hosts (names or IP addresses) and CIDRs that may be
	// delivered to even though they are not public addresses.
	AllowHosts []string
}

// Worker sends deliveries.
type Worker struct {
	opts   Options
	store  vault.DeliveryStore
	client *http.Client
	kick   chan struct{}
	log    *slog.Logger
}

// New returns a worker; Run starts it.
func New(opts Options) (*Worker, error) {
	if opts.Service == nil || opts.Store == nil {
		return nil, errors.New("webhook worker: Service and Store are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = DefaultRetryBase
	}
	if opts.RetryWindow <= 0 {
		opts.RetryWindow = DefaultRetryWindow
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := newClient(opts.AllowHosts, opts.Timeout)
	if err != nil {
		return nil, err
	}
	kick := opts.Wake
	if kick == nil {
		kick = make(chan struct{}, 1)
	}
	return &Worker{opts: opts, store: opts.Store, client: client, kick: kick, log: opts.Logger}, nil
}

// Kick wakes the worker (new events were committed).
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		for {
			n, err := w.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				w.log.Warn("webhook deliveries: claiming failed; retrying later", "err", err.Error())
			}
			if n < batchSize || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
		}
	}
}

// RunOnce claims one batch of due deliveries and attempts each; it returns
// how many it attempted.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	lease := 2*w.opts.Timeout + time.Second
	ds, err := w.store.ClaimDeliveries(ctx, w.opts.Now(), lease, batchSize)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for i := range ds {
		wg.Add(1)
		go func(d *vault.ClaimedDelivery) {
			defer wg.Done()
			w.attempt(ctx, d)
		}(&ds[i])
	}
	wg.Wait()
	return len(ds), nil
}

func (w *Worker) attempt(ctx context.Context, d *vault.ClaimedDelivery) {
	if d.Expired {
		_ = w.store.FinishDelivery(ctx, d, vault.DeliveryOutcome{At: w.opts.Now(), Status: vault.DeliveryFailed, NextAt: w.opts.Now(), Error: "webhook deleted"})
		return
	}
	code, err := w.send(ctx, d)
	now := w.opts.Now()
	o := vault.DeliveryOutcome{At: now, Code: code, Status: vault.DeliveryDelivered, NextAt: now}
	if err != nil {
		o.Error = err.Error()
		o.Status = vault.DeliveryPending
		o.NextAt = now.Add(w.backoff(d.Attempts + 1))
		if o.NextAt.Sub(d.CreatedAt) > w.opts.RetryWindow {
			o.Status = vault.DeliveryFailed
		}
		w.log.Info("webhook delivery failed", "webhook_id", d.WebhookID, "delivery_id", d.ID, "event_id", d.EventID,
			"attempt", d.Attempts+1, "status", code, "err", o.Error, "next", o.Status)
	}
	if ferr := w.store.FinishDelivery(ctx, d, o); ferr != nil && ctx.Err() == nil {
		w.log.Warn("webhook delivery outcome not recorded; it will be retried when its lease ends", "delivery_id", d.ID, "err", ferr.Error())
	}
}

// backoff is the delay before attempt n+1 after n failed attempts.
func (w *Worker) backoff(n int) time.Duration {
	d := w.opts.RetryBase
	for i := 1; i < n && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

func (w *Worker) send(ctx context.Context, d *vault.ClaimedDelivery) (int, error) {
	secret, err := w.opts.Service.WebhookSecret(d.AccountID, d.WebhookID, d.Secret)
	if err != nil {
		return 0, errors.New("the webhook's signing secret does not open")
	}
	defer clear(secret)
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, errors.New("invalid webhook url")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "credvault-webhook/1")
	req.Header.Set("credvault-event-id", d.EventID)
	req.Header.Set("credvault-delivery-id", d.ID)
	req.Header.Set(SignatureHeader, Sign(secret, w.opts.Now(), d.Body))
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		if errors.Is(err, netguard.ErrBlocked) {
			err = ErrBlocked // names the setting that allows it
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("receiver answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// ErrBlocked is the error of a delivery to a refused address.
var ErrBlocked = errors.New("destination address is not public and not allowed (--webhook-allow-hosts)")

// newClient is the delivery client: its connections, also those a
// redirect (at most 3) or a changed DNS answer leads to, go only to public
// addresses or to the hosts and networks allowHosts lists (netguard).
func newClient(allowHosts []string, timeout time.Duration) (*http.Client, error) {
	allow, err := netguard.ParseAllowList(allowHosts)
	if err != nil {
		return nil, fmt.Errorf("webhook allow list: %w", err)
	}
	return allow.Client(timeout, nil), nil
}
