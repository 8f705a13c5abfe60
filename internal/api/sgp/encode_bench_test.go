package sgp

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// BenchmarkWriteList: a page of 100 credentials as a listing writes it
// (ASCII names and descriptions, small metadata, no expiry): the encoder's
// cost per page, without HTTP.
func BenchmarkWriteList(b *testing.B) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	page := vault.CredentialPage{Total: 10_000, HasMore: true}
	for i := range 100 {
		page.Items = append(page.Items, vault.Credential{ID: vault.NewID(), CreatedBy: vault.NewID(), CreatedByKind: vault.PrincipalUser,
			Type: "api_key", Name: fmt.Sprintf("openai-production-key-%05d", i), Description: "LLM provider key for the inference gateway",
			Metadata: json.RawMessage(`{"provider":"openai","team":"platform"}`), CreatedAt: now, UpdatedAt: now, Version: 1})
	}
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		w.Body.Reset()
		writeList(w, &page, 100, now)
	}
}
