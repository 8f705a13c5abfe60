package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/credvault/credvault/internal/vault"
)

// env is what operations need: the two servers, the client pools, the
// credentials to authenticate with and the preloaded data.
type env struct {
	ctx        context.Context
	vaultURL   string
	bareURL    string
	apiKey     string
	identity   *vault.Identity
	svc        *vault.Service
	ids        []string // a sample of preloaded credential ids
	deepCursor string
	vault      *http.Client
	bare       *http.Client
	payload    []byte
	runID      string // makes created names unique across runs on one database
	group      string // the DSM group of the run's objects, once created
}

// builder returns the next request of an operation for worker w. It runs on
// the worker's goroutine; per-worker state lives in w.
type builder func(w *worker) (*http.Request, error)

// opSpec is one benchmarked operation. Adding one is an entry in ops: a name,
// the expected status, and a setup that creates whatever the operation
// needs and returns its request builder (or errSkip when the server does not
// offer it).
type opSpec struct {
	name   string
	desc   string
	status int
	setup  func(e *env) (builder, error)
}

var errSkip = errors.New("not available")

// ops is the operation table, in report order. "bare" is the baseline and is
// measured next to every other cell.
var ops = []opSpec{
	{name: "bare", desc: "bare net/http handler, small fixed JSON body", status: 200, setup: func(e *env) (builder, error) {
		return e.get(e.bareURL + "/bare"), nil
	}},
	{name: "get", desc: "GET /v5/credentials/{id}, random preloaded id", status: 200, setup: func(e *env) (builder, error) {
		return e.sgp(http.MethodGet, func(w *worker) string { return "/v5/credentials/" + e.randomID(w) }, nil), nil
	}},
	{name: "decrypt", desc: "POST /v5/credentials/{id}/secret, random preloaded id", status: 200, setup: func(e *env) (builder, error) {
		return e.sgp(http.MethodPost, func(w *worker) string { return "/v5/credentials/" + e.randomID(w) + "/secret" }, nil), nil
	}},
	{name: "list-first", desc: "GET /v5/credentials?limit=100", status: 200, setup: func(e *env) (builder, error) {
		return e.sgp(http.MethodGet, fixed("/v5/credentials?limit=100"), nil), nil
	}},
	{name: "list-deep", desc: "GET /v5/credentials?limit=100&starting_after={id ~99% into the rows}", status: 200, setup: func(e *env) (builder, error) {
		return e.sgp(http.MethodGet, fixed("/v5/credentials?limit=100&starting_after="+e.deepCursor), nil), nil
	}},
	{name: "create", desc: "POST /v5/credentials, new name each time", status: 200, setup: func(e *env) (builder, error) {
		return e.sgp(http.MethodPost, fixed("/v5/credentials"), e.createBody("")), nil
	}},
	// Issue 15: the same create with 3 webhooks registered, so each create
	// also writes its event and 3 deliveries to the outbox (and the worker
	// sends them to a local receiver meanwhile). Runs after "create".
	{name: "create-webhooks", desc: "POST /v5/credentials with 3 webhooks registered (outbox rows in the same transaction; deliveries sent meanwhile)", status: 200, setup: func(e *env) (builder, error) {
		for range 3 {
			b := e.sgp(http.MethodPost, fixed("/v5/webhooks"), constBody(`{"url":"`+e.bareURL+`/bare","events":["*"]}`))
			if err := e.call(b, nil); err != nil {
				return nil, err
			}
		}
		return e.sgp(http.MethodPost, fixed("/v5/credentials"), e.createBody("wh-")), nil
	}},
	// DSM dialect (issue 3). Skipped while the server does not serve them.
	{name: "sign-rsa2048", desc: "POST /crypto/v1/sign, RSA-2048, SHA-256 over 32 bytes of data", status: 200, setup: func(e *env) (builder, error) {
		return e.dsmSign(`"name":"bench-rsa-` + e.runID + `","obj_type":"RSA","key_size":2048,"key_ops":["SIGN","VERIFY"]`)
	}},
	{name: "sign-ec-p256", desc: "POST /crypto/v1/sign, EC NistP256, SHA-256 over 32 bytes of data", status: 200, setup: func(e *env) (builder, error) {
		return e.dsmSign(`"name":"bench-ec-` + e.runID + `","obj_type":"EC","elliptic_curve":"NistP256","key_ops":["SIGN","VERIFY"]`)
	}},
	{name: "encrypt-aes256-gcm", desc: "POST /crypto/v1/encrypt, AES-256-GCM (128-bit tag), 1 KiB of plaintext, server-generated IV", status: 200, setup: func(e *env) (builder, error) {
		return e.dsmCrypt(false)
	}},
	{name: "decrypt-aes256-gcm", desc: "POST /crypto/v1/decrypt, AES-256-GCM (128-bit tag), 1 KiB of ciphertext", status: 200, setup: func(e *env) (builder, error) {
		return e.dsmCrypt(true)
	}},
	{name: "dsm-cred-get", desc: "GET /sys/v1/credentials/{id} (an OCI integration credential)", status: 200, setup: func(e *env) (builder, error) {
		return e.dsmCredentialGet()
	}},
}

