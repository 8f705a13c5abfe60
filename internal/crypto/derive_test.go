package crypto

import (
	"bytes"
	"errors"
	"testing"
)

func TestDeriveKey(t *testing.T) {
	h, err := NewKEK()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := NewKeyring(h)
	if err != nil {
		t.Fatal(err)
	}
	k1, id, err := kr.DeriveKey(LabelBackupMAC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != 32 || id != kr.PrimaryKeyID() {
		t.Fatalf("len %d, id %d (primary %d)", len(k1), id, kr.PrimaryKeyID())
	}
	t.Run("deterministic", func(t *testing.T) {
		// Same keyset, parsed again from its serialisation.
		b, _ := MarshalKEK(h)
		h2, err := ParseKEK(b)
		if err != nil {
			t.Fatal(err)
		}
		kr2, _ := NewKeyring(h2)
		k2, _, err := kr2.DeriveKey(LabelBackupMAC, id)
		if err != nil || !bytes.Equal(k1, k2) {
			t.Fatalf("derived keys differ (%v)", err)
		}
	})
	t.Run("labels-are-independent", func(t *testing.T) {
		k2, _, err := kr.DeriveKey("credvault some other purpose v1", 0)
		if err != nil || bytes.Equal(k1, k2) {
			t.Fatalf("two labels gave the same key (%v)", err)
		}
		if _, _, err := kr.DeriveKey("", 0); err == nil {
			t.Fatal("empty label accepted")
		}
	})
	t.Run("other-master-key", func(t *testing.T) {
		other, _ := NewKEK()
		kro, _ := NewKeyring(other)
		k2, _, _ := kro.DeriveKey(LabelBackupMAC, 0)
		if bytes.Equal(k1, k2) {
			t.Fatal("two master keys gave the same subkey")
		}
		if _, _, err := kro.DeriveKey(LabelBackupMAC, id); !errors.Is(err, ErrNoSuchKey) {
			t.Fatalf("derive from a key the keyset lacks: %v", err)
		}
	})
	t.Run("survives-rotation-until-retired", func(t *testing.T) {
		nh, newID, err := AddPrimary(h)
		if err != nil {
			t.Fatal(err)
		}
		krn, _ := NewKeyring(nh)
		k2, _, err := krn.DeriveKey(LabelBackupMAC, id)
		if err != nil || !bytes.Equal(k1, k2) {
			t.Fatalf("the old key's subkey changed after rotation (%v)", err)
		}
		k3, got, _ := krn.DeriveKey(LabelBackupMAC, 0)
		if got != newID || bytes.Equal(k1, k3) {
			t.Fatalf("primary subkey after rotation: id %d (want %d), same as old: %v", got, newID, bytes.Equal(k1, k3))
		}
		rh, err := RemoveKeys(nh, []uint32{id})
		if err != nil {
			t.Fatal(err)
		}
		krr, _ := NewKeyring(rh)
		if _, _, err := krr.DeriveKey(LabelBackupMAC, id); !errors.Is(err, ErrNoSuchKey) {
			t.Fatalf("derive from a retired key: %v", err)
		}
	})
}
