package keymat_test

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/credvault/credvault/internal/keymat"
)

func TestGenerateSignVerify(t *testing.T) {
	d := sha256.Sum256([]byte("m"))
	for _, c := range []struct {
		typ   string
		size  int
		curve string
		pad   keymat.Padding
	}{{"RSA", 2048, "", keymat.PKCS1v15}, {"RSA", 2048, "", keymat.PSS}, {"EC", 0, "NistP256", 0}, {"EC", 0, "NistP521", 0}} {
		m, err := keymat.Generate(c.typ, c.size, c.curve)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x509.ParsePKCS8PrivateKey(m.Secret); err != nil || m.PublicOnly || m.PubKey == nil {
			t.Fatalf("%s: material %v", c.typ, err)
		}
		sig, err := keymat.Sign(c.typ, m.Secret, crypto.SHA256, d[:], c.pad, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := keymat.Verify(m.PubKey, crypto.SHA256, d[:], sig, c.pad, 0); !ok || err != nil {
			t.Fatalf("%s: verify %v %v", c.typ, ok, err)
		}
		sig[len(sig)-1] ^= 1
		if ok, _ := keymat.Verify(m.PubKey, crypto.SHA256, d[:], sig, c.pad, 0); ok {
			t.Fatalf("%s: corrupted signature verified", c.typ)
		}
		// Re-import round trip keeps the key.
		im, err := keymat.Import(c.typ, m.Secret)
		if err != nil || string(im.PubKey) != string(m.PubKey) {
			t.Fatalf("%s: re-import %v", c.typ, err)
		}
	}
}

func TestInputErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
	}{
		{"aes-size", func() error { _, err := keymat.Generate("AES", 100, ""); return err }()},
		{"rsa-size", func() error { _, err := keymat.Generate("RSA", 1024, ""); return err }()},
		{"curve", func() error { _, err := keymat.Generate("EC", 0, "Ed25519"); return err }()},
		{"secret-generate", func() error { _, err := keymat.Generate("SECRET", 256, ""); return err }()},
		{"rsa-junk", func() error { _, err := keymat.Import("RSA", []byte("junk")); return err }()},
		{"cert-junk", func() error { _, err := keymat.Import("CERTIFICATE", []byte("junk")); return err }()},
		{"empty", func() error { _, err := keymat.Import("SECRET", nil); return err }()},
		{"hash", func() error { _, err := keymat.Hash("MD5"); return err }()},
	} {
		var ke *keymat.Error
		if !errors.As(c.err, &ke) {
			t.Errorf("%s: want a *keymat.Error, got %v", c.name, c.err)
		}
	}
}
