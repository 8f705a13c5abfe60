// Package pkcs11kms keeps credvault's root key in a PKCS#11 token (an HSM,
// or SoftHSM2 in tests): an AES-256 key generated inside the token, never
// extractable, used through CKM_AES_GCM to wrap and unwrap the data-key
// keyset. It implements tink.AEAD, so Tink's encrypted-keyset functions
// (keyset.Write / keyset.Read) use it as their key-encryption key.
//
// The token is addressed by an RFC 7512 URI:
//
//	pkcs11:token=<label>;object=<key label>?module-path=<library>&pin-source=file:<path>
//
// (pin-value=<pin> instead of pin-source is accepted for tests). The
// PKCS#11 library is loaded with dlopen through cgo (github.com/miekg/pkcs11);
// a binary built with CGO_ENABLED=0 compiles without it and refuses
// pkcs11: URIs with a clear error.
package pkcs11kms

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
)

// Scheme is the URI scheme this package serves.
const Scheme = "pkcs11"

// URI is a parsed RFC 7512 PKCS#11 URI naming one secret key.
type URI struct {
	Token      string // CKA_LABEL of the token
	Object     string // CKA_LABEL of the key
	ModulePath string // the PKCS#11 library
	PINSource  string // file path of the user PIN, or ""
	pinValue   string // the PIN given inline (tests only)
}

// String returns the URI without the PIN or its source: the name of the key
// that may appear in logs, errors and the database.
func (u URI) String() string {
	return "pkcs11:token=" + escape(u.Token) + ";object=" + escape(u.Object)
}

// GoString and LogValue redact like String, so that %#v and slog never
// print an inline PIN.
func (u URI) GoString() string     { return u.String() }
func (u URI) LogValue() slog.Value { return slog.StringValue(u.String()) }

func escape(s string) string { return strings.ReplaceAll(url.PathEscape(s), ";", "%3B") }

// ParseURI parses a pkcs11: URI. The token, the object and module-path are
// required, and exactly one of pin-source (file:<path>) and pin-value.
// Attributes this package does not use are refused rather than ignored, so
// that a URI never silently names another key than its author meant.
func ParseURI(s string) (URI, error) {
	var u URI
	rest, ok := strings.CutPrefix(s, Scheme+":")
	if !ok {
		return u, errors.New("pkcs11 uri: must start with pkcs11:")
	}
	path, query, _ := strings.Cut(rest, "?")
	err := attributes(path, ";", func(k, v string) error {
		switch k {
		case "token":
			u.Token = v
		case "object":
			u.Object = v
		case "type":
			if v != "secret-key" {
				return fmt.Errorf("pkcs11 uri: type=%s: the master key is a secret key (type=secret-key)", v)
			}
		default:
			return fmt.Errorf("pkcs11 uri: path attribute %q is not supported (use token, object and type)", k)
		}
		return nil
	})
	if err != nil {
		return u, err
	}
	err = attributes(query, "&", func(k, v string) error {
		switch k {
		case "module-path":
			u.ModulePath = v
		case "pin-source":
			file, ok := strings.CutPrefix(v, "file:")
			if !ok {
				return errors.New("pkcs11 uri: pin-source must be file:<path>")
			}
			u.PINSource = strings.TrimPrefix(file, "//")
		case "pin-value":
			u.pinValue = v
		default:
			return fmt.Errorf("pkcs11 uri: query attribute %q is not supported (use module-path, pin-source, pin-value)", k)
		}
		return nil
	})
	if err != nil {
		return u, err
	}
	switch {
	case u.Token == "":
		return u, errors.New("pkcs11 uri: token=<label> is required")
	case u.Object == "":
		return u, errors.New("pkcs11 uri: object=<key label> is required")
	case u.ModulePath == "":
		return u, errors.New("pkcs11 uri: module-path=<PKCS#11 library> is required")
	case u.PINSource != "" && u.pinValue != "":
		return u, errors.New("pkcs11 uri: give pin-source or pin-value, not both")
	case u.PINSource == "" && u.pinValue == "":
		return u, errors.New("pkcs11 uri: pin-source=file:<path> (or pin-value) is required")
	}
	return u, nil
}

// attributes calls fn with the name and value of each attribute in list,
// separated by sep (";" in the path, "&" in the query).
func attributes(list, sep string, fn func(k, v string) error) error {
	for _, attr := range strings.Split(list, sep) {
		if attr == "" {
			continue
		}
		k, v, err := attribute(attr)
		if err != nil {
			return err
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func attribute(attr string) (string, string, error) {
	k, v, ok := strings.Cut(attr, "=")
	if !ok {
		return "", "", fmt.Errorf("pkcs11 uri: attribute %q has no value", k)
	}
	v, err := url.PathUnescape(v)
	if err != nil {
		return "", "", fmt.Errorf("pkcs11 uri: attribute %s: bad percent-encoding", k)
	}
	return k, v, nil
}

// PIN returns the user PIN: pin-value, or the first line of the pin-source
// file.
func (u URI) PIN() (string, error) {
	if u.PINSource == "" {
		return u.pinValue, nil
	}
	b, err := os.ReadFile(u.PINSource)
	if err != nil {
		return "", fmt.Errorf("pkcs11: read pin-source: %w", err)
	}
	pin, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimRight(pin, "\r"), nil
}
