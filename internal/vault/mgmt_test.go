package vault

import "testing"

// TestIsOperator: the one rule the admin API and whoami share. A DSM app
// is never an operator, even as an admin of the system account; the
// operator acting outside the API always is.
func TestIsOperator(t *testing.T) {
	for _, c := range []struct {
		kind    PrincipalKind
		sys     string
		sysRole Role
		want    bool
	}{
		{PrincipalUser, "sys", RoleAdmin, true},
		{PrincipalServiceAccount, "sys", RoleAdmin, true},
		{PrincipalApp, "sys", RoleAdmin, false},
		{PrincipalUser, "sys", RoleReader, false},
		{PrincipalUser, "sys", "", false},
		{PrincipalUser, "", RoleAdmin, false},
		{PrincipalOperator, "", "", true},
	} {
		if got := isOperator(c.kind, c.sys, c.sysRole); got != c.want {
			t.Errorf("isOperator(%s, %q, %q) = %v, want %v", c.kind, c.sys, c.sysRole, got, c.want)
		}
	}
}