func opNames() []string {
	var ns []string
	for _, o := range ops {
		ns = append(ns, o.name)
	}
	return ns
}

func findOp(name string) *opSpec {
	for i := range ops {
		if ops[i].name == name {
			return &ops[i]
		}
	}
	return nil
}

func fixed(path string) func(*worker) string { return func(*worker) string { return path } }

func (e *env) randomID(w *worker) string { return e.ids[w.rng.IntN(len(e.ids))] }

func (e *env) get(url string) builder {
	return func(w *worker) (*http.Request, error) {
		return http.NewRequest(http.MethodGet, url, nil)
	}
}

// sgp builds SGP requests with the x-api-key header.
func (e *env) sgp(method string, path func(*worker) string, body func(*worker) []byte) builder {
	return e.request(method, path, body, "x-api-key", e.apiKey)
}

// dsm builds DSM requests with the API key as HTTP Basic credentials.
func (e *env) dsm(method string, path func(*worker) string, body func(*worker) []byte) builder {
	return e.request(method, path, body, "Authorization", "Basic "+e.apiKey)
}

func (e *env) request(method string, path func(*worker) string, body func(*worker) []byte, hk, hv string) builder {
	return func(w *worker) (*http.Request, error) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body(w))
		}
		req, err := http.NewRequest(method, e.vaultURL+path(w), rd)
		if err != nil {
			return nil, err
		}
		req.Header.Set(hk, hv)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, nil
	}
}

