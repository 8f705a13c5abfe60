package keymat

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testdata/pss-mgf1-sha1.* is a test-only RSA key and OpenSSL's PSS
// signature of "hello, world" with SHA-256 and MGF1-SHA-1 (salt 32),
// made with:
//
//	openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_mgf1_md:sha1 \
//	  -sigopt rsa_pss_saltlen:32 -sign pss-mgf1-sha1.key.pem msg
func opensslVector(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	b, err := os.ReadFile("testdata/pss-mgf1-sha1.key.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.ReadFile("testdata/pss-mgf1-sha1.sig.b64")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(s)))
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey), sig
}

func TestPSS_MGF1HashIndependentOfMessageHash(t *testing.T) {
	key, opensslSig := opensslVector(t)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	priv, _ := x509.MarshalPKCS8PrivateKey(key)
	d := sha256.Sum256([]byte("hello, world"))

	t.Run("verifies OpenSSL's signature", func(t *testing.T) {
		if ok, err := Verify(pub, crypto.SHA256, d[:], opensslSig, PSS, crypto.SHA1); !ok || err != nil {
			t.Fatalf("OpenSSL's SHA-256/MGF1-SHA-1 signature: ok=%v err=%v", ok, err)
		}
		// The MGF1 hash matters: the same signature is not valid with MGF1-SHA-256.
		if ok, _ := Verify(pub, crypto.SHA256, d[:], opensslSig, PSS, crypto.SHA256); ok {
			t.Fatal("verified with the wrong MGF1 hash")
		}
		bad := append([]byte(nil), opensslSig...)
		bad[10] ^= 1
		if ok, _ := Verify(pub, crypto.SHA256, d[:], bad, PSS, crypto.SHA1); ok {
			t.Fatal("verified a flipped signature")
		}
	})

	t.Run("own encoder agrees with crypto/rsa when the hashes are equal", func(t *testing.T) {
		// signPSSMGF is the code path for differing hashes; with equal
		// hashes crypto/rsa can check its output independently.
		sig, err := signPSSMGF(key, crypto.SHA256, d[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPSS(&key.PublicKey, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}); err != nil {
			t.Fatalf("crypto/rsa rejects our PSS encoding: %v", err)
		}
		std, _ := rsa.SignPSS(rand.Reader, key, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if !verifyPSSMGF(&key.PublicKey, crypto.SHA256, d[:], std, crypto.SHA256) {
			t.Fatal("our verifier rejects crypto/rsa's PSS signature")
		}
	})

	t.Run("signs SHA-256 with MGF1-SHA-1", func(t *testing.T) {
		sig, err := Sign(RSA, priv, crypto.SHA256, d[:], PSS, crypto.SHA1)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := Verify(pub, crypto.SHA256, d[:], sig, PSS, crypto.SHA1); !ok {
			t.Fatal("own signature does not verify")
		}
		if rsa.VerifyPSS(&key.PublicKey, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil {
			t.Fatal("MGF1 hash ignored: the signature verifies with MGF1-SHA-256")
		}
		// Checked by OpenSSL too, where it is installed.
		openssl, err := exec.LookPath("openssl")
		if err != nil {
			t.Skip("openssl not installed; the OpenSSL vector above still checks the verifier")
		}
		dir := t.TempDir()
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
		for name, b := range map[string][]byte{"pub.pem": pubPEM, "sig": sig, "msg": []byte("hello, world")} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command(openssl, "dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_mgf1_md:sha1", "-sigopt", "rsa_pss_saltlen:-2",
			"-verify", filepath.Join(dir, "pub.pem"), "-signature", filepath.Join(dir, "sig"), filepath.Join(dir, "msg")).CombinedOutput()
		if err != nil {
			t.Fatalf("OpenSSL rejects the signature: %v: %s", err, out)
		}
	})
}
