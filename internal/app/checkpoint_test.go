package app_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestCheckpointsLeaveTheDatabase: a serving vault writes signed
// checkpoints of its audit head to the anchor file and the webhook, and they
// verify under the master key and match the trail.
func TestCheckpointsLeaveTheDatabase(t *testing.T) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) { checkpointsLeave(t, engine) })
}

func checkpointsLeave(t *testing.T, engine string) {
	got := make(chan audit.Checkpoint, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c audit.Checkpoint
		if err := json.NewDecoder(r.Body).Decode(&c); err == nil {
			select {
			case got <- c:
			default:
			}
		}
	}))
	defer hook.Close()
	file := filepath.Join(t.TempDir(), "anchors.jsonl")
	v := vaulttest.New(t, engine, func(c *app.Config) {
		c.AuditCheckpointInterval, c.AuditAnchorFile, c.AuditAnchorWebhook = 20*time.Millisecond, file, hook.URL
	})
	// A checkpoint of the empty trail may come before bootstrap's record;
	// wait for one that anchors a record.
	var c audit.Checkpoint
	deadline := time.After(20 * time.Second)
	for c.Seq < 1 {
		select {
		case c = <-got:
		case <-deadline:
			t.Fatal("no checkpoint of a non-empty trail reached the webhook")
		}
	}
	if err := audit.VerifyCheckpoint(v.App.Keyring, c); err != nil || c.Seq < 1 {
		t.Fatalf("webhook checkpoint %+v: %v", c, err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cps, err := audit.ReadCheckpoints(f)
	if err != nil || len(cps) == 0 {
		t.Fatalf("anchor file: %d checkpoints, %v", len(cps), err)
	}
	var anchors []audit.Anchor
	for _, cp := range cps {
		if err := audit.VerifyCheckpoint(v.App.Keyring, cp); err != nil {
			t.Fatal(err)
		}
		a, err := cp.Anchor()
		if err != nil {
			t.Fatal(err)
		}
		anchors = append(anchors, a)
	}
	rep, err := audit.Verify(t.Context(), v.App.Store, audit.VerifyOptions{Keys: v.App.Keyring, Anchors: anchors})
	if err != nil || !rep.OK() || rep.AnchorsChecked != len(anchors) {
		t.Fatalf("verify against the checkpoints: %+v %v", rep, err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("anchor file mode: %v %v", fi.Mode(), err)
	}
}
