-- DSM integration credentials and security objects join the row cache
-- (issue 13): their updates and deletions bump the same sharded counters as
-- SGP credentials (0010), by the last character of the id or kid, in the
-- writing transaction, whoever writes, and notify the other replicas.
CREATE TRIGGER changes_dsm_credentials_upd AFTER UPDATE ON dsm_credentials FOR EACH ROW EXECUTE FUNCTION credvault_credential_changed();
CREATE TRIGGER changes_dsm_credentials_del AFTER DELETE ON dsm_credentials FOR EACH ROW EXECUTE FUNCTION credvault_credential_changed();
CREATE FUNCTION credvault_sobject_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE change_counters SET n = n + 1 WHERE id = 1 + ascii(right(OLD.kid, 1)) % 16; PERFORM pg_notify('credvault_changes', ''); RETURN NULL; END $$;
CREATE TRIGGER changes_dsm_sobjects_upd AFTER UPDATE ON dsm_sobjects FOR EACH ROW EXECUTE FUNCTION credvault_sobject_changed();
CREATE TRIGGER changes_dsm_sobjects_del AFTER DELETE ON dsm_sobjects FOR EACH ROW EXECUTE FUNCTION credvault_sobject_changed();
