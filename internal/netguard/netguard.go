// Package netguard keeps outbound HTTP requests that a user's input
// directs (OIDC issuers, webhooks) away from the server's own network: a
// dialer that refuses loopback, private, link-local and other non-public
// addresses unless the operator allowed them. The check runs on the
// address actually connected to (net.Dialer.Control), after DNS
// resolution, so a name that resolves to 127.0.0.1 — or rebinds to it
// between two lookups — is refused as well.
package netguard

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrBlocked is returned (wrapped) when a connection is refused because of
// its destination address.
var ErrBlocked = errors.New("destination address is not allowed")

// Allow is a list of operator-allowed destinations: IP prefixes, and host
// names that are allowed whatever they resolve to.
type Allow struct {
	Prefixes []netip.Prefix
	Hosts    []string // lower case, without port
}

// ParseAllow parses a comma-separated list of hosts, IP addresses and
// CIDR prefixes ("10.0.0.0/8, vault.internal, 127.0.0.1").
func ParseAllow(s string) (Allow, error) {
	return ParseAllowList(strings.Split(s, ","))
}

// ParseAllowList parses a list of hosts, IP addresses and CIDR prefixes,
// one an entry (empty entries are skipped).
func ParseAllowList(list []string) (Allow, error) {
	var a Allow
	for _, f := range list {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
		case strings.Contains(f, "/"):
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return Allow{}, fmt.Errorf("allowed hosts: %q is not a CIDR prefix: %w", f, err)
			}
			a.Prefixes = append(a.Prefixes, p.Masked())
		default:
			if ip, err := netip.ParseAddr(strings.Trim(f, "[]")); err == nil {
				a.Prefixes = append(a.Prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
			a.Hosts = append(a.Hosts, strings.ToLower(strings.TrimSuffix(f, ".")))
		}
	}
	return a, nil
}

func (a Allow) hostAllowed(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, h := range a.Hosts {
		if h == host {
			return true
		}
	}
	return false
}

func (a Allow) addrAllowed(ip netip.Addr) bool {
	for _, p := range a.Prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Public reports whether ip is a globally routable unicast address: not
// loopback, private (RFC 1918, RFC 4193), link-local (this includes cloud
// metadata endpoints such as 169.254.169.254), CGNAT, multicast, broadcast,
// unspecified, documentation, NAT64, 6to4 or discard-only.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range reserved {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // CGNAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"), // documentation (TEST-NET-1..3)
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64 can reach any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"), // 6to4 embeds an IPv4 address
	netip.MustParsePrefix("100::/64"),  // discard-only
}

// Dialer returns a dialer that connects only to public addresses, to
// addresses in a's prefixes, or (whatever the address) to hosts named in
// a.Hosts.
func (a Allow) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s", ErrBlocked, address)
		}
		ip := ap.Addr().Unmap()
		if Public(ip) || a.addrAllowed(ip) {
			return nil
		}
		return fmt.Errorf("%w: %s is not a public address (allow it with the operator's allowed-hosts setting)", ErrBlocked, ip)
	}}
}

// Client returns an HTTP client whose connections go through a's dialer
// (host names in a.Hosts bypass the address check), with TLS verified
// against the system roots (or roots, if not nil), no proxy from the
// environment, at most 3 redirects, and timeout over the whole request.
func (a Allow) Client(timeout time.Duration, roots *x509.CertPool) *http.Client {
	guarded := a.Dialer(timeout)
	open := &net.Dialer{Timeout: timeout}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			if a.hostAllowed(host) {
				return open.DialContext(ctx, network, addr)
			}
			return guarded.DialContext(ctx, network, addr)
		},
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          10,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return errors.New("too many redirects")
		}
		return nil
	}}
}
