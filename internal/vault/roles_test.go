package vault_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credvault/credvault/internal/vault"
)

func TestRole_Allows(t *testing.T) {
	actions := []vault.Action{vault.ActRead, vault.ActReadSecret, vault.ActWrite, vault.ActAdmin}
	want := map[vault.Role][]bool{
		//                      read  secret write  admin
		vault.RoleReader:       {true, false, false, false},
		vault.RoleSecretReader: {true, true, false, false},
		vault.RoleWriter:       {true, true, true, false},
		vault.RoleAdmin:        {true, true, true, true},
		vault.Role(""):         {false, false, false, false},
		vault.Role("root"):     {false, false, false, false},
		vault.Role("Admin"):    {false, false, false, false},
	}
	got := map[vault.Role][]bool{}
	for role := range want {
		for _, a := range actions {
			got[role] = append(got[role], role.Allows(a))
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("role × action (-want +got):\n%s", diff)
	}
}

func TestParseRole(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want vault.Role
		ok   bool
	}{
		{"admin", vault.RoleAdmin, true},
		{"writer", vault.RoleWriter, true},
		{"secret_reader", vault.RoleSecretReader, true},
		{"reader", vault.RoleReader, true},
		{"", "", false},
		{"Admin", "", false},
		{"secret-reader", "", false},
		{" reader", "", false},
	} {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			got, ok := vault.ParseRole(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("ParseRole(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestIdentity_Require(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		id := &vault.Identity{Role: vault.RoleSecretReader}
		if err := id.Require(vault.ActReadSecret); err != nil {
			t.Errorf("Require: %v", err)
		}
	})
	t.Run("err/denied", func(t *testing.T) {
		id := &vault.Identity{Role: vault.RoleReader}
		err := id.Require(vault.ActReadSecret)
		if vault.KindOf(err) != vault.KindPermissionDenied {
			t.Errorf("Require = %v, want PermissionDenied", err)
		}
	})
	t.Run("err/nil-identity", func(t *testing.T) {
		var id *vault.Identity
		if err := id.Require(vault.ActRead); vault.KindOf(err) != vault.KindPermissionDenied {
			t.Errorf("nil identity: %v, want PermissionDenied", err)
		}
	})
}

func TestErrors(t *testing.T) {
	driver := errors.New("pq: connection to 10.0.0.1 refused, password=hunter2")
	for _, tc := range []struct {
		name      string
		err       error
		kind      vault.Kind
		clientMsg string
	}{
		{"plain-error-is-internal", driver, vault.KindInternal, "internal error"},
		{"wrapped-internal-hides-cause", vault.Wrap(vault.KindInternal, driver, "decrypt failed"), vault.KindInternal, "internal error"},
		{"kind-through-fmt-wrap", fmt.Errorf("get: %w", vault.Errorf(vault.KindNotFound, "credential not found")), vault.KindNotFound, "credential not found"},
		{"field-error", vault.FieldError("name", "name must not be empty"), vault.KindInvalid, "name must not be empty"},
		{"wrap-keeps-message-not-cause", vault.Wrap(vault.KindUnavailable, driver, "the database is unavailable"), vault.KindUnavailable, "the database is unavailable"},
		{"nil", nil, vault.KindInternal, "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := vault.KindOf(tc.err); got != tc.kind {
				t.Errorf("KindOf = %v, want %v", got, tc.kind)
			}
			if tc.err == nil {
				return
			}
			if got := vault.Message(tc.err); got != tc.clientMsg {
				t.Errorf("Message = %q, want %q", got, tc.clientMsg)
			}
		})
	}
	t.Run("unwrap", func(t *testing.T) {
		err := vault.Wrap(vault.KindInternal, driver, "x")
		if !errors.Is(err, driver) {
			t.Error("Wrap does not unwrap to its cause")
		}
	})
}
