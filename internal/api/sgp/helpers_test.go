package sgp_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// credential is the wire form of a Credential as a client sees it.
type credential struct {
	ID                    string         `json:"id"`
	Object                string         `json:"object"`
	CreatedByUserID       string         `json:"created_by_user_id"`
	CreatedByIdentityType string         `json:"created_by_identity_type"`
	Type                  string         `json:"type"`
	Name                  string         `json:"name"`
	Description           string         `json:"description"`
	CredentialMetadata    map[string]any `json:"credential_metadata"`
	CreatedAt             string         `json:"created_at"`
	UpdatedAt             string         `json:"updated_at"`
}

type listPage struct {
	Object  string       `json:"object"`
	Items   []credential `json:"items"`
	Total   int          `json:"total"`
	HasMore bool         `json:"has_more"`
	Limit   int          `json:"limit"`
}

type secret struct {
	Result string `json:"result"`
	Object string `json:"object"`
}

type deleted struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
	Object  string `json:"object"`
}

// validationItem is one entry of a FastAPI 422 body. Msg is checked for
// presence only; loc and type are the contract.
type validationItem struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

// api is a client of one vault with one API key and, optionally, a selected
// account.
type api struct {
	v       *vaulttest.Vault
	key     string
	account string
}

func admin(v *vaulttest.Vault) api { return api{v: v, key: v.AdminKey} }

func as(v *vaulttest.Vault, tn vaulttest.Tenant) api { return api{v: v, key: tn.Key} }

func (c api) do(t testing.TB, method, path string, body any) *vaulttest.Response {
	t.Helper()
	return c.v.SGP(t, c.key, c.account, method, path, body)
}

// create creates a credential and fails the test unless it gets a 200.
func (c api) create(t testing.TB, body map[string]any) credential {
	t.Helper()
	return ok[credential](t, c.do(t, "POST", "/v5/credentials", body))
}

// createNamed creates a credential of type key named name with payload.
func (c api) createNamed(t testing.TB, name, payload string) credential {
	t.Helper()
	return c.create(t, map[string]any{"type": "key", "name": name, "payload": payload})
}

func (c api) get(t testing.TB, id string) credential {
	t.Helper()
	return ok[credential](t, c.do(t, "GET", "/v5/credentials/"+id, nil))
}

func (c api) decrypt(t testing.TB, id string) string {
	t.Helper()
	return ok[secret](t, c.do(t, "POST", "/v5/credentials/"+id+"/secret", nil)).Result
}

// wantPayload fails the test unless the credential id decrypts to want.
func (c api) wantPayload(t testing.TB, id, want string) {
	t.Helper()
	if got := c.decrypt(t, id); got != want {
		t.Errorf("payload of %s = %q, want %q", id, got, want)
	}
}

// wantUnchanged fails the test unless the credential orig is still exactly
// as it was and still decrypts to payload.
func (c api) wantUnchanged(t testing.TB, orig credential, payload string) {
	t.Helper()
	if diff := cmp.Diff(orig, c.get(t, orig.ID)); diff != "" {
		t.Errorf("credential %s changed (-want +got):\n%s", orig.Name, diff)
	}
	c.wantPayload(t, orig.ID, payload)
}

func (c api) list(t testing.TB, query url.Values) listPage {
	t.Helper()
	path := "/v5/credentials"
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	return okNoPayload[listPage](t, c.do(t, "GET", path, nil))
}

// wantStatus fails the test unless r has status want.
func wantStatus(t testing.TB, r *vaulttest.Response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status = %d, want %d; body: %s", r.Status, want, r.Body)
	}
}

// ok fails the test unless r is a 200, and decodes its body as a T.
func ok[T any](t testing.TB, r *vaulttest.Response) T {
	t.Helper()
	wantStatus(t, r, 200)
	var got T
	r.Decode(t, &got)
	return got
}

// okNoPayload is ok for a body that must not carry a payload member
// (noPayloadMember).
func okNoPayload[T any](t testing.TB, r *vaulttest.Response) T {
	t.Helper()
	wantStatus(t, r, 200)
	noPayloadMember(t, r)
	var got T
	r.Decode(t, &got)
	return got
}

