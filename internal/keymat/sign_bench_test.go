package keymat_test

import (
	"crypto"
	"crypto/sha256"
	"testing"

	"github.com/credvault/credvault/internal/keymat"
)

// BenchmarkSign: a signature from the stored PKCS #8 key (parsed every
// time, as every DSM sign did before the vault kept parsed keys) against
// one with the key parsed once (SignWith, what a sign costs now).
func BenchmarkSign(b *testing.B) {
	d := sha256.Sum256([]byte("m"))
	for _, c := range []struct {
		name, typ, curve string
		size             int
	}{{"EC-P256", "EC", "NistP256", 0}, {"RSA-2048", "RSA", "", 2048}} {
		m, err := keymat.Generate(c.typ, c.size, c.curve)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/parse-each-time", func(b *testing.B) {
			for b.Loop() {
				if _, err := keymat.Sign(c.typ, m.Secret, crypto.SHA256, d[:], keymat.PKCS1v15, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/parsed-once", func(b *testing.B) {
			k, err := keymat.ParseSigner(m.Secret)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := keymat.SignWith(k, crypto.SHA256, d[:], keymat.PKCS1v15, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
