package dsm

import "testing"

// TestDecodeJSON_ErrorOrder: a body that is not JSON is malformed even when
// it also escapes a NUL; a JSON body that escapes a NUL is refused for that
// before any type error; then type errors name the field; a good body
// decodes.
func TestDecodeJSON_ErrorOrder(t *testing.T) {
	type body struct {
		Name string `json:"name"`
		Size int    `json:"size"`
	}
	for _, tc := range []struct{ in, want string }{
		{`{"name":"\u0000"`, "malformed JSON in the request body"},
		{`{"name":"a"} {}`, "malformed JSON in the request body"},
		{`{"name":"\u0000","size":"x"}`, "strings in the request body must not contain NUL characters"},
		{`{"name":"a","size":"x"}`, "invalid type for field size: expected number"},
		{`[1]`, "the request body must be a JSON object"},
		{`{"name":"a","size":3}`, ""},
	} {
		var v body
		err := decodeJSON([]byte(tc.in), &v)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: error %q, want %q", tc.in, got, tc.want)
		}
		if tc.want == "" && (v.Name != "a" || v.Size != 3) {
			t.Errorf("%s: decoded %+v", tc.in, v)
		}
	}
}

// BenchmarkDecodeJSON: a sign request's body, as DSM clients send it.
func BenchmarkDecodeJSON(b *testing.B) {
	body := []byte(`{"key":{"kid":"01a23008-f75a-7adc-867e-d36306b45e71"},"hash_alg":"SHA256","hash":"n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="}`)
	b.ReportAllocs()
	for b.Loop() {
		var v signRequest
		if err := decodeJSON(body, &v); err != nil {
			b.Fatal(err)
		}
	}
}
