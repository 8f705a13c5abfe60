package main

// workloadTokenFile returns the workload token file to authenticate with,
// or "" to use an API key. The first setting found wins, in this order:
// --api-key, --oidc-token-file, CREDVAULT_API_KEY,
// CREDVAULT_OIDC_TOKEN_FILE, the profile's key, the profile's token file.
func workloadTokenFile(rf *remoteFlags, getenv func(string) string, p profile) string {
	switch {
	case rf.apiKey != "":
		return ""
	case rf.oidcTokenFile != "":
		return rf.oidcTokenFile
	case getenv("CREDVAULT_API_KEY") != "":
		return ""
	case getenv("CREDVAULT_OIDC_TOKEN_FILE") != "":
		return getenv("CREDVAULT_OIDC_TOKEN_FILE")
	case p.APIKey != "":
		return ""
	}
	return p.OIDCTokenFile
}
