package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// startServe runs `credvault serve` in-process (run, as main does) on a
// free port and returns its address once it listens.
func startServe(t *testing.T, env map[string]string, args ...string) (addr string, stderr *strings.Builder, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr = &strings.Builder{}
	done := make(chan error, 1)
	getenv := func(k string) string { return env[k] }
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, args...), getenv, pw, stderr)
		pw.Close()
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(20 * time.Second)
	for addr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				cancel()
				t.Fatalf("serve exited: %v; stderr: %s", <-done, stderr)
			}
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "credvault listening" {
				addr = m["addr"].(string)
			}
		case <-deadline:
			cancel()
			t.Fatal("serve did not start listening")
		}
	}
	go func() {
		for range lines {
		}
	}()
	return addr, stderr, func() error { cancel(); return <-done }
}

func TestServeTLSSelfSigned(t *testing.T) {
	addr, stderr, stop := startServe(t, nil, "--tls-self-signed")
	if !strings.Contains(stderr.String(), "https://") {
		t.Errorf("bootstrap banner does not show the https address")
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("https: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("status %d, tls %+v", resp.StatusCode, resp.TLS)
	}
	// TLS 1.1 and older are refused.
	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get("https://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("a TLS 1.1 client was served")
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

func TestServeBootstrapKeyFromEnv(t *testing.T) {
	key := vault.NewAPIKeySecret(vault.NewID()) // the form a supplied key must have
	addr, stderr, stop := startServe(t, map[string]string{"CREDVAULT_BOOTSTRAP_API_KEY": key})
	defer stop()
	if strings.Contains(stderr.String(), key) {
		t.Errorf("the supplied bootstrap key was printed")
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/v5/credentials", nil)
	req.Header.Set("x-api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("supplied bootstrap key: %d", resp.StatusCode)
	}
}

// TestServeDBTimeoutBelowWriteTimeout: a database deadline at or above the
// write timeout would let the connection be cut before the 503 is written.
func TestServeDBTimeoutBelowWriteTimeout(t *testing.T) {
	for _, args := range [][]string{
		{"--db-timeout", "30s", "--write-timeout", "30s"},
		{"--db-timeout", "0s"},
	} {
		err := run(context.Background(), append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, args...), func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--db-timeout") {
			t.Errorf("serve %v: %v, want an error about --db-timeout", args, err)
		}
	}
}
