// Package oapi checks HTTP responses against the API contracts embedded by
// package api: the SGP v5 credentials document (OpenAPI 3.1) and the Fortanix
// DSM subset (OpenAPI 3.0).
//
//	oapi.SGP(t).Response(t, "GET", "/v5/credentials/abc", rec.Code, rec.Header(), rec.Body.Bytes())
//
// The operation is found by method and path template ("/v5/credentials/abc/secret"
// matches "/v5/credentials/{credential_id}/secret"; a template with more
// literal segments wins over one with parameters). The response declared for
// the status is looked up as kin-openapi does: exact code, then the range
// ("2XX" — which is how DSM declares most successes), then "default". The body
// is then validated with kin-openapi's openapi3filter.ValidateResponse: the
// Content-Type must be one the response declares, and the JSON must match the
// schema (types, required, enums, nullable, oneOf/anyOf/allOf with DSM's
// discriminators, patterns, additionalProperties, formats below).
//
// Statuses an operation does not declare (e.g. an SGP 404, a DSM 4xx) have no
// schema: for SGP the body must still be JSON (FastAPI-style errors); for DSM
// nothing is checked (its clients show error bodies verbatim, JSON or text).
// Response logs a note when that happens. A declared response without content
// (DSM's 204s) must have an empty body.
//
// Extra rule beyond the documents: an SGP success response must not carry a
// "payload" member at the top level or in "items[*]" — the Credential schema
// has no payload (it is write-only; plaintext only comes back as
// CredentialSecret.result), but it does not forbid unknown members, so without
// this rule a leak would validate.
//
// Formats: kin-openapi checks "date", "date-time", "byte", "int32" and "int64"
// itself and ignores formats it does not know. For both documents this
// package adds, per document (no global registration): "uuid" (8-4-4-4-12 hex),
// "email", "ipv4", "ipv6". "password" (SGP) stays unchecked.
//
// OpenAPI 3.1 (SGP): kin-openapi v0.152 loads the 3.1 document as is and
// handles type: 'null' inside anyOf and const (checked by the tests). One gap
// needs a workaround: a schema without "type" (SGP's ValidationError.input)
// rejects null, where JSON Schema 2020-12 accepts anything; see
// fixTypelessSchemas31. The loaded documents are changed in memory only (the
// files in api/ are untouched): that fix for 3.1, and "servers" dropped,
// since operations are matched by path alone.
package oapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/credvault/credvault/api"
)

// Validator validates responses against one contract document. It is safe
// for concurrent use; get one with SGP or DSM.
type Validator struct {
	name   string
	doc    *openapi3.T
	routes []route
	opts   []openapi3.SchemaValidationOption
	// undeclaredMustBeJSON: bodies of undeclared statuses must be JSON (SGP).
	undeclaredMustBeJSON bool
	// forbidPayload: successful bodies must not carry "payload" (SGP).
	forbidPayload bool
}

type route struct {
	template string
	segs     []string // template split on "/"; "{x}" segments are parameters
	literals int
	method   string
	item     *openapi3.PathItem
	op       *openapi3.Operation
}

// contract returns the accessor of one OpenAPI document's Validator,
// configured by configure (if not nil). The document is loaded once per
// test binary, on first use (the ~350 KB DSM document takes tens of
// milliseconds); a document that does not load fails the test.
func contract(name string, data []byte, configure func(*Validator)) func(testing.TB) *Validator {
	loaded := sync.OnceValues(func() (*Validator, error) {
		v, err := load(name, data)
		if v != nil && configure != nil {
			configure(v)
		}
		return v, err
	})
	return func(tb testing.TB) *Validator {
		tb.Helper()
		v, err := loaded()
		if err != nil {
			tb.Fatalf("oapi: loading the %s contract: %v", name, err)
		}
		return v
	}
}

// undeclaredJSON: bodies of statuses a document does not declare must
// still be JSON (SGP, admin, trust).
func undeclaredJSON(v *Validator) { v.undeclaredMustBeJSON = true }

