-- The inbox: labels on conversations, internal notes, canned responses, and full-text search
-- over messages (FTS5; Postgres uses a tsvector column with a GIN index instead).

ALTER TABLE conversations ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
CREATE INDEX conversations_assignee ON conversations(workspace_id, assignee_id, last_message_at DESC);

CREATE TABLE conversation_notes (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    author_id TEXT REFERENCES users(id) ON DELETE SET NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX conversation_notes_thread ON conversation_notes(conversation_id, created_at);

CREATE TABLE canned_responses (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    shortcut TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (workspace_id, shortcut)
);

-- The searchable text of a message: its body, caption, file name, place, or reply title.
CREATE VIRTUAL TABLE messages_fts USING fts5(body, tokenize = 'unicode61 remove_diacritics 2');

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN json_valid(new.content) BEGIN
    INSERT INTO messages_fts(rowid, body) VALUES (new.rowid, trim(
        coalesce(json_extract(new.content, '$.body'), '') || ' ' ||
        coalesce(json_extract(new.content, '$.caption'), '') || ' ' ||
        coalesce(json_extract(new.content, '$.filename'), '') || ' ' ||
        coalesce(json_extract(new.content, '$.name'), '') || ' ' ||
        coalesce(json_extract(new.content, '$.address'), '') || ' ' ||
        coalesce(json_extract(new.content, '$.text'), '')));
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    DELETE FROM messages_fts WHERE rowid = old.rowid;
    INSERT INTO messages_fts(rowid, body) SELECT new.rowid, trim(
        coalesce(json_extract(new.content, '$.body'), '') || ' ' ||
        coalesce(json_extract(new.content, '$.caption'), '') || ' ' ||
        coalesce(json_extract(new.content, '$.filename'), '') || ' ' ||
        coalesce(json_extract(new.content, '$.name'), '') || ' ' ||
        coalesce(json_extract(new.content, '$.address'), '') || ' ' ||
        coalesce(json_extract(new.content, '$.text'), ''))
    WHERE json_valid(new.content);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    DELETE FROM messages_fts WHERE rowid = old.rowid;
END;

INSERT INTO messages_fts(rowid, body)
    SELECT rowid, trim(
        coalesce(json_extract(content, '$.body'), '') || ' ' ||
        coalesce(json_extract(content, '$.caption'), '') || ' ' ||
        coalesce(json_extract(content, '$.filename'), '') || ' ' ||
        coalesce(json_extract(content, '$.name'), '') || ' ' ||
        coalesce(json_extract(content, '$.address'), '') || ' ' ||
        coalesce(json_extract(content, '$.text'), ''))
    FROM messages WHERE json_valid(content);
