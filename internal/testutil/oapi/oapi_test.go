package oapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// mutate decodes a JSON object, applies f, and re-encodes it.
func mutate(t *testing.T, body string, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPass(t *testing.T, v *Validator, method, path string, status int, body []byte) {
	t.Helper()
	if err := v.Check(method, path, status, jsonHeader, body); err != nil {
		t.Errorf("%s %s %d: want valid, got: %v\nbody: %s", method, path, status, err, body)
	}
}

func mustFail(t *testing.T, v *Validator, method, path string, status int, body []byte, want string) {
	t.Helper()
	err := v.Check(method, path, status, jsonHeader, body)
	if err == nil {
		t.Errorf("%s %s %d: want a validation error mentioning %q, got none\nbody: %s", method, path, status, want, body)
		return
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s %s %d: error does not mention %q:\n%v", method, path, status, want, err)
	}
	t.Logf("expected failure: %v", err)
}

const sgpCredential = `{
	"id": "cred_01HZX",
	"object": "credential",
	"created_by_user_id": "user_1",
	"created_by_identity_type": "user",
	"type": "key",
	"name": "openai-key",
	"description": "",
	"credential_metadata": {"team": "ml", "n": 3},
	"created_at": "2024-05-01T10:11:12.345Z",
	"updated_at": "2024-05-01T10:11:12Z"
}`

func TestSGPCredential(t *testing.T) {
	v := SGP(t)
	for _, tc := range []struct{ method, path string }{
		{"POST", "/v5/credentials"},
		{"GET", "/v5/credentials/cred_01HZX"},
		{"PATCH", "/v5/credentials/cred_01HZX"},
		{"GET", "/v5/credentials/name/openai-key"},
		{"GET", "/v5/credentials/name/secret"}, // a credential named "secret"
		{"GET", "/v5/credentials/name/a%2Fb?x=1"},
	} {
		mustPass(t, v, tc.method, tc.path, 200, []byte(sgpCredential))
	}

	// The payload-free Credential shape passes; "object" is optional.
	mustPass(t, v, "GET", "/v5/credentials/c1", 200, mutate(t, sgpCredential, func(m map[string]any) { delete(m, "object") }))

	mustFail(t, v, "GET", "/v5/credentials/c1", 200,
		mutate(t, sgpCredential, func(m map[string]any) { delete(m, "created_by_user_id") }), "created_by_user_id")
	mustFail(t, v, "GET", "/v5/credentials/c1", 200,
		mutate(t, sgpCredential, func(m map[string]any) { m["description"] = nil }), "description")
	mustFail(t, v, "GET", "/v5/credentials/c1", 200,
		mutate(t, sgpCredential, func(m map[string]any) { m["created_at"] = "2024-05-01 10:11:12" }), "created_at")
	mustFail(t, v, "GET", "/v5/credentials/c1", 200,
		mutate(t, sgpCredential, func(m map[string]any) { m["credential_metadata"] = "x" }), "credential_metadata")
	// Extra rule: a payload must never come back.
	mustFail(t, v, "GET", "/v5/credentials/c1", 200,
		mutate(t, sgpCredential, func(m map[string]any) { m["payload"] = "sk-123" }), "payload")
}

func TestSGPOtherOperations(t *testing.T) {
	v := SGP(t)
	page := `{"object": "list", "items": [` + sgpCredential + `], "total": 1, "has_more": false, "limit": 100}`
	mustPass(t, v, "GET", "/v5/credentials?limit=100", 200, []byte(page))
	mustPass(t, v, "GET", "/v5/credentials", 200, []byte(`{"items": [], "total": 0, "has_more": false}`))
	// const: list (OpenAPI 3.1 keyword) is enforced.
	mustFail(t, v, "GET", "/v5/credentials", 200, mutate(t, page, func(m map[string]any) { m["object"] = "page" }), "object")
	mustFail(t, v, "GET", "/v5/credentials", 200, mutate(t, page, func(m map[string]any) { delete(m, "has_more") }), "has_more")
	mustFail(t, v, "GET", "/v5/credentials", 200, mutate(t, page, func(m map[string]any) {
		m["items"].([]any)[0].(map[string]any)["payload"] = "sk"
	}), "payload")
	mustFail(t, v, "GET", "/v5/credentials", 200, mutate(t, page, func(m map[string]any) {
		delete(m["items"].([]any)[0].(map[string]any), "name")
	}), "name")

	mustPass(t, v, "POST", "/v5/credentials/c1/secret", 200, []byte(`{"result": "sk-123", "object": "credential_secret"}`))
	mustPass(t, v, "POST", "/v5/credentials/name/openai-key/secret", 200, []byte(`{"result": "{\"a\":1}"}`))
	mustFail(t, v, "POST", "/v5/credentials/c1/secret", 200, []byte(`{"result": {"a": 1}}`), "result")

	mustPass(t, v, "DELETE", "/v5/credentials/c1", 200, []byte(`{"id": "c1", "deleted": true, "object": "credential"}`))
	mustFail(t, v, "DELETE", "/v5/credentials/c1", 200, []byte(`{"id": "c1"}`), "deleted")

	// 422 is declared: FastAPI HTTPValidationError.
	mustPass(t, v, "POST", "/v5/credentials", 422, []byte(`{"detail": [{"loc": ["body", "name"], "msg": "Field required", "type": "missing", "input": null}]}`))
	mustFail(t, v, "POST", "/v5/credentials", 422, []byte(`{"detail": [{"loc": ["body", 1.5], "msg": "x", "type": "missing"}]}`), "loc")
	mustFail(t, v, "POST", "/v5/credentials", 422, []byte(`{"detail": "nope"}`), "detail")

	// Undeclared status: body must be JSON, nothing more.
	mustPass(t, v, "GET", "/v5/credentials/nope", 404, []byte(`{"detail": "Credential not found"}`))
	mustFail(t, v, "GET", "/v5/credentials/nope", 404, []byte("404 page not found\n"), "not JSON")

	// Wrong content type, invalid JSON, unknown operations.
	if err := v.Check("GET", "/v5/credentials/c1", 200, http.Header{"Content-Type": {"text/plain"}}, []byte(sgpCredential)); err == nil {
		t.Error("text/plain response validated")
	}
	if err := v.Check("GET", "/v5/credentials/c1", 200, http.Header{"Content-Type": {"application/json; charset=utf-8"}}, []byte(sgpCredential)); err != nil {
		t.Errorf("charset parameter rejected: %v", err)
	}
	if err := v.Check("GET", "/v5/credentials/c1", 200, nil, []byte(sgpCredential)); err != nil {
		t.Errorf("nil header should mean JSON: %v", err)
	}
	mustFail(t, v, "GET", "/v5/credentials/c1", 200, []byte(sgpCredential+"}"), "not valid JSON")
	mustFail(t, v, "PUT", "/v5/credentials/c1", 200, []byte(sgpCredential), "no PUT operation")
	mustFail(t, v, "GET", "/v6/credentials", 200, []byte(sgpCredential), "no path matching")
}

func TestOperationMatching(t *testing.T) {
	for _, tc := range []struct {
		v            *Validator
		method, path string
		template     string
	}{
		{SGP(t), "POST", "/v5/credentials/abc/secret", "/v5/credentials/{credential_id}/secret"},
		{SGP(t), "POST", "/v5/credentials/name/secret", "/v5/credentials/{credential_id}/secret"},
		{SGP(t), "GET", "/v5/credentials/name/secret", "/v5/credentials/name/{credential_name}"},
		{SGP(t), "POST", "/v5/credentials/name/x/secret", "/v5/credentials/name/{credential_name}/secret"},
		{SGP(t), "get", "/v5/credentials/name", "/v5/credentials/{credential_id}"},
		{DSM(t), "POST", "/crypto/v1/keys/info", "/crypto/v1/keys/info"},
		{DSM(t), "PATCH", "/crypto/v1/keys/0b0e4d2c-9f39-4a4f-a0c7-3b1f1d6d8a11", "/crypto/v1/keys/{key_id}"},
		{DSM(t), "POST", "/sys/v1/credentials/abc/rotate", "/sys/v1/credentials/{cred_id}/rotate"},
	} {
		got, _, err := tc.v.Operation(tc.method, tc.path)
		if err != nil || got != tc.template {
			t.Errorf("%s %s: got %q, %v; want %q", tc.method, tc.path, got, err, tc.template)
		}
	}
}

const (
	uuid1 = "6b2f9b8e-3c1a-4d3e-9f2a-1a2b3c4d5e6f"
	uuid2 = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
	uuid3 = "11111111-2222-4333-8444-555555555555"
)

const dsmIntegrationCredential = `{
	"credential_id": "` + uuid1 + `",
	"name": "oci-prod",
	"description": null,
	"group_id": "` + uuid2 + `",
	"created_at": "20240501T101112Z",
	"creator": {"app": "` + uuid3 + `"},
	"credential_details": {
		"$type": "Oci",
		"body": {"$type": "ApiKey", "user_ocid": "ocid1.user.oc1..aaa", "tenant_ocid": "ocid1.tenancy.oc1..bbb", "signing_key": "` + uuid3 + `"}
	}
}`

func TestDSMIntegrationCredential(t *testing.T) {
	v := DSM(t)
	p := "/sys/v1/credentials/" + uuid1
	mustPass(t, v, "GET", p, 200, []byte(dsmIntegrationCredential))
	// 2XX matches any 2xx.
	mustPass(t, v, "POST", "/sys/v1/credentials", 201, []byte(dsmIntegrationCredential))
	mustPass(t, v, "PATCH", p, 200, mutate(t, dsmIntegrationCredential, func(m map[string]any) {
		m["creator"] = "system"
		m["description"] = "d"
		m["credential_details"] = map[string]any{"$type": "Azure", "body": map[string]any{
			"$type": "ClientSecret", "tenant_id": "t", "client_id": "c", "client_secret": uuid3}}
	}))
	mustPass(t, v, "GET", p, 200, mutate(t, dsmIntegrationCredential, func(m map[string]any) {
		m["creator"] = map[string]any{"user": uuid3}
		m["some_future_field"] = 1 // clients ignore unknown fields
	}))

	mustFail(t, v, "GET", p, 200, mutate(t, dsmIntegrationCredential, func(m map[string]any) { m["creator"] = nil }), "creator")
	mustFail(t, v, "GET", p, 200, mutate(t, dsmIntegrationCredential, func(m map[string]any) { delete(m, "creator") }), "creator")
	mustFail(t, v, "GET", p, 200, mutate(t, dsmIntegrationCredential, func(m map[string]any) { m["creator"] = "nobody" }), "creator")
	mustFail(t, v, "GET", p, 200, mutate(t, dsmIntegrationCredential, func(m map[string]any) { m["credential_id"] = "not-a-uuid" }), "credential_id")
	mustFail(t, v, "GET", p, 200, mutate(t, dsmIntegrationCredential, func(m map[string]any) { m["name"] = "two\nlines" }), "name")
	mustFail(t, v, "GET", p, 200, mutate(t, dsmIntegrationCredential, func(m map[string]any) {
		delete(m["credential_details"].(map[string]any)["body"].(map[string]any), "signing_key")
	}), "signing_key")
	mustFail(t, v, "GET", p, 200, mutate(t, dsmIntegrationCredential, func(m map[string]any) {
		m["credential_details"].(map[string]any)["$type"] = "Gcp"
	}), "credential_details")
	// Only 2XX is declared: a 4xx body is not checked (DSM errors may be text).
	if err := v.Check("GET", p, 404, http.Header{"Content-Type": {"text/plain"}}, []byte("credential not found")); err != nil {
		t.Errorf("undeclared DSM status: %v", err)
	}
}

func TestDSMTimestampsAreCompact(t *testing.T) {
	v := DSM(t)
	p := "/sys/v1/credentials/" + uuid1
	for _, ts := range []string{
		"2024-05-01T10:11:12Z",
		time.Date(2024, 5, 1, 10, 11, 12, 0, time.UTC).Format(time.RFC3339Nano),
		"20240501T101112",
		"20240501T101112.000Z",
		"20240501T101112+0000",
		"",
	} {
		mustFail(t, v, "GET", p, 200, mutate(t, dsmIntegrationCredential, func(m map[string]any) { m["created_at"] = ts }), "created_at")
	}
	mustFail(t, v, "GET", p, 200, mutate(t, dsmIntegrationCredential, func(m map[string]any) { m["created_at"] = 1714558272 }), "created_at")
	mustPass(t, v, "GET", p, 200, mutate(t, dsmIntegrationCredential, func(m map[string]any) {
		m["created_at"] = time.Date(2024, 5, 1, 10, 11, 12, 0, time.UTC).Format("20060102T150405Z")
	}))
}

func TestDSMListCredentials(t *testing.T) {
	v := DSM(t)
	list := `{"items": [` + dsmIntegrationCredential + `], "metadata": {"total_count": 1, "filtered_count": 1}}`
	mustPass(t, v, "GET", "/sys/v1/credentials?limit=10&offset=0", 200, []byte(list))
	mustFail(t, v, "GET", "/sys/v1/credentials", 200, mutate(t, list, func(m map[string]any) { delete(m, "metadata") }), "metadata")
	mustFail(t, v, "GET", "/sys/v1/credentials", 200, mutate(t, list, func(m map[string]any) {
		delete(m["metadata"].(map[string]any), "filtered_count")
	}), "filtered_count")
	mustFail(t, v, "GET", "/sys/v1/credentials", 200, []byte(`[`+dsmIntegrationCredential+`]`), "object")
}

const dsmGroup = `{
	"acct_id": "` + uuid1 + `",
	"group_id": "` + uuid2 + `",
	"name": "default",
	"created_at": "20240501T101112Z",
	"creator": {"user": "` + uuid3 + `"},
	"client_configurations": {}
}`

func TestDSMGroupAndNoContent(t *testing.T) {
	v := DSM(t)
	p := "/sys/v1/groups/" + uuid2
	mustPass(t, v, "GET", p, 200, []byte(dsmGroup))
	mustPass(t, v, "GET", "/sys/v1/groups", 200, []byte(`[`+dsmGroup+`]`))
	mustFail(t, v, "GET", p, 200, mutate(t, dsmGroup, func(m map[string]any) { delete(m, "group_id") }), "group_id")
	mustFail(t, v, "GET", p, 200, mutate(t, dsmGroup, func(m map[string]any) { delete(m, "client_configurations") }), "client_configurations")

	// 204 responses declare no body.
	if err := v.Check("DELETE", p, 204, nil, nil); err != nil {
		t.Errorf("empty 204: %v", err)
	}
	mustFail(t, v, "DELETE", p, 204, []byte(`{}`), "no body")
	mustPass(t, v, "GET", "/sys/v1/version", 200, []byte(`{"version": "4.23.2000", "api_version": "1.0", "server_mode": "Software"}`))
	mustFail(t, v, "GET", "/sys/v1/version", 200, []byte(`{"version": "4.23.2000", "api_version": "1.0", "server_mode": "Cloud"}`), "server_mode")
}

// fakeTB records Errorf calls so Response's failure path can be tested.
type fakeTB struct {
	testing.TB
	errors, logs []string
}

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Errorf(format string, args ...any) { f.errors = append(f.errors, format) }
func (f *fakeTB) Logf(format string, args ...any)   { f.logs = append(f.logs, format) }

func TestResponseReportsThroughTB(t *testing.T) {
	v := SGP(t)
	ft := &fakeTB{TB: t}
	v.Response(ft, "GET", "/v5/credentials/c1", 200, jsonHeader, []byte(sgpCredential))
	if len(ft.errors) != 0 {
		t.Fatalf("valid body reported: %v", ft.errors)
	}
	v.Response(ft, "GET", "/v5/credentials/c1", 200, jsonHeader, []byte(`{}`))
	if len(ft.errors) != 1 {
		t.Fatalf("invalid body: got %d errors", len(ft.errors))
	}
	v.Response(ft, "GET", "/v5/credentials/c1", 404, jsonHeader, []byte(`{"detail":"Not Found"}`))
	if len(ft.errors) != 1 || len(ft.logs) != 1 {
		t.Fatalf("undeclared status: errors=%v logs=%v", ft.errors, ft.logs)
	}
}

func BenchmarkDSMCheck(b *testing.B) {
	v := DSM(b)
	body := []byte(dsmIntegrationCredential)
	for b.Loop() {
		if err := v.Check("GET", "/sys/v1/credentials/"+uuid1, 200, jsonHeader, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSGPCheck(b *testing.B) {
	v := SGP(b)
	body := []byte(`{"object": "list", "items": [` + sgpCredential + `], "total": 1, "has_more": false}`)
	for b.Loop() {
		if err := v.Check("GET", "/v5/credentials", 200, jsonHeader, body); err != nil {
			b.Fatal(err)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	sgp, dsm := SGP(t), DSM(t)
	done := make(chan error, 16)
	for i := 0; i < 8; i++ {
		go func() {
			var err error
			for j := 0; j < 20 && err == nil; j++ {
				err = sgp.Check("GET", "/v5/credentials/c1", 200, jsonHeader, []byte(sgpCredential))
				if err == nil {
					err = dsm.Check("GET", "/sys/v1/credentials/"+uuid1, 200, jsonHeader, []byte(dsmIntegrationCredential))
				}
			}
			done <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestSGP31NullUnion checks kin-openapi's handling of the OpenAPI 3.1
// null-union the SGP document uses (anyOf: [{type: string}, {type: 'null'}]),
// on the x-selected-account-id parameter schema.
func TestSGP31NullUnion(t *testing.T) {
	v := SGP(t)
	p := v.doc.Components.Parameters["AccountIdHeader"]
	if p == nil || p.Value.Schema == nil {
		t.Fatal("AccountIdHeader parameter not found")
	}
	s := p.Value.Schema.Value
	for _, ok := range []any{nil, "acct_1"} {
		if err := s.VisitJSON(ok, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("%#v rejected: %v", ok, err)
		}
	}
	for _, bad := range []any{5.0, true, map[string]any{}} {
		if err := s.VisitJSON(bad, openapi3.EnableJSONSchema2020()); err == nil {
			t.Errorf("%#v accepted", bad)
		}
	}
}

// TestDSMClientIPFormats: the audit log's client_ip is oneOf [ipv4, ipv6]
// (both nullable). Without the ipv4/ipv6 format checkers every IP would match
// both branches and fail oneOf. A null client_ip matches both branches and
// fails — a quirk of the contract: omit the field instead of sending null.
func TestDSMClientIPFormats(t *testing.T) {
	v := DSM(t)
	log := v.doc.Components.Schemas["EsAuditLog"]
	if log == nil {
		t.Skip("no EsAuditLog schema")
	}
	ip := log.Value.AllOf[0].Value.Properties["client_ip"].Value
	for _, ok := range []any{"127.0.0.1", "::1"} {
		if err := ip.VisitJSON(ok, v.opts...); err != nil {
			t.Errorf("%v rejected: %v", ok, err)
		}
	}
	for _, bad := range []any{"not-an-ip", nil} {
		if err := ip.VisitJSON(bad, v.opts...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// GET /crypto/v1/keys/{key_id} is served beyond the DSM subset and answers
// as keys/info: its answers are checked against that operation's, and other
// methods on the path are still only PATCH and DELETE.
func TestDSMLookupByKidAnswersAsKeysInfo(t *testing.T) {
	v := DSM(t)
	p := "/crypto/v1/keys/" + uuid1
	sobject := `{"acct_id":"` + uuid2 + `","kid":"` + uuid1 + `","name":"k","group_id":"` + uuid3 + `","obj_type":"AES","key_size":256,` +
		`"key_ops":["ENCRYPT"],"custom_metadata":{},"enabled":true,"state":"Active","origin":"FortanixHSM","public_only":false,` +
		`"creator":{"user":"` + uuid2 + `"},"created_at":"20261201T120000Z","activation_date":"20261201T120000Z"}`
	mustPass(t, v, "GET", p, 200, []byte(sobject))
	mustFail(t, v, "GET", p, 200, mutate(t, sobject, func(m map[string]any) { delete(m, "key_ops") }), "key_ops")
	mustFail(t, v, "GET", p, 200, mutate(t, sobject, func(m map[string]any) { m["created_at"] = "2026-12-01T12:00:00Z" }), "created_at")
	if err := v.Check("PUT", p, 200, nil, []byte(sobject)); err == nil || !strings.Contains(err.Error(), "no PUT operation") {
		t.Errorf("PUT %s: %v, want no such operation", p, err)
	}
}
