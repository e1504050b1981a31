-- Template management: Meta's recommendation beside a rejection reason, and when each
-- connected WhatsApp Business Account last had its templates synced (NULL: never, so the
-- scheduler syncs a newly connected account on its next pass).
ALTER TABLE templates ADD COLUMN rejection_recommendation TEXT;
ALTER TABLE meta_connections ADD COLUMN templates_synced_at INTEGER;
