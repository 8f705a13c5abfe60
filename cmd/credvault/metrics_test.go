package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeMetricsAddr: --metrics-addr serves /metrics on its own listener
// (and only there); CREDVAULT_METRICS_TOKEN protects it.
func TestServeMetricsAddr(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	env := map[string]string{"CREDVAULT_METRICS_TOKEN": "scrape-token-8c1d"}
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--data-dir", t.TempDir()},
			func(k string) string { return env[k] }, pw, &strings.Builder{})
		pw.Close()
	}()
	var addr, maddr string
	sc := bufio.NewScanner(pr)
	deadline := time.AfterFunc(20*time.Second, func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	for addr == "" && sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		switch m["msg"] {
		case "metrics listening":
			maddr, _ = m["metrics_addr"].(string)
		case "credvault listening":
			addr, _ = m["addr"].(string)
		}
	}
	deadline.Stop()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	if addr == "" || maddr == "" {
		t.Fatalf("listen addresses not logged: api %q metrics %q", addr, maddr)
	}
	get := func(url, token string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get("http://"+addr+"/metrics", "scrape-token-8c1d"); s != 404 {
		t.Errorf("/metrics on the API address: want 404, got %d", s)
	}
	if s := get("http://"+maddr+"/metrics", ""); s != 401 {
		t.Errorf("/metrics without the token: want 401, got %d", s)
	}
	if s := get("http://"+maddr+"/metrics", "scrape-token-8c1d"); s != 200 {
		t.Errorf("/metrics with the token: want 200, got %d", s)
	}
	if s := get("http://"+maddr+"/v5/credentials", "scrape-token-8c1d"); s != 404 {
		t.Errorf("the metrics listener serves the API: %d", s)
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := parsePrefixes(" 10.0.0.0/8, 192.168.1.7 ,::1, 2001:db8::/32,")
	if err != nil {
		t.Fatal(err)
	}
	want := "[10.0.0.0/8 192.168.1.7/32 ::1/128 2001:db8::/32]"
	if s := fmt.Sprint(got); s != want {
		t.Errorf("parsePrefixes = %s, want %s", s, want)
	}
	if _, err := parsePrefixes("10.0.0.0/8,proxy.local"); err == nil {
		t.Error("a host name was accepted as a trusted proxy")
	}
}
