package sgp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// validationItem is one pydantic-v2 style validation error.
type validationItem struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

// validationError carries the 422 detail list. It never carries request
// values: pydantic would echo the input, but a body may hold a payload, so
// credvault omits "input" everywhere.
type validationError struct{ items []validationItem }

func (e *validationError) Error() string {
	parts := make([]string, len(e.items))
	for i, it := range e.items {
		parts[i] = fmt.Sprintf("%v: %s", it.Loc, it.Msg)
	}
	return "validation failed: " + strings.Join(parts, "; ")
}

// Unwrap makes a validation error an Invalid one for vault.KindOf, so that
// the edge logs it as the client's mistake, not as a fault of ours.
func (e *validationError) Unwrap() error { return errValidation }

var errValidation = vault.Errorf(vault.KindInvalid, "request validation failed")

func (e *validationError) add(msg, typ string, loc ...any) {
	e.items = append(e.items, validationItem{Loc: loc, Msg: msg, Type: typ})
}

func (e *validationError) err() error {
	if len(e.items) == 0 {
		return nil
	}
	return e
}

// decodeObject parses a request body that must be a JSON object.
func decodeObject(body []byte) (map[string]json.RawMessage, error) {
	verr := &validationError{}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		verr.add("Field required", "missing", "body")
		return nil, verr
	}
	if !json.Valid(trimmed) {
		verr.add("JSON decode error", "json_invalid", "body", 0)
		return nil, verr
	}
	if trimmed[0] != '{' {
		verr.add("Input should be a valid dictionary or object to extract fields from", "model_attributes_type", "body")
		return nil, verr
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil {
		verr.add("JSON decode error", "json_invalid", "body", 0)
		return nil, verr
	}
	return m, nil
}

// field decoders: each records a pydantic-shaped error and reports whether
// the field was present and well-typed.

func str(m map[string]json.RawMessage, name string, required, nonEmpty bool, verr *validationError) (string, bool) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		if required {
			verr.add("Field required", "missing", "body", name)
		}
		return "", false
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		verr.add("Input should be a valid string", "string_type", "body", name)
		return "", false
	}
	if nonEmpty && s == "" {
		verr.add("String should have at least 1 character", "string_too_short", "body", name)
		return "", false
	}
	return s, true
}

// optStr is str for a field that may be absent: a pointer to its value,
// or nil when it is absent (or invalid: then verr says so).
func optStr(m map[string]json.RawMessage, name string, required, nonEmpty bool, verr *validationError) *string {
	if s, ok := str(m, name, required, nonEmpty, verr); ok {
		return &s
	}
	return nil
}

func object(m map[string]json.RawMessage, name string, verr *validationError) (json.RawMessage, bool) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	if len(raw) == 0 || raw[0] != '{' {
		verr.add("Input should be a valid dictionary", "dict_type", "body", name)
		return nil, false
	}
	return raw, true
}

// readObject reads the request body, which must be a JSON object, and
// decodes its members with decode.
func readObject[T any](h *handlers, r *http.Request, decode func(map[string]json.RawMessage) (T, error)) (T, error) {
	var zero T
	body, err := httpx.ReadBody(r, h.MaxBody)
	if err != nil {
		return zero, err
	}
	m, err := decodeObject(body)
	if err != nil {
		return zero, err
	}
	return decode(m)
}

func decodeCreate(m map[string]json.RawMessage) (vault.CredentialInput, error) {
	verr := &validationError{}
	var in vault.CredentialInput
	in.Type, _ = str(m, "type", true, true, verr)
	in.Name, _ = str(m, "name", true, true, verr)
	in.Description, _ = str(m, "description", false, false, verr)
	payload, ok := str(m, "payload", true, true, verr)
	if ok {
		in.Payload = []byte(payload)
	}
	in.Metadata, _ = object(m, "credential_metadata", verr)
	in.ExpiresAt, _ = expiresAt(m, verr) // extension
	return in, verr.err()
}

func decodeUpdate(m map[string]json.RawMessage) (vault.CredentialPatch, error) {
	verr := &validationError{}
	var p vault.CredentialPatch
	p.Name = optStr(m, "name", false, true, verr)
	p.Type = optStr(m, "type", false, true, verr)
	p.Description = optStr(m, "description", false, false, verr)
	if s, ok := str(m, "payload", false, true, verr); ok {
		p.Payload = []byte(s)
	}
	p.Metadata, _ = object(m, "credential_metadata", verr)
	if t, ok := expiresAt(m, verr); ok { // extension
		p.ExpiresAt = &t
	}
	return p, verr.err()
}

// decodeListQuery validates the list query parameters.
func decodeListQuery(v url.Values) (vault.CredentialQuery, error) {
	verr := &validationError{}
	q := vault.CredentialQuery{Limit: 100}
	if v.Has("name") {
		n := v.Get("name")
		q.Name = &n
	}
	q.After = v.Get("starting_after")
	q.Before = v.Get("ending_before")
	if v.Has("limit") {
		n, err := strconv.Atoi(strings.TrimSpace(v.Get("limit")))
		switch {
		case err != nil:
			verr.add("Input should be a valid integer, unable to parse string as an integer", "int_parsing", "query", "limit")
		case n < 1:
			verr.add("Input should be greater than or equal to 1", "greater_than_equal", "query", "limit")
		case n > vault.MaxListLimit:
			verr.add(fmt.Sprintf("Input should be less than or equal to %d", vault.MaxListLimit), "less_than_equal", "query", "limit")
		default:
			q.Limit = n
		}
	}
	if v.Has("sort_by") {
		s := v.Get("sort_by")
		if !vault.IsSortField(s) {
			verr.add("Input should be 'created_at', 'updated_at', 'name', 'type' or 'id'", "literal_error", "query", "sort_by")
		}
		q.SortBy = s
	}
	switch so := v.Get("sort_order"); so {
	case "", "asc":
	case "desc":
		q.Desc = true
	default:
		verr.add("Input should be 'asc' or 'desc'", "enum", "query", "sort_order")
	}
	if q.After != "" && q.Before != "" {
		verr.add("starting_after and ending_before cannot be used together", "value_error", "query", "ending_before")
	}
	return q, verr.err()
}
