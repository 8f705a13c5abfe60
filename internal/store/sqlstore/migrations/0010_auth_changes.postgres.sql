-- Authentication change counter (issue 13). Every write that can change
-- the answer of an authentication lookup (LookupAPIKey, LookupSession, an
-- app's enabled flag) bumps auth_changes.n in its own transaction, through
-- triggers, so that every writer — this server, another replica, the admin
-- CLI acting on the database directly, and write paths added later — gets
-- it for free. Servers cache successful lookups tagged with the counter
-- they saw before reading and drop the cache when it moves (see
-- internal/store/sqlstore/changes.go and internal/vault/authcache.go).
-- Not bumped: new API keys and new sessions (nothing cached can depend on
-- a row that did not exist) and api_keys.last_used_at (best-effort usage).
-- PostgreSQL: row triggers that also NOTIFY credvault_auth_changes, so that
-- other replicas drop their caches at once (the poll is the backstop).
CREATE TABLE auth_changes (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO auth_changes (id, n) VALUES (1, 0);
CREATE FUNCTION credvault_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE auth_changes SET n = n + 1 WHERE id = 1; PERFORM pg_notify('credvault_auth_changes', ''); RETURN NULL; END $$;
CREATE TRIGGER auth_changes_accounts_upd AFTER UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_accounts_del AFTER DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_principals_ins AFTER INSERT ON principals FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_principals_upd AFTER UPDATE ON principals FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_principals_del AFTER DELETE ON principals FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_memberships_ins AFTER INSERT ON memberships FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_memberships_upd AFTER UPDATE ON memberships FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_memberships_del AFTER DELETE ON memberships FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_api_keys_upd AFTER UPDATE OF principal_id, hash, expires_at, revoked_at ON api_keys FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_api_keys_del AFTER DELETE ON api_keys FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_dsm_sessions_upd AFTER UPDATE ON dsm_sessions FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_dsm_sessions_del AFTER DELETE ON dsm_sessions FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_dsm_apps_ins AFTER INSERT ON dsm_apps FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_dsm_apps_upd AFTER UPDATE ON dsm_apps FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
CREATE TRIGGER auth_changes_dsm_apps_del AFTER DELETE ON dsm_apps FOR EACH ROW EXECUTE FUNCTION credvault_auth_changed();
