package keymat_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"strings"
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

// TestSignWith_KeyTooSmallIsTheRequests: an RSA key too small for PSS with
// the digest asked for is a request error (400 at the API), not a server
// error, whether the MGF1 hash is the digest's or another.
func TestSignWith_KeyTooSmallIsTheRequests(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha512.Sum512([]byte("m"))
	for _, mgf := range []crypto.Hash{crypto.SHA512, crypto.SHA1} {
		_, err := keymat.SignWith(key, crypto.SHA512, digest[:], keymat.PSS, mgf)
		var ke *keymat.Error
		if !errors.As(err, &ke) || !strings.Contains(ke.Msg, "too small for PSS") {
			t.Errorf("MGF1 %v: %v, want a *keymat.Error saying the key is too small", mgf, err)
		}
	}
	if _, err := keymat.SignWith(key, crypto.SHA512, digest[:], keymat.PKCS1v15, 0); err != nil {
		t.Errorf("PKCS#1 v1.5 fits a 1024-bit key: %v", err)
	}
}
