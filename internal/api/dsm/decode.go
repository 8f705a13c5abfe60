package dsm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// Request decoding. DSM clients send JSON without a Content-Type header,
// so none is required. Unknown members are ignored (DSM's forward-
// compatibility rule); wrong types, malformed JSON and unknown union tags
// are 400 with a message naming the field. Messages never echo values.

func invalid(format string, args ...any) error {
	return vault.Errorf(vault.KindInvalid, format, args...)
}

// readJSON reads the body into v. An empty body is an error when required.
func (h *handlers) readJSON(r *http.Request, v any, required bool) (present bool, err error) {
	body, err := httpx.ReadBody(r, h.maxBody)
	if err != nil {
		return false, err
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		if required {
			return false, invalid("a JSON request body is required")
		}
		return false, nil
	}
	return true, decodeJSON(body, v)
}

// decodeJSON decodes body into v. Its errors, first to last: malformed
// JSON, a NUL character escaped in a string, a value of the wrong type.
// (json.Unmarshal checks the whole body before it decodes anything, so a
// malformed body has changed nothing in v.)
func decodeJSON(body []byte, v any) error {
	err := json.Unmarshal(body, v)
	if _, ok := errors.AsType[*json.SyntaxError](err); ok {
		return invalid("malformed JSON in the request body")
	}
	if bytes.Contains(body, []byte(`\u0000`)) { // no letters in it: no case to fold
		return invalid("strings in the request body must not contain NUL characters")
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				return invalid("the request body must be a JSON %s", jsonKind(te.Type.Kind().String()))
			}
			return invalid("invalid type for field %s: expected %s", field, jsonKind(te.Type.Kind().String()))
		}
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return invalid("invalid value in the request body: binary fields must be base64 (standard alphabet)")
		}
		return invalid("invalid request body")
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "struct", "map":
		return "object"
	case "slice":
		return "array"
	case "int", "int64", "uint32", "uint", "float64":
		return "number"
	case "bool":
		return "boolean"
	}
	return k
}

func pathUUID(r *http.Request, name string) (string, error) {
	v := r.PathValue(name)
	if !vault.ValidUUID(v) {
		return "", invalid("%s must be a UUID", name)
	}
	return strings.ToLower(v), nil
}

// ---- sobjects ----

var objectTypes = []string{"AES", "ARIA", "DES", "DES3", "SEED", "RSA", "DSA", "EC", "KCDSA", "ECKCDSA", "BIP32", "SLIP10", "BLS", "OPAQUE",
	"HMAC", "LEDABETA", "ROUND5BETA", "SECRET", "LMS", "XMSS", "MLDSA", "MLDSABETA", "MLKEM", "MLKEMBETA", "CERTIFICATE", "PBE"}

// sobjectRequest is DSM's SobjectRequest (plus deactivate_rotated_key for
// rekey). Fields credvault does not implement are ignored.
type sobjectRequest struct {
	Name               *string            `json:"name"`
	Description        *string            `json:"description"`
	GroupID            *string            `json:"group_id"`
	ObjType            *string            `json:"obj_type"`
	KeySize            *int               `json:"key_size"`
	EllipticCurve      *string            `json:"elliptic_curve"`
	KeyOps             *[]string          `json:"key_ops"`
	CustomMetadata     *map[string]string `json:"custom_metadata"`
	Enabled            *bool              `json:"enabled"`
	AllowCredentialUse *bool              `json:"allow_credential_use"`
	Value              *[]byte            `json:"value"`
	Transient          *bool              `json:"transient"`
	State              *string            `json:"state"`
	DeactivationDate   *string            `json:"deactivation_date"`
	Rsa                *struct {
		KeySize *int `json:"key_size"`
	} `json:"rsa"`
	DeactivateRotatedKey *bool `json:"deactivate_rotated_key"`
}

