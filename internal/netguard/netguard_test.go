package netguard

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestDialer_RefusesPrivateUnlessAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	for _, tc := range []struct {
		name, allow, host string
		ok                bool
	}{
		{"err/loopback", "", "127.0.0.1", false},
		{"err/localhost-name", "", "localhost", false},
		{"err/other-prefix", "10.0.0.0/8", "127.0.0.1", false},
		{"ok/allowed-ip", "127.0.0.1", "127.0.0.1", true},
		{"ok/allowed-cidr", "127.0.0.0/8", "localhost", true},
		{"ok/allowed-host", "localhost", "localhost", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAllow(tc.allow)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := a.Client(2*time.Second, nil).Get("http://" + net.JoinHostPort(tc.host, port) + "/")
			if tc.ok {
				if err != nil {
					t.Fatalf("get: %v", err)
				}
				resp.Body.Close()
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatal("connected to a non-public address that was not allowed")
			}
			if !errors.Is(err, ErrBlocked) {
				t.Fatalf("err = %v, want ErrBlocked", err)
			}
		})
	}
}

func TestPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "::1": false,
		"fd00::1": false, "fe80::1": false, "::ffff:127.0.0.1": false, "64:ff9b::a00:1": false,
	} {
		if got := Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}
