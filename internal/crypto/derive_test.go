package crypto_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/testutil/cryptotest"
)

// backupMAC derives the backup MAC key from key keyID of kr (0: its
// primary) and returns the id of the key it used and the subkey.
func backupMAC(t *testing.T, kr *crypto.Keyring, keyID uint32) (uint32, []byte) {
	t.Helper()
	id, k, err := kr.DeriveKey(keyID, crypto.LabelBackupMAC)
	if err != nil {
		t.Fatalf("derive from key %d: %v", keyID, err)
	}
	return id, k
}

func TestDeriveKey(t *testing.T) {
	kr, h := cryptotest.NewKeyring(t)
	id, k1 := backupMAC(t, kr, 0)
	if len(k1) != 32 || id != kr.PrimaryKeyID() {
		t.Fatalf("len %d, id %d (primary %d)", len(k1), id, kr.PrimaryKeyID())
	}
	t.Run("deterministic", func(t *testing.T) {
		// Same keyset, parsed again from its serialisation.
		b, err := crypto.MarshalKEK(h)
		if err != nil {
			t.Fatal(err)
		}
		h2, err := crypto.ParseKEK(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, k2 := backupMAC(t, cryptotest.KeyringOf(t, h2), id); !bytes.Equal(k1, k2) {
			t.Fatal("derived keys differ")
		}
	})
	t.Run("labels-are-independent", func(t *testing.T) {
		_, k2, err := kr.DeriveKey(0, "credvault some other purpose v1")
		if err != nil || bytes.Equal(k1, k2) {
			t.Fatalf("two labels gave the same key (%v)", err)
		}
		if _, _, err := kr.DeriveKey(0, ""); err == nil {
			t.Fatal("empty label accepted")
		}
	})
	t.Run("other-master-key", func(t *testing.T) {
		kro, _ := cryptotest.NewKeyring(t)
		if _, k2 := backupMAC(t, kro, 0); bytes.Equal(k1, k2) {
			t.Fatal("two master keys gave the same subkey")
		}
		if _, _, err := kro.DeriveKey(id, crypto.LabelBackupMAC); !errors.Is(err, crypto.ErrNoSuchKey) {
			t.Fatalf("derive from a key the keyset lacks: %v", err)
		}
	})
	t.Run("survives-rotation-until-retired", func(t *testing.T) {
		nh, newID, err := crypto.AddPrimary(h)
		if err != nil {
			t.Fatal(err)
		}
		krn := cryptotest.KeyringOf(t, nh)
		if _, k2 := backupMAC(t, krn, id); !bytes.Equal(k1, k2) {
			t.Fatal("the old key's subkey changed after rotation")
		}
		if got, k3 := backupMAC(t, krn, 0); got != newID || bytes.Equal(k1, k3) {
			t.Fatalf("primary subkey after rotation: id %d (want %d), same as old: %v", got, newID, bytes.Equal(k1, k3))
		}
		rh, err := crypto.RemoveKeys(nh, []uint32{id})
		if err != nil {
			t.Fatal(err)
		}
		krr := cryptotest.KeyringOf(t, rh)
		if _, _, err := krr.DeriveKey(id, crypto.LabelBackupMAC); !errors.Is(err, crypto.ErrNoSuchKey) {
			t.Fatalf("derive from a retired key: %v", err)
		}
	})
}