func (q *sobjectRequest) input() (vault.SobjectInput, error) {
	in := vault.SobjectInput{Name: q.Name, Description: q.Description, GroupID: q.GroupID, ObjType: q.ObjType, KeySize: q.KeySize,
		EllipticCurve: q.EllipticCurve, Enabled: q.Enabled, AllowCredentialUse: q.AllowCredentialUse, State: q.State}
	if q.ObjType != nil && !slices.Contains(objectTypes, *q.ObjType) {
		return in, invalid("unknown obj_type")
	}
	if q.KeySize == nil && q.Rsa != nil {
		in.KeySize = q.Rsa.KeySize
	}
	if in.KeySize != nil && *in.KeySize < 0 {
		return in, invalid("key_size must not be negative")
	}
	if q.KeyOps != nil {
		in.KeyOps = *q.KeyOps
		if in.KeyOps == nil {
			in.KeyOps = []string{}
		}
	}
	in.CustomMetadata = metadataOf(q.CustomMetadata)
	in.Value = bytesOf(q.Value)
	if q.Transient != nil {
		in.Transient = *q.Transient
	}
	if q.State != nil && *q.State != vault.StateActive && *q.State != vault.StateDeactivated {
		return in, invalid("state must be Active or Deactivated")
	}
	if q.DeactivationDate != nil {
		t, err := parseCompactTime(*q.DeactivationDate)
		if err != nil {
			return in, invalid("deactivation_date must be a YYYYMMDDTHHMMSSZ time")
		}
		in.DeactivationDate = &t
	}
	if q.GroupID != nil && !vault.ValidUUID(*q.GroupID) {
		return in, invalid("group_id must be a UUID")
	}
	return in, nil
}

// rekeyInput is the request of POST /crypto/v1/keys/rekey: the new
// object's fields and deactivate_rotated_key.
func (q *sobjectRequest) rekeyInput() (vault.RekeyInput, error) {
	in, err := q.input()
	rk := vault.RekeyInput{In: in, Retired: retiredName}
	if q.DeactivateRotatedKey != nil {
		rk.Deactivate = *q.DeactivateRotatedKey
	}
	return rk, err
}

// descriptor is DSM's SobjectDescriptor: exactly one of kid, name,
// transient_key, inline. credvault resolves persisted objects and
// transient ones; inline keys are not supported.
type descriptor struct {
	Kid          *string  `json:"kid"`
	Name         *string  `json:"name"`
	TransientKey *[]byte  `json:"transient_key"`
	Inline       *rawJSON `json:"inline"`
}

func (d *descriptor) resolve(field string) (vault.SobjectDescriptor, error) {
	n := 0
	for _, set := range []bool{d.Kid != nil, d.Name != nil, d.TransientKey != nil, d.Inline != nil} {
		if set {
			n++
		}
	}
	switch {
	case n != 1:
		return vault.SobjectDescriptor{}, invalid("%s must name exactly one of kid, name, transient_key or inline", field)
	case d.Inline != nil:
		return vault.SobjectDescriptor{}, invalid("%s: inline keys are not supported; use kid, name or transient_key", field)
	case d.TransientKey != nil:
		if len(*d.TransientKey) == 0 {
			return vault.SobjectDescriptor{}, invalid("%s.transient_key must not be empty", field)
		}
		return vault.SobjectDescriptor{Transient: *d.TransientKey}, nil
	case d.Kid != nil:
		if !vault.ValidUUID(*d.Kid) {
			return vault.SobjectDescriptor{}, invalid("%s.kid must be a UUID", field)
		}
		return vault.SobjectDescriptor{KID: strings.ToLower(*d.Kid)}, nil
	}
	if strings.TrimSpace(*d.Name) == "" {
		return vault.SobjectDescriptor{}, invalid("%s.name must not be empty", field)
	}
	return vault.SobjectDescriptor{Name: *d.Name}, nil
}

type signRequest struct {
	Key     *descriptor `json:"key"`
	HashAlg *string     `json:"hash_alg"`
	Hash    *[]byte     `json:"hash"`
	Data    *[]byte     `json:"data"`
	Mode    *struct {
		PSS   *mgfPadding `json:"PSS"`
		PKCS1 *struct{}   `json:"PKCS1_V15"`
	} `json:"mode"`
	Signature *[]byte  `json:"signature"`
	Context   *rawJSON `json:"context"`
}

// mgfPadding is an RSA padding with a mask generation function, DSM's PSS
// (signatures) and OAEP (encryption): {"mgf": {"mgf1": {"hash": …}}}.
type mgfPadding struct {
	Mgf *struct {
		Mgf1 *struct {
			Hash string `json:"hash"`
		} `json:"mgf1"`
	} `json:"mgf"`
}

// hash is the MGF1 hash of the padding at field, which is required.
func (p *mgfPadding) hash(field string) (string, error) {
	if p.Mgf == nil || p.Mgf.Mgf1 == nil {
		return "", invalid("%s.mgf.mgf1.hash is required", field)
	}
	return p.Mgf.Mgf1.Hash, nil
}

