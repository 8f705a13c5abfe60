package sgp

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/credvault/credvault/internal/vault"
)

// The SGP credential and its list page are the API's hottest bodies, so
// they are encoded by hand into one buffer rather than by reflection:
// byte for byte what encoding/json writes for Credential and listResponse
// (TestEncodeMatchesEncodingJSON), at a fraction of the cost per item.

// writeList writes the page as encoding/json writes its listResponse
// (items as toWireAt(item, now)).
func writeList(w http.ResponseWriter, page *vault.CredentialPage, limit int, now time.Time) {
	buf := bodies.Get().(*[]byte)
	defer putBody(buf)
	b := append((*buf)[:0], `{"object":"list","items":[`...)
	for i := range page.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCredential(b, &page.Items[i], now)
	}
	b = append(b, `],"total":`...)
	b = strconv.AppendInt(b, int64(page.Total), 10)
	b = append(b, `,"has_more":`...)
	b = strconv.AppendBool(b, page.HasMore)
	b = append(b, `,"limit":`...)
	b = strconv.AppendInt(b, int64(limit), 10)
	*buf = append(b, '}')
	writeBody(w, *buf)
}

// bodies recycles the buffers list pages are encoded into: a page of 100
// is 30–40 KiB, and allocating it per request made the garbage collector a
// quarter of a listing's CPU. Only metadata is ever encoded into them
// (listings carry no secrets), and a buffer that grew past maxPooledBody
// (a page of large metadata) is left to the collector.
var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 48<<10); return &b }}

const maxPooledBody = 256 << 10

func putBody(b *[]byte) {
	if cap(*b) <= maxPooledBody {
		bodies.Put(b)
	}
}

// writeBody answers 200 with the JSON body b.
func writeBody(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	// With its length known, a list page goes out as one body, not in
	// chunks of net/http's 2 KiB buffer (and the client reads it so).
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// appendCredential appends c as encoding/json writes toWireAt(c, now):
// the wire fields in declaration order, the optional extensions only when
// set, times formatted straight into the buffer.
func appendCredential(b []byte, c *vault.Credential, now time.Time) []byte {
	for _, f := range [...]struct{ key, val string }{
		{`{"id":`, c.ID}, {`,"object":`, "credential"}, {`,"created_by_user_id":`, c.CreatedBy},
		{`,"created_by_identity_type":`, string(c.CreatedByKind)}, {`,"type":`, c.Type}, {`,"name":`, c.Name},
		{`,"description":`, c.Description},
	} {
		b = append(b, f.key...)
		b = appendString(b, f.val)
	}
	b = append(b, `,"credential_metadata":`...)
	if len(c.Metadata) == 0 {
		b = append(b, "{}"...)
	} else {
		b = appendRaw(b, c.Metadata)
	}
	b = append(b, `,"created_at":"`...)
	b = append(appendTime(b, c.CreatedAt), `","updated_at":"`...)
	b = append(appendTime(b, c.UpdatedAt), `","version":`...)
	b = strconv.AppendInt(b, c.Version, 10)
	if c.ExpiresAt != nil {
		b = append(b, `,"expires_at":"`...)
		b = append(appendTime(b, *c.ExpiresAt), `","expired":`...)
		b = strconv.AppendBool(b, c.Expired(now))
	}
	return append(b, '}')
}

// appendRaw appends a json.RawMessage as encoding/json does: null when
// empty, else compacted with <, >, &, U+2028 and U+2029 escaped. Stored
// metadata is already compact and usually has none of those, so it is
// copied as it is when a scan finds none of their bytes.
func appendRaw(b []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(b, "null"...)
	}
	if !slices.ContainsFunc(raw, func(c byte) bool { return rewritten[c] }) {
		return append(b, raw...)
	}
	var compact, escaped bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return append(b, "null"...) // unreachable: stored metadata is valid JSON (normalizeMetadata)
	}
	json.HTMLEscape(&escaped, compact.Bytes())
	return append(b, escaped.Bytes()...)
}

const hexDigits = "0123456789abcdef"

// rewritten[c] reports whether appendRaw may have to change a metadata
// byte c: whitespace is compacted away, <, > and & are escaped, and 0xe2
// starts U+2028 and U+2029.
var rewritten = [256]bool{' ': true, '\t': true, '\r': true, '\n': true, '<': true, '>': true, '&': true, 0xe2: true}

// plain[c] reports whether appendString writes the ASCII byte c as itself:
// one load per byte instead of six comparisons.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := byte(0x20); c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as a JSON string exactly as encoding/json does
// with its default HTML escaping: \" \\ \b \f \n \r \t, other control
// characters and < > & as \u00XX, invalid UTF-8 as \ufffd, and U+2028 and
// U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// formatTime is t.UTC().Format(timeFormat) — 2006-01-02T15:04:05.000000Z.
func formatTime(t time.Time) string { return string(appendTime(make([]byte, 0, 27), t)) }

// appendTime appends formatTime(t) without the layout interpreter: a list
// page formats two times per item.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, timeFormat)
	}
	hour, minute, sec := t.Clock()
	var d [27]byte
	put := func(at, v, width int) {
		for i := at + width - 1; i >= at; i-- {
			d[i] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, year, 4)
	d[4] = '-'
	put(5, int(month), 2)
	d[7] = '-'
	put(8, day, 2)
	d[10] = 'T'
	put(11, hour, 2)
	d[13] = ':'
	put(14, minute, 2)
	d[16] = ':'
	put(17, sec, 2)
	d[19] = '.'
	put(20, t.Nanosecond()/1000, 6)
	d[26] = 'Z'
	return append(b, d[:]...)
}

// writeSecretBody answers 200 with the body encoding/json writes for
// secretResponse{Result: string(pt), Object: "credential_secret"}, and
// Cache-Control: no-store. The body is encoded into a buffer of its own
// that is cleared once written, with no string copy of the plaintext on
// the way: what is left of it in memory is the caller's pt (which it
// clears) and what net/http holds in its connection buffer.
func writeSecretBody(w http.ResponseWriter, pt []byte) {
	b := secretBody(pt)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	clear(b)
}

// secretBody encodes writeSecretBody's body into a buffer of
// secretBodyCap(len(pt)) bytes.
func secretBody(pt []byte) []byte {
	b := make([]byte, 0, secretBodyCap(len(pt)))
	b = append(b, `{"result":`...)
	if len(pt) > 0 {
		b = appendString(b, unsafe.String(&pt[0], len(pt))) // read only, for the call
	} else {
		b = append(b, `""`...)
	}
	return append(b, `,"object":"credential_secret"}`...)
}

// secretBodyCap is the worst case of a secret body of n bytes of
// plaintext: every byte escaped as \u00XX or \ufffd (six bytes), and the
// rest of the object. With it, append never moves the body and leaves a
// copy behind. Payloads are at most vault.DefaultMaxPayload (64 KiB)
// unless configured otherwise.
func secretBodyCap(n int) int { return 6*n + len(`{"result":"","object":"credential_secret"}`) }
