package vault

// DSMStore holds the objects of the Fortanix DSM dialect: groups, apps,
// sessions, security objects and integration credentials.
type DSMStore interface {
}