var (
	sgpContract = contract("SGP", api.SGPOpenAPI, func(v *Validator) {
		undeclaredJSON(v)
		v.forbidPayload = true
	})
	dsmContract = contract("DSM", api.DSMOpenAPI, func(v *Validator) {
		// DSM's lookup by kid, beyond the subset (the Terraform provider
		// reads objects with it): the answer of keys/info.
		v.answersAs("GET", "/crypto/v1/keys/{key_id}", "POST", "/crypto/v1/keys/info")
	})
	adminContract = contract("admin", api.AdminOpenAPI, undeclaredJSON)
	trustContract = contract("Trust", api.TrustOpenAPI, undeclaredJSON)
)

// SGP returns the validator for the SGP v5 credentials API.
func SGP(tb testing.TB) *Validator { tb.Helper(); return sgpContract(tb) }

// DSM returns the validator for the Fortanix DSM subset.
func DSM(tb testing.TB) *Validator { tb.Helper(); return dsmContract(tb) }

// Admin returns the validator for the management API (/admin/v1). Its
// undeclared statuses must be JSON, like SGP's.
func Admin(tb testing.TB) *Validator { tb.Helper(); return adminContract(tb) }

// Trust returns the validator for the workload identity endpoints (trust
// policies and the token exchange).
func Trust(tb testing.TB) *Validator { tb.Helper(); return trustContract(tb) }

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func load(name string, data []byte) (*Validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("document does not validate: %w", err)
	}
	doc.Servers = nil // match operations by path only
	if doc.IsOpenAPI31OrLater() {
		if err := fixTypelessSchemas31(doc); err != nil {
			return nil, err
		}
	}

	v := &Validator{name: name, doc: doc}
	v.opts = []openapi3.SchemaValidationOption{
		openapi3.WithStringFormatValidators(map[string]openapi3.StringFormatValidator{
			"uuid": openapi3.NewCallbackValidator(func(s string) error {
				if !uuidRE.MatchString(s) {
					return errors.New("not a UUID (8-4-4-4-12 hex digits)")
				}
				return nil
			}),
			"email": openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail),
			"ipv4":  openapi3.NewIPValidator(true),
			"ipv6":  openapi3.NewIPValidator(false),
		}),
	}
	for template, item := range doc.Paths.Map() {
		segs := strings.Split(template, "/")
		literals := 0
		for _, s := range segs {
			if !isParam(s) {
				literals++
			}
		}
		for method, op := range item.Operations() {
			v.routes = append(v.routes, route{template: template, segs: segs, literals: literals, method: method, item: item, op: op})
		}
	}
	v.sortRoutes()
	return v, nil
}

// sortRoutes orders the routes most specific first: more literal segments,
// then literals earlier in the path.
func (v *Validator) sortRoutes() {
	sort.SliceStable(v.routes, func(i, j int) bool {
		a, b := v.routes[i], v.routes[j]
		if a.literals != b.literals {
			return a.literals > b.literals
		}
		for k := 0; k < len(a.segs) && k < len(b.segs); k++ {
			if pa, pb := isParam(a.segs[k]), isParam(b.segs[k]); pa != pb {
				return pb
			}
		}
		return a.template < b.template
	})
}

// answersAs declares an operation that credvault serves beyond the
// document and that answers exactly as a declared one (like): its responses
// are checked against like's. It panics if like is not in the document.
func (v *Validator) answersAs(method, template, likeMethod, likeTemplate string) {
	for _, r := range v.routes {
		if r.method == likeMethod && r.template == likeTemplate {
			r.method, r.template, r.segs = method, template, strings.Split(template, "/")
			r.literals = 0
			for _, s := range r.segs {
				if !isParam(s) {
					r.literals++
				}
			}
			v.routes = append(v.routes, r)
			v.sortRoutes()
			return
		}
	}
	panic(fmt.Sprintf("oapi: the %s contract has no %s %s", v.name, likeMethod, likeTemplate))
}

