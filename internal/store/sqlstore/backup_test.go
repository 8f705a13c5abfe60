package sqlstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestRestoreCommitsOnlyAfterTheMAC: Restore itself (not only the CLI's
// verification pass before it) checks the MAC before it commits, so a
// backup that changes between the two reads restores nothing.
func TestRestoreCommitsOnlyAfterTheMAC(t *testing.T) {
	openEach(t, func(t *testing.T, src *DB) {
		ctx := context.Background()
		for _, k := range []string{"one", "two", "three"} {
			if _, err := src.PutMeta(ctx, k, []byte("value-"+k)); err != nil {
				t.Fatal(err)
			}
		}
		key := make([]byte, 32)
		rand.Read(key)
		var buf bytes.Buffer
		if _, err := src.Backup(ctx, &buf, BackupOptions{MACKey: key, MACKeyID: 7}); err != nil {
			t.Fatal(err)
		}
		zr, _ := gzip.NewReader(&buf)
		plain, _ := io.ReadAll(zr)
		// "value-two" → "value-TWO": same structure, same counts.
		edited := strings.Replace(string(plain), b64("value-two"), b64("value-TWO"), 1)
		if edited == string(plain) {
			t.Fatal("edit did not apply")
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write([]byte(edited))
		zw.Close()

		dst := reopenEmpty(t, src)
		keyFn := func(h BackupHeader) ([]byte, error) {
			if h.MACKeyID != 7 {
				t.Errorf("header mac_key_id %d", h.MACKeyID)
			}
			return key, nil
		}
		if _, err := dst.Restore(ctx, bytes.NewReader(gz.Bytes()), keyFn); !errors.Is(err, ErrBackupMAC) {
			t.Fatalf("restore of an edited backup: %v; want ErrBackupMAC", err)
		}
		for _, k := range []string{"one", "two", "three"} {
			if _, err := dst.GetMeta(ctx, k); err == nil {
				t.Errorf("meta %q was written by a refused restore", k)
			}
		}
		// The intact backup restores, under the right key only.
		wrong := func(BackupHeader) ([]byte, error) { return bytes.Repeat([]byte{1}, 32), nil }
		var intact bytes.Buffer
		zw = gzip.NewWriter(&intact)
		zw.Write(plain)
		zw.Close()
		if _, err := dst.Restore(ctx, bytes.NewReader(intact.Bytes()), wrong); !errors.Is(err, ErrBackupMAC) {
			t.Fatalf("restore under another MAC key: %v", err)
		}
		st, err := dst.Restore(ctx, bytes.NewReader(intact.Bytes()), keyFn)
		if err != nil || st.Rows < 3 {
			t.Fatalf("restore: %+v %v", st, err)
		}
		if v, err := dst.GetMeta(ctx, "two"); err != nil || string(v) != "value-two" {
			t.Fatalf("restored meta: %q %v", v, err)
		}
	})
}

func b64(s string) string {
	b, _ := encodeCell([]byte(s))
	return string(b)
}

// reopenEmpty returns a new, empty, migrated database of src's engine.
func reopenEmpty(t *testing.T, src *DB) *DB {
	t.Helper()
	return openDB(t, src.Engine())
}
