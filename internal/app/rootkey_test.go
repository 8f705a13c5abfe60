//go:build cgo

package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	gcmpb "github.com/tink-crypto/tink-go/v2/proto/aes_gcm_go_proto"
	"google.golang.org/protobuf/proto"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/crypto/pkcs11kms"
	"github.com/credvault/credvault/internal/crypto/pkcs11kms/softhsmtest"
	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

func withRootKey(uri string) vaulttest.Option {
	return func(c *app.Config) { c.MasterKeyURI = uri }
}

// replica opens a second server on v's database with cfg and returns a
// Vault handle that talks to it.
func replica(t *testing.T, v *vaulttest.Vault, cfg app.Config) *vaulttest.Vault {
	t.Helper()
	a, err := app.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open replica: %v", err)
	}
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(func() { srv.Close(); a.Close() })
	r := *v
	r.URL, r.App, r.Config, r.DataDir = srv.URL, a, cfg, cfg.DataDir
	return &r
}

func createCred(t *testing.T, v *vaulttest.Vault, name, payload string) string {
	t.Helper()
	r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": name, "payload": payload})
	if r.Status != 200 {
		t.Fatalf("create %s: %d %s", name, r.Status, r.Body)
	}
	return r.Object(t)["id"].(string)
}

func decrypt(t *testing.T, v *vaulttest.Vault, id string) (string, error) {
	t.Helper()
	r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials/"+id+"/secret", nil)
	if r.Status != 200 {
		return "", fmt.Errorf("decrypt %s: %d %s", id, r.Status, r.Body)
	}
	return r.Object(t)["result"].(string), nil
}

// aesKeys returns the raw AES key bytes of every key of the keyset.
func aesKeys(t *testing.T, h *keyset.Handle) [][]byte {
	t.Helper()
	var out [][]byte
	for _, k := range insecurecleartextkeyset.KeysetMaterial(h).GetKey() {
		var gk gcmpb.AesGcmKey
		if err := proto.Unmarshal(k.GetKeyData().GetValue(), &gk); err != nil {
			t.Fatal(err)
		}
		out = append(out, gk.GetKeyValue())
	}
	return out
}