// fixTypelessSchemas31 works around a kin-openapi (v0.152) gap in OpenAPI 3.1
// validation. In 3.1 (JSON Schema 2020-12) a schema without "type", such as
// SGP's ValidationError.input ({title: Input}), accepts every value including
// null. kin-openapi validates such schemas, when they hold no 2020-only
// keyword, with its 3.0 validator in "2020 mode", which only accepts null if
// the type list names "null" — so {"input": null} is rejected. Giving each
// typeless schema that has no allOf/anyOf/oneOf/not/enum/const the explicit
// list of all six JSON types is the same schema in JSON Schema terms, and
// makes both of kin-openapi's validators accept null there. Typeless schemas
// with combinators are left alone: their null handling is already right (the
// combinator decides), and an all-types list would short-circuit it.
func fixTypelessSchemas31(doc *openapi3.T) error {
	return doc.WalkSchemas(func(_ string, ref *openapi3.SchemaRef) error {
		s := ref.Value
		if s.Type == nil && len(s.AllOf) == 0 && len(s.AnyOf) == 0 && len(s.OneOf) == 0 &&
			s.Not == nil && len(s.Enum) == 0 && s.Const == nil {
			s.Type = &openapi3.Types{
				openapi3.TypeNull, openapi3.TypeBoolean, openapi3.TypeObject,
				openapi3.TypeArray, openapi3.TypeNumber, openapi3.TypeString,
			}
		}
		return nil
	})
}

func isParam(seg string) bool {
	return strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}")
}

// Response fails tb (Errorf, the test goes on) if the response does not
// conform to the contract; see Check. A status the operation does not declare
// is logged as a note.
func (v *Validator) Response(tb testing.TB, method, path string, status int, header http.Header, body []byte) {
	tb.Helper()
	note, err := v.check(method, path, status, header, body)
	if err != nil {
		tb.Errorf("%s contract: %s %s -> %d: %v\nbody: %s", v.name, method, path, status, err, excerpt(body))
		return
	}
	if note != "" {
		tb.Logf("%s contract: %s %s -> %d: %s", v.name, method, path, status, note)
	}
}

// Check validates a response to method + path (a concrete request path; a
// query string is ignored) with the given status, headers and body. A nil
// header means Content-Type: application/json. It returns nil if the
// response conforms, else an error that says why.
func (v *Validator) Check(method, path string, status int, header http.Header, body []byte) error {
	_, err := v.check(method, path, status, header, body)
	return err
}

// Operation names the operation a request matches ("GET /v5/credentials/{credential_id}",
// operationId), or returns an error if the contract has none.
func (v *Validator) Operation(method, path string) (template, operationID string, err error) {
	r, _, err := v.find(method, path)
	if err != nil {
		return "", "", err
	}
	return r.template, r.op.OperationID, nil
}

func (v *Validator) check(method, path string, status int, header http.Header, body []byte) (note string, err error) {
	method = strings.ToUpper(method)
	r, params, err := v.find(method, path)
	if err != nil {
		return "", err
	}
	responses := r.op.Responses
	resp := responses.Status(status)
	if resp == nil {
		resp = responses.Default()
	}
	if resp == nil || resp.Value == nil {
		declared := strings.Join(sortedKeys(responses.Map()), ", ")
		if v.undeclaredMustBeJSON && method != http.MethodHead {
			if len(bytes.TrimSpace(body)) == 0 || !json.Valid(body) {
				return "", fmt.Errorf("status %d is not declared by %s (declared: %s) and its body is not JSON", status, r.op.OperationID, declared)
			}
			return fmt.Sprintf("status %d not declared by %s (declared: %s); only checked that the body is JSON", status, r.op.OperationID, declared), nil
		}
		return fmt.Sprintf("status %d not declared by %s (declared: %s); body not checked", status, r.op.OperationID, declared), nil
	}
	if len(resp.Value.Content) == 0 {
		if len(body) != 0 {
			return "", fmt.Errorf("%s declares no body for status %d, got %d bytes", r.op.OperationID, status, len(body))
		}
		return "", nil
	}

	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if h.Get("Content-Type") == "" && header == nil {
		h.Set("Content-Type", "application/json")
	}
	if mt, _, perr := mime.ParseMediaType(h.Get("Content-Type")); perr == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		if !json.Valid(body) {
			return "", fmt.Errorf("body is not valid JSON (Content-Type %s)", h.Get("Content-Type"))
		}
	}

	req, err := http.NewRequest(method, "http://contract.invalid"+path, nil)
	if err != nil {
		return "", fmt.Errorf("bad request path %q: %w", path, err)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route: &routers.Route{
				Spec:      v.doc,
				Path:      r.template,
				PathItem:  r.item,
				Method:    r.method,
				Operation: r.op,
			},
		},
		Status: status,
		Header: h,
		Options: &openapi3filter.Options{
			MultiError:              true,
			IncludeResponseStatus:   true,
			SchemaValidationOptions: v.opts,
		},
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		return "", fmt.Errorf("%s (%s %s, response %d): %s", r.op.OperationID, r.method, r.template, status, readable(err))
	}
	if v.forbidPayload && status >= 200 && status < 300 {
		if err := noPayload(body); err != nil {
			return "", err
		}
	}
	return "", nil
}

