package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestGracefulShutdown sends SIGTERM while a slow request is in flight: a
// list of many large credentials whose response the client reads slowly.
// The request completes with 200 and the whole body, and the process exits
// 0.
func TestGracefulShutdown(t *testing.T) {
	wantEngine(t, "sqlite")
	key := newBootstrapKey()
	p := start(t, "server", server{DatabaseURL: newDatabase(t, "sqlite"), BootstrapKey: key})
	c := newClient(p.URL, key)

	// 1000 credentials with 16 KiB descriptions: a ~16 MB first page with
	// limit=1000, far more than the socket buffers hold.
	const n = 1000
	desc := strings.Repeat("d", 16<<10)
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range jobs {
				c.must(t, 200, "POST", "/v5/credentials", map[string]any{"type": "key", "name": fmt.Sprintf("big-%04d", i), "payload": "p", "description": desc})
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	// Start the list and read only its first bytes: the handler is now
	// writing the response and blocks on the full socket.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/v5/credentials?limit=1000", nil)
	req.Header.Set("x-api-key", key)
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("list: %d", resp.StatusCode)
	}
	br := bufio.NewReaderSize(resp.Body, 4096)
	first := make([]byte, 1024)
	if _, err := io.ReadFull(br, first); err != nil {
		t.Fatalf("reading the start of the list: %v", err)
	}

	// SIGTERM now, while the response is in flight.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Read the rest slowly (small chunks, short pauses) so that the
	// server's shutdown really has to wait for this request.
	var body []byte
	body = append(body, first...)
	buf := make([]byte, 256<<10)
	t0 := time.Now()
	for {
		k, err := br.Read(buf)
		body = append(body, buf[:k]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the in-flight list broke off after %d bytes: %v", len(body), err)
		}
		if time.Since(t0) < 500*time.Millisecond {
			time.Sleep(10 * time.Millisecond)
		}
	}
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("the in-flight list is not complete JSON (%d bytes): %v", len(body), err)
	}
	if len(page.Items) != n {
		t.Fatalf("the in-flight list has %d items, want %d", len(page.Items), n)
	}
	code, err := p.wait(exitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0\nstderr: %s", code, p.stderr.String())
	}
	t.Logf("SIGTERM during a %d-byte list: the response completed (%d items, read over %s) and the process exited 0",
		len(body), len(page.Items), time.Since(t0).Round(time.Millisecond))
	if !strings.Contains(p.stdout.String(), "shutting down") {
		t.Errorf("no shutdown log line")
	}
}