// noPlaintextKeys checks the stored keyset and every file of the data
// directory for the data keys in the clear.
func noPlaintextKeys(t *testing.T, v *vaulttest.Vault, db store.Engine) {
	t.Helper()
	ctx := context.Background()
	rec, err := db.GetMasterKeyset(ctx)
	if err != nil {
		t.Fatalf("stored keyset: %v", err)
	}
	if _, err := insecurecleartextkeyset.Read(keyset.NewBinaryReader(bytes.NewReader(rec.Keyset))); err == nil {
		t.Fatal("the stored keyset parses as a cleartext keyset")
	}
	if _, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(rec.Keyset))); err == nil {
		t.Fatal("the stored keyset parses as a cleartext JSON keyset")
	}
	keys := aesKeys(t, v.App.Keyring.Handle())
	if len(keys) == 0 {
		t.Fatal("no keys")
	}
	blobs := map[string][]byte{"database master_keyset.keyset": rec.Keyset}
	err = filepath.WalkDir(v.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		blobs[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if v.Engine == sqlstore.SQLite { // the database file, wherever it is
		for _, p := range []string{v.DatabaseURL, v.DatabaseURL + "-wal"} {
			if b, err := os.ReadFile(p); err == nil {
				blobs[p] = b
			}
		}
	}
	for name, b := range blobs {
		for _, k := range keys {
			if bytes.Contains(b, k) {
				t.Errorf("%s contains a data key in the clear", name)
			}
		}
		if bytes.Contains(b, []byte(`"primaryKeyId"`)) {
			t.Errorf("%s contains a JSON keyset", name)
		}
	}
	if _, err := os.Stat(filepath.Join(v.DataDir, "master-key.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a master-key.json was written to the data directory (%v)", err)
	}
}

// eventually polls cond until it holds or 15s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRootKey_Lifecycle: a vault whose root key is in SoftHSM2 — first
// start generates it, create and decrypt, nothing in the clear, a replica
// with only the token, rotation picked up by every replica, restart.
func TestRootKey_Lifecycle(t *testing.T) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		ctx := context.Background()
		tk := softhsmtest.New(t, "cv-life")
		v := vaulttest.New(t, engine, withRootKey(tk.URI("root")))
		if !v.App.RootKeyGenerated || !strings.HasPrefix(v.App.KeySource, "master-key-uri:pkcs11:token=cv-life;object=root") {
			t.Fatalf("root key generated=%v source=%q", v.App.RootKeyGenerated, v.App.KeySource)
		}
		if strings.Contains(v.App.KeySource, tk.PIN) {
			t.Fatalf("key source names the PIN: %s", v.App.KeySource)
		}
		id1 := createCred(t, v, "first", "payload-one")
		if got, err := decrypt(t, v, id1); err != nil || got != "payload-one" {
			t.Fatalf("decrypt: %q %v", got, err)
		}
		noPlaintextKeys(t, v, v.App.Store)

		// A second replica on the same database, with only the token.
		// (One SQLite file serves one process, so replicas are a
		// PostgreSQL matter; on SQLite the second server is a restart.)
		cfg := v.Config
		cfg.DataDir = t.TempDir()
		r := replica(t, v, cfg)
		if got, err := decrypt(t, r, id1); err != nil || got != "payload-one" {
			t.Fatalf("replica decrypt: %q %v", got, err)
		}

		// Rotation: a new key in the stored keyset, picked up by both.
		old := v.App.Keyring.PrimaryKeyID()
		rep, err := app.Rekey(ctx, v.Config, app.RekeyOptions{Grace: 300 * time.Millisecond})
		if err != nil {
			t.Fatalf("rekey: %v", err)
		}
		if rep.NewPrimary == old || rep.Rewrapped == 0 || len(rep.Retired) != 1 {
			t.Fatalf("rekey report %+v (old primary %d)", rep, old)
		}
		for _, x := range []*vaulttest.Vault{v, r} {
			eventually(t, "the replica to load the new keyset", func() bool { return x.App.Keyring.PrimaryKeyID() == rep.NewPrimary })
		}
		id2 := createCred(t, r, "second", "payload-two")
		for _, x := range []*vaulttest.Vault{v, r} {
			for id, want := range map[string]string{id1: "payload-one", id2: "payload-two"} {
				if got, err := decrypt(t, x, id); err != nil || got != want {
					t.Fatalf("after rekey: %q %v", got, err)
				}
			}
		}
		noPlaintextKeys(t, v, v.App.Store)

		// Backup and restore: the backup carries the keyset encrypted
		// under the root key (and its MAC key is derived from the data
		// keyset); a restore needs the root key, a key file is refused.
		var buf bytes.Buffer
		if _, err := app.Backup(ctx, v.Config, &buf); err != nil {
			t.Fatalf("backup: %v", err)
		}
		for _, k := range aesKeys(t, v.App.Keyring.Handle()) {
			if bytes.Contains(buf.Bytes(), k) {
				t.Fatal("the backup contains a data key in the clear")
			}
		}
		rcfg := cfg
		rcfg.DataDir = t.TempDir()
		rcfg.DatabaseURL = filepath.Join(rcfg.DataDir, "restored.db")
		if engine == sqlstore.Postgres {
			rcfg.DatabaseURL = pgtest.URL(t)
		}
		fcfg := rcfg
		fcfg.MasterKeyURI = ""
		fcfg.MasterKeyFile = filepath.Join(t.TempDir(), "some.json")
		if h, err := crypto.NewKEK(); err != nil || (&crypto.FileProvider{Path: fcfg.MasterKeyFile}).Save(h) != nil {
			t.Fatal(err)
		}
		if _, err := app.Restore(ctx, fcfg, bytes.NewReader(buf.Bytes())); err == nil || !strings.Contains(err.Error(), "restore with --master-key-uri") {
			t.Fatalf("restore with a key file: %v", err)
		}
		if _, err := app.Restore(ctx, rcfg, bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatalf("restore: %v", err)
		}
		restored := replica(t, v, rcfg)
		if got, err := decrypt(t, restored, id2); err != nil || got != "payload-two" {
			t.Fatalf("after restore: %q %v", got, err)
		}

		// Restart: a new server reads the rotated keyset.
		r2 := replica(t, v, cfg)
		if r2.App.RootKeyGenerated {
			t.Fatal("restart generated a root key")
		}
		if got, err := decrypt(t, r2, id2); err != nil || got != "payload-two" {
			t.Fatalf("after restart: %q %v", got, err)
		}
	})
}

// snapshot is what a failed start must not change.
type snapshot struct {
	keyset  []byte
	version int64
	check   []byte
	objects []string // token files
	data    []string // data directory files
}

func snap(t *testing.T, db store.Engine, tk *softhsmtest.Token, dataDir string) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	if rec, err := db.GetMasterKeyset(ctx); err == nil {
		s.keyset, s.version = rec.Keyset, rec.Version
	}
	s.check, _ = db.GetMeta(ctx, vault.MasterKeyCheckMeta)
	for _, dir := range []string{tk.Dir, dataDir} {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".lock") {
				if dir == tk.Dir {
					s.objects = append(s.objects, p)
				} else {
					s.data = append(s.data, p)
				}
			}
			return nil
		})
	}
	return s
}

