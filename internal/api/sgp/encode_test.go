package sgp

import (
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// TestEncodeMatchesEncodingJSON: the hand-written encoder writes exactly
// what encoding/json writes for the wire form of the same credential, for
// strings with every kind of character JSON escapes (controls, quotes,
// HTML, U+2028/2029, invalid UTF-8), metadata with whitespace and HTML in
// it or none, and expiry set, passed or not.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "Z", "0", " ", "\"", "\\", "/", "<", ">", "&", "\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x7f",
		"é", "€", "\u2028", "\u2029", "😀", "\xff", "\xe2\x80", "\xed\xa0\x80", "\xc3", "abc"}
	randString := func() string {
		var s string
		for range rng.IntN(12) {
			s += pieces[rng.IntN(len(pieces))]
		}
		return s
	}
	metas := []string{`{}`, `{"a":"b"}`, `{"k": "v <b>&</b>", "n": [1, 2 ,3]}`, "{\n\t\"x\":\"\u2028\"\n}", `{"e":"\u00e9"}`, `[]`, ``}
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	randTime := func() time.Time { return time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)) }
	var items []vault.Credential
	for i := range 2000 {
		c := vault.Credential{ID: randString(), CreatedBy: randString(), CreatedByKind: vault.PrincipalKind(randString()),
			Type: randString(), Name: randString(), Description: randString(), Metadata: json.RawMessage(metas[i%len(metas)]),
			CreatedAt: randTime(), UpdatedAt: randTime(), Version: int64(i)}
		if i%3 == 0 {
			exp := now.Add(time.Duration(rng.Int64N(2e12)) - 1e12)
			c.ExpiresAt = &exp
		}
		want, err := json.Marshal(toWireAt(&c, now))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendCredential(nil, &c, now); string(got) != string(want) {
			t.Fatalf("credential %d:\n got %s\nwant %s", i, got, want)
		}
		items = append(items, c)
	}
	// Pages of every size, a small one after large ones: list bodies are
	// encoded into recycled buffers (one grows past what is kept).
	for _, page := range []vault.CredentialPage{{Items: []vault.Credential{}}, {Items: items[:3], Total: 7, HasMore: true},
		{Items: items[:200], Total: 2000, HasMore: true}, {Items: items, Total: 2000}, {Items: items[3:5], Total: 2000},
		{Items: items[:200], Total: 2000, HasMore: true}, {Items: []vault.Credential{}}} {
		want, err := json.Marshal(listResponse{Object: "list", Items: httpx.Wire(page.Items, func(c *vault.Credential) Credential { return toWireAt(c, now) }),
			Total: page.Total, HasMore: page.HasMore, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		writeList(w, &page, 100, now)
		if w.Body.String() != string(want) || w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("list: %d %q\n got %s\nwant %s", w.Code, w.Header().Get("Content-Type"), w.Body, want)
		}
	}
}

// TestFormatTime: formatTime is t.UTC().Format(timeFormat) for times in
// every year the API stores, at microsecond and nanosecond precision, in
// any zone.
func TestFormatTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	zones := []*time.Location{time.UTC, time.FixedZone("x", -9*3600-30*60), time.FixedZone("y", 14*3600)}
	for i := range 20000 {
		tm := time.Unix(rng.Int64N(253402300799+62135596800)-62135596800, rng.Int64N(1e9)).In(zones[i%len(zones)])
		if got, want := formatTime(tm), tm.UTC().Format(timeFormat); got != want {
			t.Fatalf("formatTime(%v) = %s, want %s", tm, got, want)
		}
	}
	for _, tm := range []time.Time{{}, time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if got, want := formatTime(tm), tm.UTC().Format(timeFormat); got != want {
			t.Fatalf("formatTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

// TestSecretBodyMatchesEncodingJSON: a secret read's body is byte for byte
// what encoding/json writes for secretResponse (payloads with every kind of
// character JSON escapes, invalid UTF-8, empty), not cacheable, and the
// caller's plaintext is left as it was (writePlaintext clears it after).
func TestSecretBodyMatchesEncodingJSON(t *testing.T) {
	for _, pt := range []string{"", "sk-live-0123456789", `{"type":"service_account","private_key":"-----BEGIN\nKEY-----\n"}`,
		"<script>&amp;</script>", "\x00\x1f\x7f\"\\", "\u2028\u2029é€😀", "\xff\xe2\x80\xed\xa0\x80"} {
		want, err := json.Marshal(secretResponse{Result: pt, Object: "credential_secret"})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		in := []byte(pt)
		writeSecretBody(w, in)
		if w.Body.String() != string(want) || w.Code != 200 || w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%q: %d %v\n got %s\nwant %s", pt, w.Code, w.Header(), w.Body, want)
		}
		if string(in) != pt {
			t.Errorf("%q: the caller's plaintext was changed to %q", pt, in)
		}
	}
}

// TestSecretBodyNeverMoves: the secret body's buffer holds the worst case,
// so encoding never reallocates it (a move would leave an uncleared copy).
func TestSecretBodyNeverMoves(t *testing.T) {
	for _, pt := range []string{"", "\x00\x01\x02", "\xff\xfe", "<>&", "\u2028", strings.Repeat("\x1f", 1000), strings.Repeat("\xff", 999)} {
		if b := secretBody([]byte(pt)); cap(b) != secretBodyCap(len(pt)) {
			t.Errorf("%q: the body was moved: capacity %d, allocated %d", pt, cap(b), secretBodyCap(len(pt)))
		}
	}
}
