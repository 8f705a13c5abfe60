package sgp

import (
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"testing"
	"time"
)

// TestEncodeMatchesEncodingJSON: the hand-written encoder writes exactly
// what encoding/json writes for the same values, for strings with every
// kind of character JSON escapes (controls, quotes, HTML, U+2028/2029,
// invalid UTF-8) and metadata with whitespace and HTML in it.
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
	metas := []string{`{}`, `{"a":"b"}`, `{"k": "v <b>&</b>", "n": [1, 2 ,3]}`, "{\n\t\"x\":\"\u2028\"\n}", `{"e":"\u00e9"}`, `[]`}
	expires, expired := "2026-12-01T00:00:00.000000Z", true
	for i := range 2000 {
		c := Credential{ID: randString(), Object: "credential", CreatedByUserID: randString(), CreatedByIdentityType: "user",
			Type: randString(), Name: randString(), Description: randString(),
			CredentialMetadata: json.RawMessage(metas[i%len(metas)]), CreatedAt: randString(), UpdatedAt: randString(), Version: int64(i)}
		if i%3 == 0 {
			c.ExpiresAt, c.Expired = &expires, &expired
		}
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendCredential(nil, &c); string(got) != string(want) {
			t.Fatalf("credential %d:\n got %s\nwant %s", i, got, want)
		}
	}
	for _, items := range [][]Credential{nil, {}, {{ID: "x", CredentialMetadata: json.RawMessage(`{}`)}, {ID: "<y>", CredentialMetadata: json.RawMessage(`{"a":1}`)}}} {
		out := listResponse{Object: "list", Items: items, Total: 7, HasMore: true, Limit: 100}
		want, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		writeList(w, &out)
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
