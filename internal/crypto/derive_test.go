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
	id, k1, err := kr.DeriveKey(0, LabelBackupMAC)
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
		_, k2, err := kr2.DeriveKey(id, LabelBackupMAC)
		if err != nil || !bytes.Equal(k1, k2) {
			t.Fatalf("derived keys differ (%v)", err)
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
		other, _ := NewKEK()
		kro, _ := NewKeyring(other)
		_, k2, _ := kro.DeriveKey(0, LabelBackupMAC)
		if bytes.Equal(k1, k2) {
			t.Fatal("two master keys gave the same subkey")
		}
		if _, _, err := kro.DeriveKey(id, LabelBackupMAC); !errors.Is(err, ErrNoSuchKey) {
			t.Fatalf("derive from a key the keyset lacks: %v", err)
		}
	})
	t.Run("survives-rotation-until-retired", func(t *testing.T) {
		nh, newID, err := AddPrimary(h)
		if err != nil {
			t.Fatal(err)
		}
		krn, _ := NewKeyring(nh)
		_, k2, err := krn.DeriveKey(id, LabelBackupMAC)
		if err != nil || !bytes.Equal(k1, k2) {
			t.Fatalf("the old key's subkey changed after rotation (%v)", err)
		}
		got, k3, _ := krn.DeriveKey(0, LabelBackupMAC)
		if got != newID || bytes.Equal(k1, k3) {
			t.Fatalf("primary subkey after rotation: id %d (want %d), same as old: %v", got, newID, bytes.Equal(k1, k3))
		}
		rh, err := RemoveKeys(nh, []uint32{id})
		if err != nil {
			t.Fatal(err)
		}
		krr, _ := NewKeyring(rh)
		if _, _, err := krr.DeriveKey(id, LabelBackupMAC); !errors.Is(err, ErrNoSuchKey) {
			t.Fatalf("derive from a retired key: %v", err)
		}
	})
}
