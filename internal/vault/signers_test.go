package vault

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"
)

// TestSigners: a key is opened and parsed once per sealed ciphertext and
// associated data; another ciphertext or the same ciphertext under another
// object's associated data opens again, a failed open caches nothing, the
// plaintext handed over is cleared, and the cache stays bounded.
func TestSigners(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	var c signers
	opens := 0
	var handed [][]byte
	open := func() ([]byte, error) {
		opens++
		b := append([]byte(nil), der...)
		handed = append(handed, b)
		return b, nil
	}
	k1, err := c.signer([]byte("ct1"), []byte("ad1"), open)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Public().(*ecdsa.PublicKey).Equal(&priv.PublicKey) {
		t.Fatal("parsed another key")
	}
	if k2, _ := c.signer([]byte("ct1"), []byte("ad1"), open); k2 != k1 || opens != 1 {
		t.Fatalf("second signature opened the key again (opens=%d)", opens)
	}
	for _, miss := range [][2]string{{"ct2", "ad1"}, {"ct1", "ad2"}, {"1", "ad1ct"}} {
		before := opens
		if _, err := c.signer([]byte(miss[0]), []byte(miss[1]), open); err != nil || opens != before+1 {
			t.Fatalf("%q under %q answered from the cache (opens %d → %d, %v)", miss[0], miss[1], before, opens, err)
		}
	}
	for _, b := range handed {
		for _, x := range b {
			if x != 0 {
				t.Fatal("the opened PKCS #8 key was not cleared")
			}
		}
	}
	bad := errors.New("does not open")
	for range 2 {
		if _, err := c.signer([]byte("tampered"), []byte("ad1"), func() ([]byte, error) { return nil, bad }); !errors.Is(err, bad) {
			t.Fatalf("failed open: %v", err)
		}
	}
	if _, err := c.signer([]byte("garbage"), []byte("ad1"), func() ([]byte, error) { return []byte("not a key"), nil }); err == nil {
		t.Fatal("unparsable key material accepted")
	}
	for i := range maxSigners + 10 {
		if _, err := c.signer([]byte{byte(i), byte(i >> 8)}, []byte("bound"), open); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.m); n > maxSigners {
		t.Fatalf("%d keys kept, bound %d", n, maxSigners)
	}
}
