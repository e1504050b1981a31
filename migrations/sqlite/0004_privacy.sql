-- Privacy: per-workspace retention, Meta's data deletion requests, and indexes the retention
-- job and the audit browser need. Keep in step with the other engine's 0004_privacy.sql.

-- NULL days: keep forever.
CREATE TABLE retention_settings (
    workspace_id TEXT PRIMARY KEY NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    messages_days INTEGER,
    media_days INTEGER,
    webhook_events_days INTEGER NOT NULL DEFAULT 7,
    audit_days INTEGER NOT NULL DEFAULT 90,
    audit_ip_days INTEGER NOT NULL DEFAULT 30,
    updated_at INTEGER NOT NULL
);

-- Meta's Data Deletion Request Callback: the confirmation code and what was done. The
-- app-scoped user id is kept only as a hash.
CREATE TABLE data_deletion_requests (
    code TEXT PRIMARY KEY NOT NULL,
    user_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    erased INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    completed_at INTEGER
);

CREATE INDEX audit_log_created ON audit_log(created_at);
CREATE INDEX messages_workspace_time ON messages(workspace_id, timestamp);
CREATE INDEX media_workspace_created ON media(workspace_id, created_at);
CREATE INDEX webhook_events_received ON webhook_events(received_at);
CREATE INDEX events_created ON events(created_at);