func (q *signRequest) input(verify bool) (vault.SignInput, error) {
	var in vault.SignInput
	var err error
	if in.Key, err = operationKey(q.Key, "key is required"); err != nil {
		return in, err
	}
	if q.HashAlg == nil {
		return in, invalid("hash_alg is required")
	}
	in.HashAlg = *q.HashAlg
	in.Hash, in.Data = bytesOf(q.Hash), bytesOf(q.Data)
	if q.Context != nil {
		return in, invalid("context applies to ML-DSA keys only")
	}
	if q.Mode != nil {
		switch {
		case q.Mode.PSS != nil && q.Mode.PKCS1 != nil:
			return in, invalid("mode must be exactly one of PSS or PKCS1_V15")
		case q.Mode.PSS != nil:
			in.PSS = true
			if in.MGFHash, err = q.Mode.PSS.hash("mode.PSS"); err != nil {
				return in, err
			}
		case q.Mode.PKCS1 == nil:
			return in, invalid("unknown signature mode (supported: PSS, PKCS1_V15)")
		}
	}
	if verify {
		if q.Signature == nil {
			return in, invalid("signature is required")
		}
		in.Signature = orEmpty(*q.Signature)
	}
	return in, nil
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// bytesOf is an optional binary member: nil when absent, never nil when
// present (an empty or null value is empty).
func bytesOf(p *[]byte) []byte {
	if p == nil {
		return nil
	}
	return orEmpty(*p)
}

// metadataOf is an optional custom_metadata member: nil when absent (left
// unchanged), never nil when present (null clears it).
func metadataOf(p *map[string]string) map[string]string {
	if p == nil {
		return nil
	}
	if *p == nil {
		return map[string]string{}
	}
	return *p
}

// operationKey resolves the key member of a cryptographic operation's
// request; missing is the message when it is absent.
func operationKey(d *descriptor, missing string) (vault.SobjectDescriptor, error) {
	if d == nil {
		return vault.SobjectDescriptor{}, invalid("%s", missing)
	}
	return d.resolve("key")
}

// ---- query parameters ----

type query struct {
	v   url.Values
	err error
}

func (q *query) int(name string) int {
	s := q.v.Get(name)
	if s == "" || q.err != nil {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		q.err = invalid("%s must be a non-negative integer", name)
	}
	return n
}

func (q *query) bool(name string) bool {
	s := q.v.Get(name)
	if s == "" || q.err != nil {
		return false
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		q.err = invalid("%s must be true or false", name)
	}
	return b
}

func (q *query) uuid(name string) string {
	s := q.v.Get(name)
	if s != "" && !vault.ValidUUID(s) && q.err == nil {
		q.err = invalid("%s must be a UUID", name)
	}
	return strings.ToLower(s)
}

// sort parses "field", "field:asc" or "field:desc" for the allowed
// fields; a bare field is ascending (DSM's Go client sends sort=kid).
func (q *query) sort(name string, fields ...string) (field string, desc bool) {
	s := q.v.Get(name)
	if s == "" || q.err != nil {
		return "", false
	}
	f, dir, hasDir := strings.Cut(s, ":")
	if !slices.Contains(fields, f) || (hasDir && dir != "asc" && dir != "desc") {
		q.err = invalid("%s must be one of %s, optionally followed by :asc or :desc", name, strings.Join(fields, ", "))
		return "", false
	}
	return f, dir == "desc"
}

// ---- integration credentials ----

// Integration credentials: the dialect decodes the shape of their $type-
// tagged unions (credential_details.$type, credential_details.body.$type,
// method.$type) and passes the tags on; which variants and rotation
// methods exist, and what each variant requires, is the core's
// (vault.Credentials), whose errors wireMessage renders in DSM's names.

// unionTag decodes the $type tag of a union member named field, which is
// required; supported lists the known tags for the message.
func unionTag(field string, tag *string, supported []string) (string, error) {
	if tag == nil {
		return "", invalid("%s is required (%s)", field, strings.Join(supported, " or "))
	}
	return *tag, nil
}

// rotateRequest is the body of POST /sys/v1/credentials/{cred_id}/rotate.
type rotateRequest struct {
	Method *struct {
		Type *string `json:"$type"`
	} `json:"method"`
}

// method is the requested rotation method.
func (q *rotateRequest) method() (string, error) {
	var tag *string
	if q.Method != nil {
		tag = q.Method.Type
	}
	return unionTag("method.$type", tag, vault.Credentials.RotationMethods)
}

// credentialDetails decodes the $type-tagged CredentialDetails union. Of
// the body it reads the fields table gives the variant, as strings
// (references are ids: lowercased), and ignores other members; a variant
// table does not have is passed on with its tags only, for the core to
// refuse.
func credentialDetails(table *vault.CredentialTable, raw json.RawMessage) (*vault.CredentialDetails, error) {
	var outer struct {
		Type *string         `json:"$type"`
		Body json.RawMessage `json:"body"`
	}
	if err := decodeJSON(raw, &outer); err != nil {
		return nil, invalid("credential_details must be an object with $type and body")
	}
	provider, err := unionTag("credential_details.$type", outer.Type, table.Providers())
	if err != nil {
		return nil, err
	}
	d := &vault.CredentialDetails{Provider: provider}
	if len(outer.Body) == 0 || string(outer.Body) == "null" {
		return nil, invalid("credential_details.body is required")
	}
	var body map[string]json.RawMessage
	if err := decodeJSON(outer.Body, &body); err != nil {
		if e := (*vault.Error)(nil); errors.As(err, &e) {
			return nil, invalid("credential_details.body: %s", e.Msg)
		}
		return nil, err
	}
	str := func(name string) (*string, error) {
		var s *string
		if raw, ok := body[name]; ok && json.Unmarshal(raw, &s) != nil {
			return nil, invalid("credential_details.body: invalid type for field %s: expected string", name)
		}
		return s, nil
	}
	auth, err := str("$type")
	if err != nil {
		return nil, err
	}
	if auth == nil {
		return nil, invalid("credential_details.body.$type is required")
	}
	d.Auth = *auth
	if v := table.Variant(d.Provider, d.Auth); v != nil {
		for _, f := range v.Fields {
			s, err := str(f.Name)
			if err != nil {
				return nil, err
			}
			switch {
			case s == nil:
			case f.Ref != nil:
				d.SetField(f.Name, strings.ToLower(*s)) // ids are lowercase
			default:
				d.SetField(f.Name, *s)
			}
		}
	}
	return d, nil
}

type credentialRequest struct {
	Name              *string         `json:"name"`
	Description       json.RawMessage `json:"description"`
	GroupID           *string         `json:"group_id"`
	CredentialDetails json.RawMessage `json:"credential_details"`
}

func (q *credentialRequest) input() (vault.IntegrationCredentialInput, error) {
	in := vault.IntegrationCredentialInput{Name: q.Name, GroupID: q.GroupID}
	if q.GroupID != nil {
		g := strings.ToLower(*q.GroupID)
		in.GroupID = &g
	}
	if len(q.Description) > 0 {
		if string(q.Description) == "null" {
			in.Description = nil
		} else {
			var s string
			if json.Unmarshal(q.Description, &s) != nil {
				return in, invalid("invalid type for field description: expected string")
			}
			in.Description = &s
		}
	}
	if len(q.CredentialDetails) > 0 && string(q.CredentialDetails) != "null" {
		d, err := credentialDetails(&vault.Credentials, q.CredentialDetails)
		if err != nil {
			return in, err
		}
		in.Details = d
	}
	return in, nil
}

// ---- encrypt / decrypt ----

// cryptRequest is DSM's EncryptRequest and DecryptRequest.
type cryptRequest struct {
	Key    *descriptor `json:"key"`
	Alg    *string     `json:"alg"`
	Plain  *[]byte     `json:"plain"`
	Cipher *[]byte     `json:"cipher"`
	Mode   rawJSON     `json:"mode"`
	IV     *[]byte     `json:"iv"`
	AD     *[]byte     `json:"ad"`
	Tag    *[]byte     `json:"tag"`
	TagLen *int        `json:"tag_len"`
	Label  *[]byte     `json:"label"`
	Masked *bool       `json:"masked"`
}

var cipherModes = []string{"ECB", "CBC", "CBCNOPAD", "CFB", "OFB", "CTR", "GCM", "CCM", "KW", "KWP", "FF1"}

// cryptMode decodes DSM's CryptMode: a CipherMode string, or an
// RsaEncryptionPadding object ({"OAEP": {"mgf": {"mgf1": {"hash": …}}}},
// {"PKCS1_V15": {}}).
func cryptMode(raw rawJSON, in *vault.CryptInput) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if !slices.Contains(cipherModes, s) {
			return invalid("unknown mode")
		}
		in.Mode = s
		return nil
	}
	var pad struct {
		OAEP       *mgfPadding `json:"OAEP"`
		PKCS1      *struct{}   `json:"PKCS1_V15"`
		RawDecrypt *struct{}   `json:"RAW_DECRYPT"`
	}
	if err := decodeJSON(raw, &pad); err != nil {
		return invalid("mode must be a cipher mode or an RSA padding object")
	}
	switch {
	case (pad.OAEP != nil) == (pad.PKCS1 != nil) && pad.RawDecrypt == nil:
		return invalid("mode must name exactly one RSA padding (OAEP or PKCS1_V15)")
	case pad.RawDecrypt != nil:
		return invalid("RAW_DECRYPT is not supported (use OAEP or PKCS1_V15)")
	case pad.PKCS1 != nil:
		in.Mode = "PKCS1_V15"
	default:
		hash, err := pad.OAEP.hash("mode.OAEP")
		if err != nil {
			return err
		}
		in.Mode, in.MGFHash = "OAEP", hash
	}
	return nil
}

