-- The audit head's MAC: key id || HMAC-SHA256 over (seq, hash) under a key
-- derived from the master key, so that the head cannot be moved back (the
-- newest records cut off) without the master key. NULL for an empty trail
-- and for heads written before this column existed.
ALTER TABLE audit_head ADD COLUMN mac BLOB;