// wantDetail checks a non-422 error: status, FastAPI's {"detail": "<message>"}
// body and, for errors a retry cannot fix, x-should-retry: false.
func wantDetail(t testing.TB, r *vaulttest.Response, status int) string {
	t.Helper()
	wantStatus(t, r, status)
	var body map[string]any
	r.Decode(t, &body)
	msg, ok := body["detail"].(string)
	if !ok || msg == "" || len(body) != 1 {
		t.Fatalf("error body = %s, want {\"detail\": \"<message>\"}", r.Body)
	}
	if status < 500 {
		if got := r.Header.Get("x-should-retry"); got != "false" {
			t.Errorf("x-should-retry = %q, want \"false\"", got)
		}
	}
	return msg
}

// want422 checks a FastAPI validation error and returns its items.
func want422(t testing.TB, r *vaulttest.Response) []validationItem {
	t.Helper()
	wantStatus(t, r, 422)
	var body struct {
		Detail []validationItem `json:"detail"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("422 body is not {\"detail\": [{loc, msg, type}]}: %v: %s", err, r.Body)
	}
	if len(body.Detail) == 0 {
		t.Fatalf("422 body has no detail items: %s", r.Body)
	}
	for _, it := range body.Detail {
		if it.Msg == "" || it.Type == "" || len(it.Loc) == 0 {
			t.Errorf("incomplete validation item %+v in %s", it, r.Body)
		}
		if where, _ := it.Loc[0].(string); where != "body" && where != "query" && where != "path" && where != "header" {
			t.Errorf("loc %v does not start with body/query/path/header", it.Loc)
		}
	}
	if got := r.Header.Get("x-should-retry"); got != "false" {
		t.Errorf("x-should-retry = %q, want \"false\"", got)
	}
	return body.Detail
}

// want422At checks that a 422 has exactly one item, at loc with type typ.
func want422At(t testing.TB, r *vaulttest.Response, typ string, loc ...any) {
	t.Helper()
	items := want422(t, r)
	type lt struct {
		Loc  []any
		Type string
	}
	got := make([]lt, len(items))
	for i, it := range items {
		got[i] = lt{Loc: it.Loc, Type: it.Type}
	}
	// JSON numbers decode as float64.
	for i, l := range loc {
		if n, ok := l.(int); ok {
			loc[i] = float64(n)
		}
	}
	if diff := cmp.Diff([]lt{{Loc: loc, Type: typ}}, got); diff != "" {
		t.Errorf("422 items mismatch (-want +got):\n%s\nbody: %s", diff, r.Body)
	}
}

// noPayloadMember fails if a response body mentions a payload member.
func noPayloadMember(t testing.TB, r *vaulttest.Response) {
	t.Helper()
	if bytes.Contains(r.Body, []byte(`"payload"`)) {
		t.Errorf("response carries a payload member: %s", r.Body)
	}
}

// notContains fails if haystack contains needle.
func notContains(t testing.TB, what string, haystack []byte, needle string) {
	t.Helper()
	if bytes.Contains(haystack, []byte(needle)) {
		t.Errorf("%s contains the canary %q", what, needle)
	}
}

// notLogged fails if the server log of v contains any of secrets.
func notLogged(t testing.TB, v *vaulttest.Vault, secrets ...string) {
	t.Helper()
	logs := []byte(v.Logs())
	for _, s := range secrets {
		notContains(t, "server log", logs, s)
	}
}

// canary returns a unique, recognisable secret value.
func canary(t testing.TB) string {
	t.Helper()
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "CANARY-" + hex.EncodeToString(b[:])
}

func nameOf(i int, prefix string) string { return prefix + "-" + string(rune('a'+i)) }

func ids(cs []credential) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func parseTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("bad timestamp %q: %v", s, err)
	}
	return tm
}

// pathName percent-encodes a credential name as one path segment.
func pathName(name string) string { return url.PathEscape(name) }
