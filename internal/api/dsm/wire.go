package dsm

import (
	"encoding/json"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// Wire forms of DSM responses. Required fields of each contract schema
// are always present; optional ones are omitted rather than null (DSM's Go
// client cannot decode a null Principal).

// compact formats t in DSM's YYYYMMDDTHHMMSSZ form.
func compact(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// principal is DSM's Principal union: {"user": id} or {"app": id}.
func principal(c vault.Creator) map[string]string {
	if c.Kind == vault.PrincipalApp {
		return map[string]string{"app": c.ID}
	}
	return map[string]string{"user": c.ID}
}

func meta(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

type groupWire struct {
	AcctID               string            `json:"acct_id"`
	GroupID              string            `json:"group_id"`
	Name                 string            `json:"name"`
	Description          string            `json:"description,omitempty"`
	CreatedAt            string            `json:"created_at"`
	Creator              map[string]string `json:"creator"`
	ClientConfigurations struct{}          `json:"client_configurations"`
	CustomMetadata       map[string]string `json:"custom_metadata"`
}

func toGroup(g *vault.Group) groupWire {
	return groupWire{AcctID: g.AccountID, GroupID: g.ID, Name: g.Name, Description: g.Description, CreatedAt: compact(g.CreatedAt),
		Creator: principal(g.Creator), CustomMetadata: meta(g.CustomMetadata)}
}

type appWire struct {
	AcctID               string            `json:"acct_id"`
	AppID                string            `json:"app_id"`
	Name                 string            `json:"name"`
	Description          string            `json:"description,omitempty"`
	AppType              string            `json:"app_type"`
	Role                 string            `json:"role"`
	Enabled              bool              `json:"enabled"`
	Groups               any               `json:"groups"`
	DefaultGroup         string            `json:"default_group,omitempty"`
	Creator              map[string]string `json:"creator"`
	CreatedAt            string            `json:"created_at"`
	LastusedAt           string            `json:"lastused_at,omitempty"`
	ClientConfigurations struct{}          `json:"client_configurations"`
	IPAddressPolicy      string            `json:"ip_address_policy"`
	LastOperations       struct{}          `json:"last_operations"`
	LegacyAccess         bool              `json:"legacy_access"`
	AuthType             string            `json:"auth_type"`
}

// toApp renders an app; groups are a uuid array, or with permissions a
// map uuid → permissions (DSM's group_permissions=true form).
func toApp(a *vault.App, withPermissions bool) appWire {
	w := appWire{AcctID: a.AccountID, AppID: a.ID, Name: a.Name, Description: a.Description, AppType: a.AppType, Role: string(a.Role),
		Enabled: a.Enabled, DefaultGroup: a.DefaultGroup, Creator: principal(a.Creator), CreatedAt: compact(a.CreatedAt),
		IPAddressPolicy: "allow_all", AuthType: "Secret"}
	if a.LastUsedAt != nil {
		w.LastusedAt = compact(*a.LastUsedAt)
	}
	if withPermissions {
		m := map[string][]string{}
		for _, g := range a.Groups {
			p := g.Permissions
			if p == nil {
				p = []string{}
			}
			m[g.GroupID] = p
		}
		w.Groups = m
	} else {
		w.Groups = a.GroupIDs()
	}
	return w
}

type linksWire struct {
	Replacement string `json:"replacement,omitempty"`
	Replaced    string `json:"replaced,omitempty"`
}

type sobjectWire struct {
	AcctID       string `json:"acct_id"`
	Kid          string `json:"kid,omitempty"` // absent for a transient object
	TransientKey []byte `json:"transient_key,omitempty"`
	Name         string `json:"name,omitempty"`
	GroupID      string `json:"group_id"`
	// Always present, "" when there is none: DSM answers "" for an object
	// created with an empty description, which Terraform's provider always
	// sends, and its dsm_sobject_info data source fails without the member.
	Description        string            `json:"description"`
	ObjType            string            `json:"obj_type"`
	KeySize            int               `json:"key_size,omitempty"`
	EllipticCurve      string            `json:"elliptic_curve,omitempty"`
	KeyOps             []string          `json:"key_ops"`
	CustomMetadata     map[string]string `json:"custom_metadata"`
	Enabled            bool              `json:"enabled"`
	State              string            `json:"state"`
	AllowCredentialUse bool              `json:"allow_credential_use"`
	Origin             string            `json:"origin"`
	PublicOnly         bool              `json:"public_only"`
	NeverExportable    bool              `json:"never_exportable"`
	Creator            map[string]string `json:"creator"`
	CreatedAt          string            `json:"created_at"`
	ActivationDate     string            `json:"activation_date"`
	DeactivationDate   string            `json:"deactivation_date,omitempty"`
	Links              *linksWire        `json:"links,omitempty"`
	PubKey             []byte            `json:"pub_key,omitempty"`
	Value              []byte            `json:"value,omitempty"` // export, and info for OPAQUE and CERTIFICATE
}

// toSobject is the wire form of o as of now (its state: vault.Sobject.StateAt).
func toSobject(o *vault.Sobject, now time.Time, showPubKey bool) sobjectWire {
	w := sobjectWire{AcctID: o.AccountID, Kid: o.KID, Name: o.Name, GroupID: o.GroupID, Description: o.Description, ObjType: o.ObjType,
		KeySize: o.KeySize, EllipticCurve: o.EllipticCurve, KeyOps: o.KeyOps, CustomMetadata: meta(o.CustomMetadata), Enabled: o.Enabled,
		State: o.StateAt(now), AllowCredentialUse: o.AllowCredentialUse, Origin: o.Origin, PublicOnly: o.PublicOnly, NeverExportable: o.NeverExportable,
		Creator: principal(o.Creator), CreatedAt: compact(o.CreatedAt), ActivationDate: compact(o.ActivationDate)}
	if w.KeyOps == nil {
		w.KeyOps = []string{}
	}
	if o.Origin == vault.OriginTransient {
		// A transient object is known by its handle, which only the answer
		// to its creation carries; its internal id stays internal.
		w.Kid, w.TransientKey = "", o.TransientKey
	}
	if o.DeactivationDate != nil {
		w.DeactivationDate = compact(*o.DeactivationDate)
	}
	if o.Replaced != "" || o.Replacement != "" {
		w.Links = &linksWire{Replaced: o.Replaced, Replacement: o.Replacement}
	}
	if showPubKey {
		w.PubKey = o.PubKey
	}
	return w
}

// credentialDetailsWire renders the $type-tagged CredentialDetails union
// with the fields table gives its variant.
func credentialDetailsWire(table *vault.CredentialTable, d *vault.CredentialDetails) map[string]any {
	body := map[string]any{"$type": d.Auth}
	if v := table.Variant(d.Provider, d.Auth); v != nil {
		for _, f := range v.Fields {
			body[f.Name] = d.Field(f.Name)
		}
	}
	return map[string]any{"$type": d.Provider, "body": body}
}

type credentialWire struct {
	CredentialID      string            `json:"credential_id"`
	Name              string            `json:"name"`
	Description       *string           `json:"description,omitempty"`
	GroupID           string            `json:"group_id"`
	CreatedAt         string            `json:"created_at"`
	Creator           map[string]string `json:"creator"`
	CredentialDetails map[string]any    `json:"credential_details"`
}

func toCredential(c *vault.IntegrationCredential) credentialWire {
	return credentialWire{CredentialID: c.ID, Name: c.Name, Description: c.Description, GroupID: c.GroupID, CreatedAt: compact(c.CreatedAt),
		Creator: principal(c.Creator), CredentialDetails: credentialDetailsWire(&vault.Credentials, &c.Details)}
}

type metadataWire struct {
	TotalCount    int `json:"total_count"`
	FilteredCount int `json:"filtered_count"`
}

type authResponse struct {
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	AccessToken string `json:"access_token"`
	EntityID    string `json:"entity_id"`
}

// esAuditLog is one EsAuditLogOuter of GET /sys/v1/logs.
type esAuditLog struct {
	ID     string `json:"_id"`
	Source struct {
		ActionType string   `json:"action_type"`
		ActorType  string   `json:"actor_type"`
		Message    string   `json:"message"`
		Severity   string   `json:"severity"`
		Time       string   `json:"time"`
		AcctID     string   `json:"acct_id"`
		ActorID    string   `json:"actor_id"`
		GroupIDs   []string `json:"group_ids"`
		ObjectID   string   `json:"object_id"`
		ClientIP   *string  `json:"client_ip,omitempty"`
	} `json:"_source"`
}

// rawJSON keeps a request member undecoded.
type rawJSON = json.RawMessage
