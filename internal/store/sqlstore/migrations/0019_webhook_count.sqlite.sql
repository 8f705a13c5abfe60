-- Webhook count (issue 13): change_counters row 17 holds the number of
-- webhooks, row 18 counts their insertions and deletions. Triggers keep
-- them in the writing transaction, whoever writes. A SQLite write
-- transaction that finds row 17 at zero skips looking up each event's
-- webhooks, and checks row 18 before its commit (sqlstore/events.go).
-- SQLite: row triggers.
INSERT INTO change_counters (id, n) VALUES (17, (SELECT COUNT(*) FROM webhooks)), (18, 0);
CREATE TRIGGER webhooks_count_ins AFTER INSERT ON webhooks BEGIN UPDATE change_counters SET n = n + 1 WHERE id IN (17, 18); END;
CREATE TRIGGER webhooks_count_del AFTER DELETE ON webhooks BEGIN UPDATE change_counters SET n = n + CASE id WHEN 17 THEN -1 ELSE 1 END WHERE id IN (17, 18); END;
