-- Edits of message templates sent to Meta (POST /{template-id}): Meta allows an approved
-- template one edit per 24 hours and ten per 30 days, so the product counts them to explain
-- the limit before Meta refuses.
CREATE TABLE template_edits (
    template_id TEXT NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    edited_at INTEGER NOT NULL,
    -- The status the template had when edited: only edits of approved templates count.
    status_before TEXT NOT NULL
);
CREATE INDEX template_edits_by_template ON template_edits (template_id, edited_at);
