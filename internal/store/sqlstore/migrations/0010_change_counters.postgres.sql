-- Change counters (issue 13), for the servers' in-process caches.
-- Row 0 counts changes to authentication state: every write that can change
-- the answer of an authentication lookup (LookupAPIKey, LookupSession, an
-- app's enabled flag). Rows 1-16 count updates and deletions of credentials,
-- sharded by the last character of the credential id (so that updates of
-- different credentials rarely wait for the same counter row). Triggers bump
-- them in the writing transaction itself, so every writer — this server,
-- another replica, the admin CLI acting on the database directly, and write
-- paths added later — gets it for free. Servers tag what they cache with
-- the counter they read before reading the row, and drop it when the
-- counter moves (internal/store/sqlstore/changes.go).
-- Not counted: new API keys, sessions and credentials (nothing cached can
-- depend on a row that did not exist yet) and api_keys.last_used_at
-- (best-effort usage recording).
-- PostgreSQL: row triggers that also NOTIFY credvault_changes, so that
-- other replicas drop their caches at once (the poll is the backstop).
CREATE TABLE change_counters (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO change_counters (id, n) VALUES (0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0), (9, 0), (10, 0), (11, 0), (12, 0), (13, 0), (14, 0), (15, 0), (16, 0);
CREATE FUNCTION credvault_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE change_counters SET n = n + 1 WHERE id = 0; PERFORM pg_notify('credvault_changes', ''); RETURN NULL; END $$;
CREATE FUNCTION credvault_credential_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE change_counters SET n = n + 1 WHERE id = 1 + ascii(right(OLD.id, 1)) % 16; PERFORM pg_notify('credvault_changes', ''); RETURN NULL; END $$;
CREATE TRIGGER changes_accounts_upd AFTER UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_accounts_del AFTER DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_principals_ins AFTER INSERT ON principals FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_principals_upd AFTER UPDATE ON principals FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_principals_del AFTER DELETE ON principals FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_memberships_ins AFTER INSERT ON memberships FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_memberships_upd AFTER UPDATE ON memberships FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_memberships_del AFTER DELETE ON memberships FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_api_keys_upd AFTER UPDATE OF principal_id, hash, expires_at, revoked_at ON api_keys FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_api_keys_del AFTER DELETE ON api_keys FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_dsm_sessions_upd AFTER UPDATE ON dsm_sessions FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_dsm_sessions_del AFTER DELETE ON dsm_sessions FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_dsm_apps_ins AFTER INSERT ON dsm_apps FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_dsm_apps_upd AFTER UPDATE ON dsm_apps FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_dsm_apps_del AFTER DELETE ON dsm_apps FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER changes_credentials_upd AFTER UPDATE ON credentials FOR EACH ROW EXECUTE FUNCTION credvault_credential_changed();
CREATE TRIGGER changes_credentials_del AFTER DELETE ON credentials FOR EACH ROW EXECUTE FUNCTION credvault_credential_changed();
