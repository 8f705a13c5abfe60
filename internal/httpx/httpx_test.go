package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

func TestCheckText(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"a":"plain"}`, true},
		{`{"a":"caf\u00e9 é"}`, true},
		{`{"a":"\ud83d\ude00"}`, true},
		{`{"a":"\uD83D\uDE00"}`, true},
		{`{"a":"\\ud800"}`, true}, // an escaped backslash, then text
		{`{"a":"\"\ud800"}`, false},
		{`{"a":"x\udc00y"}`, false},
		{`{"a":"x\ud800"}`, false},
		{`{"a":"x\ud800y"}`, false},
		{`{"a":"\ud800\ud800"}`, false},
		{`{"a":"\ud800\u0041"}`, false},
		{`{"\udfff":1}`, false},
		{"{\"a\":\"ab\xff\xfecd\"}", false},
		{"{\"a\":\"\xed\xa0\x80\"}", false}, // a surrogate encoded directly in UTF-8
	} {
		if err := CheckText([]byte(tc.body)); (err == nil) != tc.ok {
			t.Errorf("CheckText(%q) = %v, want ok=%v", tc.body, err, tc.ok)
		}
	}
}

// FuzzCheckText: whatever CheckText accepts, encoding/json decodes without
// inventing replacement characters: every U+FFFD in the decoded strings
// was sent as one.
func FuzzCheckText(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `"\ud800"`, `"\ud83d\ude00"`, "\"\xff\"", `["\\ud800","\ufffd"]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if CheckText(b) != nil || !json.Valid(b) {
			return
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return
		}
		sent := bytes.Count(b, []byte("\ufffd")) + strings.Count(strings.ToLower(string(b)), `\ufffd`)
		if got := countFFFD(v); got > sent {
			t.Fatalf("decoding %q invented %d replacement characters", b, got-sent)
		}
	})
}

func countFFFD(v any) int {
	n := 0
	switch x := v.(type) {
	case string:
		n += strings.Count(x, "\ufffd")
	case []any:
		for _, e := range x {
			n += countFFFD(e)
		}
	case map[string]any:
		for k, e := range x {
			n += strings.Count(k, "\ufffd") + countFFFD(e)
		}
	}
	return n
}

func TestStatus_EveryKind(t *testing.T) {
	for k := vault.KindInternal; k <= vault.KindIntegrity; k++ {
		if _, ok := statuses[k]; !ok {
			t.Errorf("kind %s has no status", k)
		}
	}
	for _, tc := range []struct {
		err       error
		overrides map[vault.Kind]int
		want      int
	}{
		{vault.ErrNotFound, nil, 404},
		{vault.Errorf(vault.KindTooLarge, "big"), nil, 413},
		{vault.Errorf(vault.KindInvalid, "bad"), nil, 400},
		{vault.Errorf(vault.KindInvalid, "bad"), map[vault.Kind]int{vault.KindInvalid: 422}, 422},
		{vault.Errorf(vault.KindIntegrity, "moved"), nil, 409},
		{errors.New("driver error"), nil, 500},
		{fmt.Errorf("wrapped: %w", vault.ErrConflict), nil, 409},
	} {
		if got := Status(tc.err, tc.overrides); got != tc.want {
			t.Errorf("Status(%v, %v) = %d, want %d", tc.err, tc.overrides, got, tc.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	if got := RetryAfter(vault.Errorf(vault.KindUnavailable, "down")); got != 1 {
		t.Errorf("unavailable: %d, want 1", got)
	}
	rl := &vault.RateLimitError{Err: vault.Errorf(vault.KindRateLimited, "slow down"), After: 2500 * time.Millisecond}
	if got := RetryAfter(fmt.Errorf("wrapped: %w", rl)); got != 3 {
		t.Errorf("rate limited 2.5s: %d, want 3", got)
	}
}
