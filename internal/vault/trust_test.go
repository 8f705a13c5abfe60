package vault

import "testing"

func TestMatchClaim(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		value   any
		want    bool
	}{
		{"acme/api", "acme/api", true},
		{"acme/api", "acme/api2", false},
		{"acme/*", "acme/api", true},
		{"acme/*", "acme/api/sub", true}, // '*' crosses '/'
		{"acme/*", "evil/acme/api", false},
		{"repo:acme/api:ref:refs/heads/*", "repo:acme/api:ref:refs/heads/main", true},
		{"repo:acme/api:ref:refs/heads/*", "repo:acme/api:pull_request", false},
		{"system:serviceaccount:payments:*", "system:serviceaccount:payments:api", true},
		{"system:serviceaccount:payments:*", "system:serviceaccount:payments-x:api", false},
		{"system:serviceaccount:payments:api?", "system:serviceaccount:payments:api1", true},
		{"true", true, true},
		{"12", float64(12), true},
		{"a", []any{"b", "a"}, true},
		{"*", nil, false}, // a missing claim never matches
		{"*", map[string]any{"x": "y"}, false},
		{"x*", "", false},
	} {
		if got := MatchClaim(tc.pattern, tc.value); got != tc.want {
			t.Errorf("MatchClaim(%q, %#v) = %v, want %v", tc.pattern, tc.value, got, tc.want)
		}
	}
}