// find matches method + path against the path templates.
func (v *Validator) find(method, path string) (*route, map[string]string, error) {
	method = strings.ToUpper(method)
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if !strings.HasPrefix(path, "/") {
		return nil, nil, fmt.Errorf("path %q does not start with /", path)
	}
	segs := strings.Split(path, "/")
	var otherMethods []string
	for i := range v.routes {
		r := &v.routes[i]
		params, ok := matchSegs(r.segs, segs)
		if !ok {
			continue
		}
		if r.method != method {
			otherMethods = append(otherMethods, r.method+" "+r.template)
			continue
		}
		return r, params, nil
	}
	if len(otherMethods) > 0 {
		return nil, nil, fmt.Errorf("the %s contract has no %s operation for %s (only %s)", v.name, method, path, strings.Join(otherMethods, ", "))
	}
	return nil, nil, fmt.Errorf("the %s contract has no path matching %s", v.name, path)
}

func matchSegs(template, path []string) (map[string]string, bool) {
	if len(template) != len(path) {
		return nil, false
	}
	params := map[string]string{}
	for i, t := range template {
		if isParam(t) {
			if path[i] == "" {
				return nil, false
			}
			val, err := url.PathUnescape(path[i])
			if err != nil {
				val = path[i]
			}
			params[t[1:len(t)-1]] = val
			continue
		}
		if t != path[i] {
			return nil, false
		}
	}
	return params, true
}

// noPayload enforces the SGP rule that no credential in a response carries
// its payload.
func noPayload(body []byte) error {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return nil // not an object; the schema check has spoken
	}
	if _, ok := top["payload"]; ok {
		return errors.New(`response carries "payload": credentials must never return their payload (only POST .../secret returns it, as "result")`)
	}
	var items []map[string]json.RawMessage
	if raw, ok := top["items"]; ok && json.Unmarshal(raw, &items) == nil {
		for i, it := range items {
			if _, ok := it["payload"]; ok {
				return fmt.Errorf(`items[%d] carries "payload": credentials must never return their payload`, i)
			}
		}
	}
	return nil
}

// readable flattens kin-openapi's nested errors into one line per problem:
// where in the body (JSON pointer), what is wrong, and the offending value.
func readable(err error) string {
	var lines []string
	var re *openapi3filter.ResponseError
	if errors.As(err, &re) && re.Err != nil {
		if re.Reason != "" {
			lines = append(lines, re.Reason+":")
		}
		err = re.Err
	}
	walkInner(err, &lines)
	return strings.Join(lines, "\n")
}

func walkInner(err error, lines *[]string) {
	var me openapi3.MultiError
	if errors.As(err, &me) {
		for _, e := range me {
			walkInner(e, lines)
		}
		return
	}
	var se *openapi3.SchemaError
	if !errors.As(err, &se) {
		*lines = append(*lines, "  - "+strings.TrimSpace(err.Error()))
		return
	}
	loc := "/" + strings.Join(se.JSONPointer(), "/")
	reason := se.Reason
	// The JSON Schema 2020 validator (OpenAPI 3.1) prefixes its own location.
	if strings.HasPrefix(reason, `error at "`) {
		if _, rest, ok := strings.Cut(reason, `": `); ok {
			reason = rest
		}
	}
	reason = atPrefix.ReplaceAllString(reason, "")
	if reason == "" {
		reason = se.Error()
	}
	line := fmt.Sprintf("  - at %s: %s", loc, reason)
	if se.SchemaField != "required" && se.Value != nil {
		if b, err := json.Marshal(se.Value); err == nil {
			v := string(b)
			if len(v) > 120 {
				v = v[:120] + "…"
			}
			line += " (value: " + v + ")"
		}
	}
	if !slices.Contains(*lines, line) { // oneOf branches repeat themselves
		*lines = append(*lines, line)
	}
}

var atPrefix = regexp.MustCompile(`^at '[^']*': `)

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func excerpt(body []byte) string {
	const max = 2000
	if len(body) > max {
		return string(body[:max]) + "…"
	}
	return string(body)
}