func (s snapshot) equal(o snapshot) bool {
	return bytes.Equal(s.keyset, o.keyset) && s.version == o.version && bytes.Equal(s.check, o.check) &&
		strings.Join(s.objects, ",") == strings.Join(o.objects, ",") && strings.Join(s.data, ",") == strings.Join(o.data, ",")
}

// TestRootKey_StartFailures: a wrong PIN, a missing key and a removed
// token each fail clearly at start and change nothing; a key file is
// refused for a vault whose keyset is under a root key.
func TestRootKey_StartFailures(t *testing.T) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		ctx := context.Background()
		tk := softhsmtest.New(t, "cv-fail")
		v := vaulttest.New(t, engine, withRootKey(tk.URI("root")))
		id := createCred(t, v, "c", "p")
		// Log the token out (PKCS#11 login state is per process): the
		// server stops; its data stays.
		v.App.Close()
		db, err := sqlstore.Open(ctx, v.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		before := snap(t, db, tk, v.DataDir)
		db.Close()
		if before.version != 1 || len(before.check) == 0 {
			t.Fatalf("snapshot %+v", before)
		}
		start := func(mod func(*app.Config)) error {
			cfg := v.Config
			mod(&cfg)
			a, err := app.Open(ctx, cfg)
			if err == nil {
				a.Close()
				return errors.New("started")
			}
			return err
		}
		cases := []struct {
			name string
			mod  func(*app.Config)
			want error
			msg  string
		}{
			{"wrong-pin", func(c *app.Config) { c.MasterKeyURI = tk.URIWithPIN("root", "9999") }, pkcs11kms.ErrWrongPIN, "refused the PIN"},
			{"missing-key", func(c *app.Config) { c.MasterKeyURI = tk.URI("no-such-key") }, pkcs11kms.ErrKeyNotFound, "no secret key with this label"},
			{"key-file-for-hsm-vault", func(c *app.Config) {
				c.MasterKeyURI = ""
				c.MasterKeyFile = filepath.Join(t.TempDir(), "k.json")
				h, _ := crypto.NewKEK()
				_ = (&crypto.FileProvider{Path: c.MasterKeyFile}).Save(h)
			}, nil, "stored in the database under a root key"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				err := start(c.mod)
				if c.want != nil && !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
					t.Fatalf("start: %v; want %v (%q)", err, c.want, c.msg)
				}
				if strings.Contains(err.Error(), "9999") || strings.Contains(err.Error(), tk.PIN) {
					t.Fatalf("error names a PIN: %v", err)
				}
			})
		}
		tk.Delete(t)
		if err := start(func(*app.Config) {}); !errors.Is(err, pkcs11kms.ErrTokenNotFound) {
			t.Fatalf("removed token: %v", err)
		}
		db, err = sqlstore.Open(ctx, v.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		after := snap(t, db, tk, v.DataDir)
		before.objects = nil // the token is gone: its files too
		after.objects = nil
		if !before.equal(after) {
			t.Fatalf("a failed start changed something:\nbefore %+v\nafter  %+v", before, after)
		}
		_ = id
	})
}

