package main

import (
	"crypto/x509"
	"fmt"
	"os"

	"github.com/credvault/credvault/internal/netguard"
	"github.com/credvault/credvault/internal/oidc"
)

// oidcOptions turns --oidc-allow-hosts and --oidc-ca-file into the
// verifier's options.
func oidcOptions(allowHosts, caFile string) (oidc.Options, error) {
	allow, err := netguard.ParseAllow(allowHosts)
	if err != nil {
		return oidc.Options{}, fmt.Errorf("--oidc-allow-hosts: %w", err)
	}
	o := oidc.Options{Allow: allow}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return oidc.Options{}, fmt.Errorf("--oidc-ca-file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return oidc.Options{}, fmt.Errorf("--oidc-ca-file: %s holds no PEM certificate", caFile)
		}
		o.RootCAs = pool
	}
	return o, nil
}
