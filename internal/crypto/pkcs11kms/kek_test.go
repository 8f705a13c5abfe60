//go:build cgo

package pkcs11kms_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/credvault/credvault/internal/crypto/pkcs11kms"
	"github.com/credvault/credvault/internal/crypto/pkcs11kms/softhsmtest"
)

func open(t *testing.T, uri string, gen bool) (*pkcs11kms.KEK, error) {
	t.Helper()
	u, err := pkcs11kms.ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	k, err := pkcs11kms.Open(context.Background(), u, pkcs11kms.Options{Generate: gen})
	if err == nil {
		t.Cleanup(func() { k.Close() })
	}
	return k, err
}

func TestKEK(t *testing.T) {
	tk := softhsmtest.New(t, "kek-test")

	t.Run("err/missing-key-creates-nothing", func(t *testing.T) {
		_, err := open(t, tk.URI("root"), false)
		if !errors.Is(err, pkcs11kms.ErrKeyNotFound) {
			t.Fatalf("err = %v, want ErrKeyNotFound", err)
		}
		_, err = open(t, tk.URI("root"), false)
		if !errors.Is(err, pkcs11kms.ErrKeyNotFound) {
			t.Fatalf("second open: err = %v, want ErrKeyNotFound (the first must not have created it)", err)
		}
	})

	k, err := open(t, tk.URI("root"), true)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Generated() {
		t.Fatal("Generated() = false for a new key")
	}

	t.Run("ok/roundtrip-and-binding", func(t *testing.T) {
		pt := []byte("data keyset bytes")
		ct, err := k.Encrypt(pt, []byte("ad"))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(ct, pt) {
			t.Fatal("ciphertext contains the plaintext")
		}
		got, err := k.Decrypt(ct, []byte("ad"))
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Decrypt = %q, %v", got, err)
		}
		if _, err := k.Decrypt(ct, []byte("other ad")); !errors.Is(err, pkcs11kms.ErrOpen) {
			t.Fatalf("other associated data: err = %v, want ErrOpen", err)
		}
		for i := range ct {
			bad := bytes.Clone(ct)
			bad[i] ^= 1
			if _, err := k.Decrypt(bad, []byte("ad")); err == nil {
				t.Fatalf("a flipped byte %d opened", i)
			}
		}
	})

	t.Run("ok/key-is-sensitive-and-not-extractable", func(t *testing.T) {
		p := pkcs11.New(tk.Module)
		// Already initialised by the KEK in this process.
		_ = p.Initialize()
		slots, err := p.GetSlotList(true)
		if err != nil {
			t.Fatal(err)
		}
		var sh pkcs11.SessionHandle
		for _, s := range slots {
			if ti, _ := p.GetTokenInfo(s); strings.TrimSpace(ti.Label) == tk.Label {
				if sh, err = p.OpenSession(s, pkcs11.CKF_SERIAL_SESSION); err != nil {
					t.Fatal(err)
				}
			}
		}
		defer p.CloseSession(sh)
		_ = p.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, "root")})
		objs, _, err := p.FindObjects(sh, 2)
		_ = p.FindObjectsFinal(sh)
		if err != nil || len(objs) != 1 {
			t.Fatalf("find: %v %v", objs, err)
		}
		attrs, err := p.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil)})
		if err != nil {
			t.Fatal(err)
		}
		if attrs[0].Value[0] != 1 || attrs[1].Value[0] != 0 || attrs[2].Value[0] != 1 {
			t.Fatalf("sensitive/extractable/token = %v %v %v", attrs[0].Value, attrs[1].Value, attrs[2].Value)
		}
		if _, err := p.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); err == nil {
			t.Fatal("the token revealed CKA_VALUE of the root key")
		}
	})

	t.Run("ok/concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for range 16 {
			wg.Go(func() {
				for range 20 {
					ct, err := k.Encrypt([]byte("x"), nil)
					if err == nil {
						_, err = k.Decrypt(ct, nil)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})

	t.Run("ok/reconnects-after-token-error", func(t *testing.T) {
		ct, err := k.Encrypt([]byte("before"), nil)
		if err != nil {
			t.Fatal(err)
		}
		// Close every session of the application on the token (this also
		// logs it out): the pooled sessions are now invalid.
		p := pkcs11.New(tk.Module)
		_ = p.Initialize()
		slots, _ := p.GetSlotList(true)
		for _, s := range slots {
			if ti, _ := p.GetTokenInfo(s); strings.TrimSpace(ti.Label) == tk.Label {
				if err := p.CloseAllSessions(s); err != nil {
					t.Fatal(err)
				}
			}
		}
		got, err := k.Decrypt(ct, nil)
		if err != nil || string(got) != "before" {
			t.Fatalf("after the sessions were closed: %q, %v", got, err)
		}
	})

	t.Run("err/wrong-pin", func(t *testing.T) {
		// Log out first: PKCS#11 login state is per process and token, and a
		// second login would not check the PIN.
		k.Close()
		_, err := open(t, tk.URIWithPIN("root", "0000"), false)
		if !errors.Is(err, pkcs11kms.ErrWrongPIN) {
			t.Fatalf("err = %v, want ErrWrongPIN", err)
		}
		if strings.Contains(err.Error(), "0000") {
			t.Fatalf("error leaks the PIN: %v", err)
		}
	})

	t.Run("err/no-token", func(t *testing.T) {
		_, err := open(t, strings.Replace(tk.URI("root"), "token="+tk.Label, "token=absent", 1), false)
		if !errors.Is(err, pkcs11kms.ErrTokenNotFound) {
			t.Fatalf("err = %v, want ErrTokenNotFound", err)
		}
	})

	t.Run("err/no-library", func(t *testing.T) {
		u, _ := pkcs11kms.ParseURI("pkcs11:token=t;object=k?module-path=/nonexistent/libpkcs11.so&pin-value=1")
		if _, err := pkcs11kms.Open(context.Background(), u, pkcs11kms.Options{}); err == nil || !strings.Contains(err.Error(), "cannot load") {
			t.Fatalf("err = %v", err)
		}
	})
}