func (q *cryptRequest) input(decrypt bool) (vault.CryptInput, error) {
	var in vault.CryptInput
	var err error
	if in.Key, err = operationKey(q.Key, "key is required"); err != nil {
		return in, err
	}
	if q.Alg != nil {
		in.Alg = *q.Alg
	}
	if !decrypt && in.Alg == "" {
		return in, invalid("alg is required")
	}
	if in.Alg != "" && in.Alg != "AES" && in.Alg != "RSA" {
		return in, invalid("unsupported alg (credvault encrypts with AES and RSA)")
	}
	if decrypt {
		if q.Cipher == nil {
			return in, invalid("cipher is required")
		}
		in.Data = orEmpty(*q.Cipher)
		if q.Masked != nil && *q.Masked {
			return in, invalid("masked applies to format-preserving decryption, which is not supported")
		}
	} else {
		if q.Plain == nil {
			return in, invalid("plain is required")
		}
		in.Data = orEmpty(*q.Plain)
		if q.Tag != nil {
			return in, invalid("tag is an output of encryption")
		}
	}
	if err := cryptMode(q.Mode, &in); err != nil {
		return in, err
	}
	in.IV, in.AD, in.Tag = bytesOf(q.IV), bytesOf(q.AD), bytesOf(q.Tag)
	if q.TagLen != nil {
		if *q.TagLen <= 0 {
			return in, invalid("tag_len must be 96, 104, 112, 120 or 128 bits")
		}
		in.TagLen = *q.TagLen
	}
	in.Label = bytesOf(q.Label)
	return in, nil
}