// TestRootKey_MigrateUnderLoad moves a vault from its key file under an
// HSM root key while it serves decrypts, restarts onto the root key,
// rotates the file's keys out, and moves it back: 0 failed decrypts.
func TestRootKey_MigrateUnderLoad(t *testing.T) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		ctx := context.Background()
		tk := softhsmtest.New(t, "cv-mig")
		v := vaulttest.New(t, engine) // development key file in the data directory
		ids := map[string]string{}
		for i := range 10 {
			ids[createCred(t, v, fmt.Sprint("m", i), fmt.Sprint("secret-", i))] = fmt.Sprint("secret-", i)
		}
		var fails, ok atomic.Int64
		loadOn := func(x *vaulttest.Vault, stop <-chan struct{}) *sync.WaitGroup {
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(func() {
					for {
						for id, want := range ids {
							select {
							case <-stop:
								return
							default:
							}
							if got, err := decrypt(t, x, id); err != nil || got != want {
								fails.Add(1)
								t.Errorf("decrypt under load: %q %v", got, err)
							} else {
								ok.Add(1)
							}
						}
					}
				})
			}
			return &wg
		}
		stopFile := make(chan struct{})
		wgFile := loadOn(v, stopFile)

		uri := tk.URI("root")
		rep, err := app.MigrateToRootKey(ctx, v.Config, uri, nil)
		if err != nil {
			t.Fatalf("migrate: %v", err)
		}
		if rep.LeftOver != filepath.Join(v.DataDir, "master-key.json") {
			t.Errorf("left-over file %q", rep.LeftOver)
		}
		again, err := app.MigrateToRootKey(ctx, v.Config, uri, nil)
		if err != nil || !again.AlreadyMigrated {
			t.Fatalf("second migrate run: %+v %v", again, err)
		}
		// Restart onto the root key (a replica on another host: its
		// data directory has no key file).
		cfg := v.Config
		cfg.MasterKeyURI = uri
		cfg.DataDir = t.TempDir()
		r := replica(t, v, cfg)
		stopHSM := make(chan struct{})
		wgHSM := loadOn(r, stopHSM)
		close(stopFile) // the file-keyed server is stopped
		wgFile.Wait()

		fileKeys := v.App.Keyring.Handle()
		rk, err := app.Rekey(ctx, cfg, app.RekeyOptions{Grace: 300 * time.Millisecond, Keyring: r.App.Keyring})
		if err != nil {
			t.Fatalf("rekey: %v", err)
		}
		close(stopHSM)
		wgHSM.Wait()
		if fails.Load() != 0 || ok.Load() == 0 {
			t.Fatalf("%d failed and %d good decrypts during the migration", fails.Load(), ok.Load())
		}
		t.Logf("%s: %d decrypts during migration and rotation, 0 failures; %d re-wrapped", engine, ok.Load(), rk.Rewrapped)
		noPlaintextKeys(t, r, r.App.Store)
		// The left-over file no longer opens anything.
		old, _ := crypto.NewKeyring(fileKeys)
		check, _ := r.App.Store.GetMeta(ctx, vault.MasterKeyCheckMeta)
		if err := vault.OpenMasterKeyCheck(old, check); err == nil {
			t.Error("the old key file still opens the vault after the rotation")
		}

		// And back to a file.
		r.App.Close()
		back := filepath.Join(t.TempDir(), "back.json")
		if _, err := app.MigrateToFile(ctx, cfg, back, nil); err != nil {
			t.Fatalf("migrate back: %v", err)
		}
		fcfg := cfg
		fcfg.MasterKeyURI, fcfg.MasterKeyFile = "", back
		f := replica(t, v, fcfg)
		for id, want := range ids {
			if got, err := decrypt(t, f, id); err != nil || got != want {
				t.Fatalf("after moving back: %q %v", got, err)
			}
		}

		// Every change of the key hierarchy is in the audit trail.
		var events []string
		err = f.App.Store.ScanAudit(ctx, func(r vault.AuditRecord) error {
			if r.ObjectType == "master_key" && r.Action != "master_key.rewrap" {
				events = append(events, r.Action+" "+r.ObjectID)
			}
			return nil
		})
		want := []string{"master_key.migrate " + crypto.RootKeyName(uri), "master_key.rotate master-key-uri:" + crypto.RootKeyName(uri), "master_key.migrate file"}
		if err != nil || strings.Join(events, "|") != strings.Join(want, "|") {
			t.Fatalf("key events in the audit trail: %q (%v), want %q", events, err, want)
		}
		if rep, err := audit.Verify(ctx, f.App.Store, audit.VerifyOptions{Keys: f.App.Keyring}); err != nil || !rep.OK() {
			t.Fatalf("audit trail verify: %+v %v", rep, err)
		}
	})
}

// TestRootKey_ConcurrentFirstStart: replicas starting at once on a new
// PostgreSQL database with no key in the token make exactly one root key and
// one data keyset, and all serve with it.
func TestRootKey_ConcurrentFirstStart(t *testing.T) {
	ctx := context.Background()
	tk := softhsmtest.New(t, "cv-race")
	cfg := app.Config{DataDir: t.TempDir(), DatabaseURL: pgtest.URL(t), MasterKeyURI: tk.URI("root")}
	const n = 4
	apps := make([]*app.App, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { apps[i], errs[i] = app.Open(ctx, cfg) })
	}
	wg.Wait()
	generated := 0
	for i, a := range apps {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		defer a.Close()
		if a.RootKeyGenerated {
			generated++
		}
		if a.Keyring.PrimaryKeyID() != apps[0].Keyring.PrimaryKeyID() {
			t.Fatalf("replica %d has another data keyset", i)
		}
	}
	if generated != 1 {
		t.Fatalf("%d replicas generated a root key, want 1", generated)
	}
	// One key with the label: a later start finds it unambiguously.
	for _, a := range apps {
		a.Close()
	}
	a, err := app.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	a.Close()
}