// call sends one setup request to the vault and decodes its JSON answer
// (200 or 201). A 404, 405 or 501 means the server does not offer the path
// yet: errSkip.
func (e *env) call(b builder, out any) error {
	req, err := b(&worker{})
	if err != nil {
		return err
	}
	resp, err := e.vault.Do(req.WithContext(e.ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return fmt.Errorf("%w: %s %s answers %d", errSkip, req.Method, req.URL.Path, resp.StatusCode)
	default:
		return fmt.Errorf("%s %s: status %d: %.300s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// createBody is the body of a create with a new name each time.
func (e *env) createBody(prefix string) func(*worker) []byte {
	return func(w *worker) []byte {
		w.buf = append(w.buf[:0], `{"name":"bench-`...)
		w.buf = append(w.buf, prefix...)
		w.buf = append(w.buf, e.runID...)
		w.buf = append(w.buf, '-')
		w.buf = strconv.AppendInt(w.buf, int64(w.id), 10)
		w.buf = append(w.buf, '-')
		w.buf = strconv.AppendInt(w.buf, int64(w.seq), 10)
		w.buf = append(w.buf, `","type":"key","payload":"`...)
		w.buf = append(w.buf, e.payload...)
		w.buf = append(w.buf, `"}`...)
		return w.buf
	}
}

func constBody(s string) func(*worker) []byte {
	b := []byte(s)
	return func(*worker) []byte { return b }
}

// dsmGroup returns the id of a DSM group for the run's objects, creating it
// on first use.
func (e *env) dsmGroup() (string, error) {
	if e.group != "" {
		return e.group, nil
	}
	var group struct {
		GroupID string `json:"group_id"`
	}
	if err := e.call(e.dsm(http.MethodPost, fixed("/sys/v1/groups"), constBody(`{"name":"bench-`+e.runID+`"}`)), &group); err != nil {
		return "", err
	}
	if group.GroupID == "" {
		return "", errors.New("group creation returned no group_id")
	}
	e.group = group.GroupID
	return e.group, nil
}

// dsmSign creates a signing key with the JSON fields keyFields in the run's
// group and returns a builder that signs with it.
func (e *env) dsmSign(keyFields string) (builder, error) {
	g, err := e.dsmGroup()
	if err != nil {
		return nil, err
	}
	keyReq := `{` + keyFields + `,"group_id":"` + g + `"}`
	var key struct {
		Kid string `json:"kid"`
	}
	if err := e.call(e.dsm(http.MethodPost, fixed("/crypto/v1/keys"), constBody(keyReq)), &key); err != nil {
		return nil, err
	}
	if key.Kid == "" {
		return nil, errors.New("key creation returned no kid")
	}
	data := base64.StdEncoding.EncodeToString([]byte("credvault-bench: 32 bytes to sig"))
	return e.dsm(http.MethodPost, fixed("/crypto/v1/sign"),
		constBody(`{"key":{"kid":"`+key.Kid+`"},"hash_alg":"SHA256","data":"`+data+`"}`)), nil
}

// dsmCrypt creates an AES-256 key in the run's group and returns a builder
// that encrypts 1 KiB with it in GCM mode, or (decrypt) one that decrypts
// a 1 KiB ciphertext made once during setup.
func (e *env) dsmCrypt(decrypt bool) (builder, error) {
	g, err := e.dsmGroup()
	if err != nil {
		return nil, err
	}
	name := "bench-aes-encrypt-"
	if decrypt {
		name = "bench-aes-decrypt-"
	}
	var key struct {
		Kid string `json:"kid"`
	}
	keyReq := `{"name":"` + name + e.runID + `","obj_type":"AES","key_size":256,"key_ops":["ENCRYPT","DECRYPT"],"group_id":"` + g + `"}`
	if err := e.call(e.dsm(http.MethodPost, fixed("/crypto/v1/keys"), constBody(keyReq)), &key); err != nil {
		return nil, err
	}
	if key.Kid == "" {
		return nil, errors.New("key creation returned no kid")
	}
	plain := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("credvault-bench!"), 64)) // 1 KiB
	encReq := `{"key":{"kid":"` + key.Kid + `"},"alg":"AES","mode":"GCM","tag_len":128,"plain":"` + plain + `"}`
	if !decrypt {
		return e.dsm(http.MethodPost, fixed("/crypto/v1/encrypt"), constBody(encReq)), nil
	}
	var enc struct {
		Cipher, IV, Tag []byte
	}
	if err := e.call(e.dsm(http.MethodPost, fixed("/crypto/v1/encrypt"), constBody(encReq)), &enc); err != nil {
		return nil, err
	}
	if len(enc.Cipher) != 1024 || len(enc.IV) == 0 || len(enc.Tag) == 0 {
		return nil, errors.New("encrypt returned an unexpected ciphertext, iv or tag")
	}
	b64 := base64.StdEncoding.EncodeToString
	decReq := `{"key":{"kid":"` + key.Kid + `"},"alg":"AES","mode":"GCM","tag_len":128,"cipher":"` + b64(enc.Cipher) +
		`","iv":"` + b64(enc.IV) + `","tag":"` + b64(enc.Tag) + `"}`
	return e.dsm(http.MethodPost, fixed("/crypto/v1/decrypt"), constBody(decReq)), nil
}

// dsmCredentialGet creates a group, an EC signing key usable by credentials
// and an OCI integration credential referencing it, and returns a builder
// that gets the credential.
func (e *env) dsmCredentialGet() (builder, error) {
	g, err := e.dsmGroup()
	if err != nil {
		return nil, err
	}
	var key struct {
		Kid string `json:"kid"`
	}
	keyReq := `{"name":"bench-oci-` + e.runID + `","obj_type":"EC","elliptic_curve":"NistP256","key_ops":["SIGN","VERIFY"],"allow_credential_use":true,"group_id":"` + g + `"}`
	if err := e.call(e.dsm(http.MethodPost, fixed("/crypto/v1/keys"), constBody(keyReq)), &key); err != nil {
		return nil, err
	}
	var cred struct {
		CredentialID string `json:"credential_id"`
	}
	credReq := `{"name":"bench-oci-` + e.runID + `","group_id":"` + g + `","credential_details":{"$type":"Oci","body":{"$type":"ApiKey",` +
		`"user_ocid":"ocid1.user.oc1..bench","tenant_ocid":"ocid1.tenancy.oc1..bench","signing_key":"` + key.Kid + `"}}}`
	if err := e.call(e.dsm(http.MethodPost, fixed("/sys/v1/credentials"), constBody(credReq)), &cred); err != nil {
		return nil, err
	}
	if cred.CredentialID == "" {
		return nil, errors.New("credential creation returned no credential_id")
	}
	return e.dsm(http.MethodGet, fixed("/sys/v1/credentials/"+cred.CredentialID), nil), nil
}
