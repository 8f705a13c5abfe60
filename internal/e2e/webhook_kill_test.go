package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/webhook"
)

// TestWebhookSurvivesKill: the event of a committed change is delivered
// even when the server is SIGKILLed between the change and the delivery
// (here: while the first attempt is in flight); the restarted server sends
// it, with the same event id, once its lease ends. Also for the replicas
// case: a delivery is in the database (outbox), not in a process.
func TestWebhookSurvivesKill(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			wantEngine(t, engine)
			runWebhookKill(t, engine)
		})
	}
}

func runWebhookKill(t *testing.T, engine string) {
	type got struct {
		sig  string
		body []byte
	}
	var (
		mu       sync.Mutex
		received []got
	)
	first := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hang := false
		once.Do(func() { hang = true })
		if hang {
			close(first)
			<-release // the server is killed while this attempt waits
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		received = append(received, got{r.Header.Get(webhook.SignatureHeader), b})
		mu.Unlock()
	}))
	defer rcv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	srv := server{DatabaseURL: newDatabase(t, engine), BootstrapKey: newBootstrapKey(),
		Args: []string{"--webhook-allow-hosts", "127.0.0.1", "--webhook-timeout", "2s", "--webhook-retry-base", "1s"}}
	srv.DataDir = t.TempDir()
	p := start(t, engine+"-1", srv)
	c := newClient(p.URL, srv.BootstrapKey)
	h := c.must(t, 200, "POST", "/v5/webhooks", map[string]any{"url": rcv.URL + "/hook", "events": []string{"credential.created"}}).obj()
	secret, _ := h["secret"].(string)
	const payload = "e2e-webhook-payload-canary"
	id := c.create(t, "killed-before-delivery", payload)

	select {
	case <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("the first delivery attempt never came")
	}
	p.kill()
	close(release)

	p2 := start(t, engine+"-2", srv)
	_ = p2
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event was never delivered after the restart")
		}
		time.Sleep(100 * time.Millisecond) // polling an external process, not timing a result
	}
	mu.Lock()
	defer mu.Unlock()
	if len(received) != 1 {
		t.Fatalf("%d deliveries, want 1", len(received))
	}
	r := received[0]
	if err := webhook.Verify([]byte(secret), r.sig, r.body, time.Now(), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			ObjectID string `json:"object_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &ev); err != nil || ev.Type != "credential.created" || ev.Data.ObjectID != id {
		t.Fatalf("event %s (%v)", r.body, err)
	}
	if strings.Contains(string(r.body), payload) {
		t.Fatal("the event carries the payload")
	}
}
