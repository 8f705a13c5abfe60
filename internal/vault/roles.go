package vault

// Role is a principal's role in an account.
type Role string

const (
	RoleAdmin        Role = "admin"         // everything, including managing principals, keys, groups and apps
	RoleWriter       Role = "writer"        // create, update, delete and read secrets
	RoleSecretReader Role = "secret_reader" // read metadata and secrets, change nothing
	RoleReader       Role = "reader"        // read metadata only; never plaintext
)

// Action is a class of operation that roles grant.
type Action int

const (
	ActRead       Action = iota // list and get metadata
	ActReadSecret               // see plaintext (SGP decrypt, DSM export)
	ActWrite                    // create, update, delete, rotate; use keys (sign)
	ActAdmin                    // manage principals, keys, groups, apps
)

func (a Action) String() string {
	switch a {
	case ActRead:
		return "read"
	case ActReadSecret:
		return "read_secret"
	case ActWrite:
		return "write"
	default:
		return "admin"
	}
}

// ParseRole parses a role name.
func ParseRole(s string) (Role, bool) {
	switch r := Role(s); r {
	case RoleAdmin, RoleWriter, RoleSecretReader, RoleReader:
		return r, true
	}
	return "", false
}

// Allows reports whether role r may perform action a.
func (r Role) Allows(a Action) bool {
	switch r {
	case RoleAdmin:
		return true
	case RoleWriter:
		return a != ActAdmin
	case RoleSecretReader:
		return a == ActRead || a == ActReadSecret
	case RoleReader:
		return a == ActRead
	}
	return false
}

// Require returns a PermissionDenied error unless id's role allows a.
func (id *Identity) Require(a Action) error {
	if id == nil || !id.Role.Allows(a) {
		return Errorf(KindPermissionDenied, "this principal's role does not allow %s operations in this account", a)
	}
	return nil
}

// requireAccountWide is Require for operations on account-wide objects
// (the SGP credentials, which belong to no DSM group). A DSM app reaches
// only the groups it is a member of, so it may not use them: without this,
// a crypto app scoped to one group could list, decrypt, change and delete
// every SGP credential of its account.
func (id *Identity) requireAccountWide(a Action) error {
	if id != nil && id.Principal.Kind == PrincipalApp {
		return Errorf(KindPermissionDenied, "DSM apps are limited to their groups and cannot use account-wide credentials; use a user or service-account API key")
	}
	return id.Require(a)
}

// requireAccountWideOn is requireAccountWide for an operation on the one
// object objID, a what ("credential", "webhook"): once the caller may act,
// an id that no object can have is NotFound, like a missing object.
func (id *Identity) requireAccountWideOn(a Action, what, objID string) error {
	if err := id.requireAccountWide(a); err != nil {
		return err
	}
	if !storable(objID) {
		return Errorf(KindNotFound, "%s not found", what)
	}
	return nil
}
