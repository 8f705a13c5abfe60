-- DSM integration credentials join the credential row cache (issue 13):
-- their updates and deletions bump the same sharded counters as SGP
-- credentials (0010), by the last character of the id, in the writing
-- transaction, whoever writes (credvault_credential_changed also notifies
-- the other replicas).
CREATE TRIGGER changes_dsm_credentials_upd AFTER UPDATE ON dsm_credentials FOR EACH ROW EXECUTE FUNCTION credvault_credential_changed();
CREATE TRIGGER changes_dsm_credentials_del AFTER DELETE ON dsm_credentials FOR EACH ROW EXECUTE FUNCTION credvault_credential_changed();
