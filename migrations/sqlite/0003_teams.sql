-- Teams: invitations can be revoked, and remember who accepted them.
ALTER TABLE invitations ADD COLUMN revoked_at INTEGER;
ALTER TABLE invitations ADD COLUMN accepted_by TEXT REFERENCES users(id) ON DELETE SET NULL;
CREATE INDEX invitations_email ON invitations(email);