// credentialFilterFields are the fields credentialFilter accepts.
var credentialFilterFields = []string{"name", "group_id", "credential_id", "type", "creator"}

// credentialFilter parses credvault's credential filter: a JSON object
// whose keys are name, group_id, credential_id, type (Oci|Azure) or
// creator, each mapped to a string, {"$eq": string} or {"$in": [string…]};
// all conditions must hold.
func credentialFilter(s string) (vault.CredentialFilter, error) {
	var f vault.CredentialFilter
	if strings.TrimSpace(s) == "" {
		return f, nil
	}
	bad := func(format string, args ...any) error {
		return vault.FieldError("filter", "filter: "+format+` (expected a JSON object such as {"name": {"$in": ["a", "b"]}, "type": "Oci"}; fields: %s)`,
			append(args, strings.Join(credentialFilterFields, ", "))...)
	}
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(strings.NewReader(s)).Decode(&raw); err != nil || raw == nil {
		return f, bad("not a JSON object")
	}
	lists := map[string]*[]string{"name": &f.Names, "group_id": &f.GroupIDs, "credential_id": &f.IDs, "type": &f.Types, "creator": &f.Creators}
	for k, v := range raw {
		list, ok := lists[k]
		if !ok {
			return f, bad("unknown field %q", k)
		}
		var str string
		if json.Unmarshal(v, &str) == nil {
			*list = []string{str}
			continue
		}
		var op map[string]json.RawMessage
		if json.Unmarshal(v, &op) != nil || len(op) != 1 {
			return f, bad("the condition on %q must be a string or one operator", k)
		}
		for name, arg := range op {
			switch name {
			case "$eq":
				if json.Unmarshal(arg, &str) != nil {
					return f, bad("$eq takes a string")
				}
				*list = []string{str}
			case "$in":
				if json.Unmarshal(arg, list) != nil {
					return f, bad("$in takes an array of strings")
				}
				if *list == nil {
					*list = []string{} // null: a list of nothing, matched by nothing
				}
			default:
				return f, bad("unsupported operator %q", name)
			}
		}
	}
	return f, nil
}

// parseCompactTime parses DSM's YYYYMMDDTHHMMSSZ form.
func parseCompactTime(s string) (time.Time, error) {
	t, err := time.Parse("20060102T150405Z0700", strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("not a YYYYMMDDTHHMMSSZ time")
	}
	return t.UTC(), nil
}

// retiredName is the name DSM gives an object replaced by a rekey:
// "<name> (rotated at <compact time>)".
func retiredName(name string, at time.Time) string {
	return name + " (rotated at " + compact(at) + ")"
}
