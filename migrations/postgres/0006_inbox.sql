-- The inbox: labels on conversations, internal notes, canned responses, and full-text search
-- over messages (a generated tsvector with a GIN index; SQLite uses FTS5 instead).

ALTER TABLE conversations ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
CREATE INDEX conversations_assignee ON conversations(workspace_id, assignee_id, last_message_at DESC);

CREATE TABLE conversation_notes (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    author_id TEXT REFERENCES users(id) ON DELETE SET NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX conversation_notes_thread ON conversation_notes(conversation_id, created_at);

CREATE TABLE canned_responses (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    shortcut TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (workspace_id, shortcut)
);

-- The searchable text of a message: its body, caption, file name, place, or reply title.
-- Content that is not JSON searches as nothing rather than failing the insert.
CREATE FUNCTION qontak_message_text(content TEXT) RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE j JSONB;
BEGIN
    j := content::jsonb;
    -- Punctuation splits words, as SQLite's tokenizer does ("INV-44718" is "inv" and "44718").
    RETURN regexp_replace(concat_ws(' ', j->>'body', j->>'caption', j->>'filename', j->>'name', j->>'address', j->>'text'),
                          '[^[:alnum:]]+', ' ', 'g');
EXCEPTION WHEN others THEN
    RETURN '';
END;
$$;

ALTER TABLE messages ADD COLUMN search TSVECTOR
    GENERATED ALWAYS AS (to_tsvector('simple', qontak_message_text(content))) STORED;
CREATE INDEX messages_search ON messages USING GIN (search);
