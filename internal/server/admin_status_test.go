package server

import (
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/credvault/credvault/internal/vault"
)

// The admin API answers each error kind with the shared status table: a
// missing object is 404 and an oversized body 413, not 500.
func TestAdminError_Status(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		err  error
		want int
	}{
		{vault.ErrNotFound, 404},
		{vault.Errorf(vault.KindTooLarge, "request body exceeds the limit of 1 bytes"), 413},
		{vault.Errorf(vault.KindInvalid, "bad"), 400},
		{vault.Errorf(vault.KindConflict, "a master-key rotation is already running"), 409},
	} {
		w := httptest.NewRecorder()
		s.adminError(w, httptest.NewRequest("POST", "/admin/v1/rekey", nil), tc.err)
		if w.Code != tc.want {
			t.Errorf("%v: %d, want %d", tc.err, w.Code, tc.want)
		}
	}
}
