package webhook

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/netguard"
)

// TestGuard: non-public addresses are refused at connect time, also when a
// name resolves to one, unless the host or its network is allowed.
func TestGuard(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
		"::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "224.0.0.1", "255.255.255.255", "64:ff9b::a00:1"} {
		if netguard.Public(netip.MustParseAddr(s)) {
			t.Errorf("%s allowed", s)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"} {
		if !netguard.Public(netip.MustParseAddr(s)) {
			t.Errorf("%s refused", s)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	get := func(allow []string, host string) error {
		c, err := newClient(allow, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if err := get(nil, host); !errors.Is(err, netguard.ErrBlocked) {
			t.Errorf("dial %s: %v, want ErrBlocked", host, err)
		}
	}
	for _, allow := range [][]string{{"127.0.0.0/8"}, {"127.0.0.1"}, {"localhost"}} {
		host := "localhost"
		if allow[0] != "localhost" {
			host = "127.0.0.1"
		}
		if err := get(allow, host); err != nil {
			t.Errorf("allow %v: dial %s: %v", allow, host, err)
		}
	}
	if _, err := newClient([]string{"10.0.0.0/33"}, time.Second); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}

// TestSignature: Sign and Verify agree; a changed body, secret or an old
// timestamp fails.
func TestSignature(t *testing.T) {
	now := time.Unix(1700000000, 0)
	body := []byte(`{"id":"e1"}`)
	h := Sign([]byte("s"), now, body)
	if h[:13] != "t=1700000000," {
		t.Fatalf("header %q", h)
	}
	if err := Verify([]byte("s"), h, body, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		secret, body string
		at           time.Time
	}{{"x", string(body), now}, {"s", `{"id":"e2"}`, now}, {"s", string(body), now.Add(time.Hour)}} {
		if Verify([]byte(c.secret), h, []byte(c.body), c.at, time.Minute) == nil {
			t.Errorf("verified %+v", c)
		}
	}
	if (&Worker{opts: Options{RetryBase: time.Second}}).backoff(40) != MaxBackoff {
		t.Error("backoff is not capped")
	}
}
