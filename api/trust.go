package api

import _ "embed"

// TrustOpenAPI is the OpenAPI 3.0 document of the workload identity
// endpoints: trust policies (/admin/v1/trust-policies) and the token
// exchange (/oauth/token).
//
//go:embed trust-v1.openapi.yaml
var TrustOpenAPI []byte
