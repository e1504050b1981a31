-- Contacts: labels, CSV import jobs with their per-row errors, broadcasts and their recipients.
-- Keep in step with ../sqlite/0007_contacts.sql.

CREATE INDEX contacts_workspace_created ON contacts(workspace_id, created_at, id);

-- Labels are lower-cased and trimmed; a contact has each at most once.
CREATE TABLE contact_labels (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    contact_id TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    PRIMARY KEY (contact_id, label)
);
CREATE INDEX contact_labels_label ON contact_labels(workspace_id, label, contact_id);

-- A CSV import runs server-side from the uploaded file; `byte_offset` and the counters are
-- committed with each batch, so a restarted server resumes where the last batch ended.
CREATE TABLE contact_imports (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users(id) ON DELETE SET NULL,
    filename TEXT,
    storage_key TEXT NOT NULL,
    headers TEXT NOT NULL DEFAULT '[]',
    mapping TEXT NOT NULL DEFAULT '{}',
    options TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    total BIGINT NOT NULL DEFAULT 0,
    processed BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL DEFAULT 0,
    updated BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    byte_offset BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    locked_by TEXT,
    locked_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX contact_imports_workspace ON contact_imports(workspace_id, created_at);
CREATE INDEX contact_imports_state ON contact_imports(state);

CREATE TABLE contact_import_errors (
    import_id TEXT NOT NULL REFERENCES contact_imports(id) ON DELETE CASCADE,
    row_number BIGINT NOT NULL,
    error TEXT NOT NULL,
    fields TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (import_id, row_number)
);

-- A broadcast: one approved template to an audience, expanded in batches into messages and
-- outbox jobs (`cursor` is the last contact id expanded, committed with each batch).
CREATE TABLE broadcasts (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    number_id TEXT NOT NULL REFERENCES phone_numbers(id) ON DELETE CASCADE,
    created_by TEXT REFERENCES users(id) ON DELETE SET NULL,
    name TEXT NOT NULL DEFAULT '',
    template_name TEXT NOT NULL,
    template_language TEXT NOT NULL,
    variables TEXT NOT NULL DEFAULT '{}',
    audience TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL CHECK (state IN ('scheduled', 'sending', 'done', 'cancelled', 'failed')),
    scheduled_at BIGINT NOT NULL,
    cursor TEXT,
    expanded BIGINT NOT NULL DEFAULT 0,
    total BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    cancelled_at BIGINT
);
CREATE INDEX broadcasts_workspace ON broadcasts(workspace_id, created_at, id);
CREATE INDEX broadcasts_due ON broadcasts(state, scheduled_at);

CREATE TABLE broadcast_recipients (
    broadcast_id TEXT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    contact_id TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    message_id TEXT REFERENCES messages(id) ON DELETE SET NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'skipped', 'cancelled')),
    error TEXT,
    PRIMARY KEY (broadcast_id, contact_id)
);
CREATE INDEX broadcast_recipients_message ON broadcast_recipients(message_id);
