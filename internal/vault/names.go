package vault

import (
	"strings"
	"unicode"
)

// Names and metadata: rules shared by both dialects.
//
// Names are stored exactly as sent and compared byte for byte; no Unicode
// normalisation (NFC or otherwise) is applied. A name is an identifier the
// client chose and looks up again: normalising it would store something
// other than what was sent (the rule payloads follow too) and would make
// two names a client deliberately keeps apart collide. The cost is that
// "é" precomposed and "e" + combining accent are two different names, as
// they are in a file system on Linux; clients that want one form should
// normalise before sending.

// forbiddenNameRune reports whether r may not appear in a name: control
// characters (C0, DEL, C1: ESC, CR, LF, BEL, tab…), the line and paragraph
// separators U+2028/U+2029, and the bidirectional formatting characters
// that reorder how a name is displayed (U+061C, U+200E/200F, U+202A–202E,
// U+2066–2069) and so let one name pass for another in a listing or a log.
// Other format characters (zero-width joiners, needed by some scripts and
// emoji) are allowed.
func forbiddenNameRune(r rune) bool {
	switch {
	case unicode.IsControl(r), r == '\u2028', r == '\u2029':
		return true
	case r == '\u061c', r == '\u200e', r == '\u200f',
		'\u202a' <= r && r <= '\u202e', '\u2066' <= r && r <= '\u2069':
		return true
	}
	return false
}

// CheckNameText refuses names containing a forbidden character (see
// forbiddenNameRune). field names the field in the error.
func CheckNameText(field, name string) error {
	if strings.IndexFunc(name, forbiddenNameRune) >= 0 {
		return FieldError(field, "%s must not contain control, line-separator or bidirectional formatting characters", field)
	}
	return nil
}

// pathSafeName reports whether an SGP credential name survives being put
// in a URL path (/v5/credentials/name/{name}) unchanged: Go's router
// cleans paths, so a name that is "." or "..", contains such a segment
// between slashes, starts with "/" or contains "//" would be redirected to
// another path (and could reach another credential) instead of being
// looked up.
func pathSafeName(name string) bool {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		switch {
		case s == "." || s == "..":
			return false
		case s == "" && i < len(segs)-1: // "/x", "a//b"; a trailing "/" is kept by the router
			return false
		}
	}
	return true
}

// Limits on credential_metadata. It is stored and returned as JSON; a
// deeply nested document breaks common JSON tools (jq fails at a few
// hundred levels, Python's decoder at about a thousand) on every listing
// that contains it.
const (
	MaxMetadataDepth = 32
	MaxMetadataBytes = 64 << 10
)

// checkMetadataShape enforces MaxMetadataBytes and MaxMetadataDepth on a
// compacted, valid JSON document.
func checkMetadataShape(m []byte) error {
	if len(m) > MaxMetadataBytes {
		return FieldError("credential_metadata", "credential_metadata must be at most %d bytes of JSON", MaxMetadataBytes)
	}
	depth, inString := 0, false
	for i := 0; i < len(m); i++ {
		switch c := m[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			if depth++; depth > MaxMetadataDepth {
				return FieldError("credential_metadata", "credential_metadata must not nest deeper than %d levels", MaxMetadataDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}
