// Package api embeds the API contract documents credvault implements, so the
// server can serve them and tests can validate responses against them without
// reading anything outside the repository.
package api

import _ "embed"

// SGPOpenAPI is the OpenAPI 3.1 document of the SGP v5 credentials API.
//
//go:embed sgp-v5-credentials.openapi.yaml
var SGPOpenAPI []byte

// DSMOpenAPI is the OpenAPI 3.0 document of the Fortanix DSM subset.
//
//go:embed dsm-subset.openapi.json
var DSMOpenAPI []byte

// AdminOpenAPI is the OpenAPI 3.0 document of the management API (/admin/v1).
//
//go:embed admin-v1.openapi.yaml
var AdminOpenAPI []byte
