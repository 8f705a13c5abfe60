-- Webhook count (issue 13): change_counters row 17 holds the number of
-- webhooks, row 18 counts their insertions and deletions. Triggers keep
-- them in the writing transaction, whoever writes (on PostgreSQL each
-- write transaction still looks up its events' webhooks; the rows keep the
-- schema one). PostgreSQL: row triggers through a function.
INSERT INTO change_counters (id, n) VALUES (17, (SELECT COUNT(*) FROM webhooks)), (18, 0);
CREATE FUNCTION credvault_webhooks_counted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE change_counters SET n = n + CASE WHEN id = 17 AND TG_OP = 'DELETE' THEN -1 ELSE 1 END WHERE id IN (17, 18); RETURN NULL; END $$;
CREATE TRIGGER webhooks_count_ins AFTER INSERT ON webhooks FOR EACH ROW EXECUTE FUNCTION credvault_webhooks_counted();
CREATE TRIGGER webhooks_count_del AFTER DELETE ON webhooks FOR EACH ROW EXECUTE FUNCTION credvault_webhooks_counted();
