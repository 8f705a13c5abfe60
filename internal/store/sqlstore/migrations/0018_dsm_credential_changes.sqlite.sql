-- DSM integration credentials and security objects join the row cache
-- (issue 13): their updates and deletions bump the same sharded counters as
-- SGP credentials (0010), by the last character of the id or kid, in the
-- writing transaction, whoever writes.
CREATE TRIGGER changes_dsm_credentials_upd AFTER UPDATE ON dsm_credentials BEGIN UPDATE change_counters SET n = n + 1 WHERE id = 1 + COALESCE(unicode(substr(OLD.id, -1)), 0) % 16; END;
CREATE TRIGGER changes_dsm_credentials_del AFTER DELETE ON dsm_credentials BEGIN UPDATE change_counters SET n = n + 1 WHERE id = 1 + COALESCE(unicode(substr(OLD.id, -1)), 0) % 16; END;
CREATE TRIGGER changes_dsm_sobjects_upd AFTER UPDATE ON dsm_sobjects BEGIN UPDATE change_counters SET n = n + 1 WHERE id = 1 + COALESCE(unicode(substr(OLD.kid, -1)), 0) % 16; END;
CREATE TRIGGER changes_dsm_sobjects_del AFTER DELETE ON dsm_sobjects BEGIN UPDATE change_counters SET n = n + 1 WHERE id = 1 + COALESCE(unicode(substr(OLD.kid, -1)), 0) % 16; END;
