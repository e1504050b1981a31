//! Teams: invitations, members and their roles, API tokens, the session's workspace, the
//! user's own profile, and the details of connected numbers.

use super::{conflict, Db, DbError, UserRow};
#[allow(unused_imports)]
use crate::server::db::BeginWrite;
use crate::server::{new_id, now_ms};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: String,
    pub workspace_id: String,
    pub workspace_name: String,
    pub email: String,
    pub role: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

macro_rules! invitation_select {
    () => {
        "SELECT i.id, i.workspace_id, w.name AS workspace_name, i.email, i.role, i.created_at, i.expires_at, \
         i.accepted_at, i.revoked_at FROM invitations i JOIN workspaces w ON w.id = i.workspace_id"
    };
}

/// What became of an attempt to accept an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// The user joined the workspace (or already belonged to it).
    Joined,
    /// Someone used the link already, it expired or it was revoked meanwhile.
    Gone,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

/// What became of a change to a membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    Done,
    NotFound,
    /// Refused: the workspace would be left without an admin.
    LastAdmin,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiTokenRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub user_id: String,
    pub email: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// Facts about a number as Meta reports them.
pub struct NumberDetails<'a> {
    pub display_phone: Option<&'a str>,
    pub verified_name: Option<&'a str>,
    pub quality_rating: Option<&'a str>,
    pub messaging_tier: Option<&'a str>,
}

impl Db {
    // ---- invitations --------------------------------------------------------------------

    /// Stores an invitation by the hash of its link's token.
    pub async fn create_invitation(
        &self,
        workspace_id: &str,
        email: &str,
        role: &str,
        token_hash: &str,
        created_by: &str,
        expires_at: i64,
    ) -> Result<InvitationRow, DbError> {
        let id = new_id();
        let sql = "INSERT INTO invitations (id, workspace_id, email, role, token_hash, created_by, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        on!(self, p => sqlx::query(sql).bind(&id).bind(workspace_id).bind(email).bind(role).bind(token_hash)
            .bind(created_by).bind(now_ms()).bind(expires_at).execute(p).await.map(|r| r.rows_affected()))?;
        self.invitation(workspace_id, &id)
            .await?
            .ok_or_else(|| DbError::NotFound("invitation".into()))
    }

    pub async fn invitation(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<InvitationRow>, DbError> {
        let sql = concat!(
            invitation_select!(),
            " WHERE i.workspace_id = $1 AND i.id = $2"
        );
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(id).fetch_optional(p).await)?)
    }

    /// The invitations of a workspace not yet accepted nor revoked, newest first.
    pub async fn open_invitations(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<InvitationRow>, DbError> {
        let sql = concat!(
            invitation_select!(),
            " WHERE i.workspace_id = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL \
             ORDER BY i.created_at DESC, i.id DESC"
        );
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).fetch_all(p).await)?)
    }

    /// The invitation a link's token names, in any state.
    pub async fn invitation_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<InvitationRow>, DbError> {
        let sql = concat!(invitation_select!(), " WHERE i.token_hash = $1");
        Ok(on!(self, p => sqlx::query_as(sql).bind(token_hash).fetch_optional(p).await)?)
    }

    /// Revokes an open invitation; false when there is none with this id in the workspace.
    pub async fn revoke_invitation(&self, workspace_id: &str, id: &str) -> Result<bool, DbError> {
        let sql = "UPDATE invitations SET revoked_at = $1 WHERE workspace_id = $2 AND id = $3 \
                   AND accepted_at IS NULL AND revoked_at IS NULL";
        let n = on!(self, p => sqlx::query(sql).bind(now_ms()).bind(workspace_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Whether an open, unexpired invitation waits for this e-mail address.
    pub async fn has_open_invitation(&self, email: &str) -> Result<bool, DbError> {
        let sql = "SELECT COUNT(*) FROM invitations WHERE email = $1 AND accepted_at IS NULL \
                   AND revoked_at IS NULL AND expires_at > $2";
        let n: i64 =
            on!(self, p => sqlx::query_scalar(sql).bind(email).bind(now_ms()).fetch_one(p).await)?;
        Ok(n > 0)
    }

    /// Uses an invitation once: marks it accepted and adds the membership in one transaction.
    /// A user who already belongs to the workspace keeps their role.
    pub async fn accept_invitation(
        &self,
        invitation: &InvitationRow,
        user_id: &str,
    ) -> Result<Acceptance, DbError> {
        let now = now_ms();
        let claim = "UPDATE invitations SET accepted_at = $1, accepted_by = $2 WHERE id = $3 \
                     AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1";
        let join = "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                    ON CONFLICT (workspace_id, user_id) DO NOTHING";
        on!(self, p => {
            let mut tx = p.begin_write().await?;
            let n = sqlx::query(claim).bind(now).bind(user_id).bind(&invitation.id)
                .execute(&mut *tx).await?.rows_affected();
            if n != 1 {
                return Ok(Acceptance::Gone);
            }
            sqlx::query(join).bind(&invitation.workspace_id).bind(user_id).bind(&invitation.role).bind(now)
                .execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(Acceptance::Joined)
    }

    // ---- members ------------------------------------------------------------------------

    /// A workspace's members, oldest first.
    pub async fn members(&self, workspace_id: &str) -> Result<Vec<MemberRow>, DbError> {
        let sql = "SELECT u.id AS user_id, u.email, u.name, m.role, m.created_at FROM memberships m \
                   JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1 ORDER BY m.created_at, u.id";
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).fetch_all(p).await)?)
    }

    /// Sets a member's role, never demoting the workspace's last admin.
    pub async fn set_member_role(
        &self,
        workspace_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<MemberChange, DbError> {
        let sql = "UPDATE memberships SET role = $1 WHERE workspace_id = $2 AND user_id = $3 AND ($1 = 'admin' OR \
                   (SELECT COUNT(*) FROM memberships o WHERE o.workspace_id = $2 AND o.role = 'admin' AND o.user_id <> $3) > 0)";
        self.guarded_member_change(sql, workspace_id, user_id, Some(role))
            .await
    }

    /// Removes a member, never the workspace's last admin.
    pub async fn remove_member(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> Result<MemberChange, DbError> {
        let sql = "DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2 AND (role <> 'admin' OR \
                   (SELECT COUNT(*) FROM memberships o WHERE o.workspace_id = $1 AND o.role = 'admin' AND o.user_id <> $2) > 0)";
        self.guarded_member_change(sql, workspace_id, user_id, None)
            .await
    }

    /// Runs a conditional membership change (binding the role when given, then the workspace
    /// and the user)
    /// in a transaction. On Postgres the workspace row is locked first, so that two admins
    /// demoting each other at once cannot both see "another admin is left"; SQLite serialises
    /// writers itself.
    async fn guarded_member_change(
        &self,
        sql: &'static str,
        workspace_id: &str,
        user_id: &str,
        role: Option<&str>,
    ) -> Result<MemberChange, DbError> {
        let exists = "SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND user_id = $2";
        let lock = "SELECT id FROM workspaces WHERE id = $1 FOR UPDATE";
        let (changed, found): (u64, i64) = on!(self, p => {
            let mut tx = p.begin_write().await?;
            if self.engine() == super::Engine::Postgres {
                sqlx::query(lock).bind(workspace_id).fetch_optional(&mut *tx).await?;
            }
            let mut q = sqlx::query(sql);
            if let Some(role) = role {
                q = q.bind(role);
            }
            let changed = q.bind(workspace_id).bind(user_id).execute(&mut *tx).await?.rows_affected();
            let found: i64 = sqlx::query_scalar(exists).bind(workspace_id).bind(user_id)
                .fetch_one(&mut *tx).await?;
            tx.commit().await?;
            (changed, found)
        });
        Ok(match (changed, found) {
            (1, _) => MemberChange::Done,
            (_, 0) => MemberChange::NotFound,
            _ => MemberChange::LastAdmin,
        })
    }

    // ---- API tokens ---------------------------------------------------------------------

    /// A workspace's live tokens, newest first (never the token itself, only its prefix).
    pub async fn api_tokens(&self, workspace_id: &str) -> Result<Vec<ApiTokenRow>, DbError> {
        let sql = "SELECT t.id, t.name, t.prefix, t.user_id, u.email, t.created_at, t.last_used_at FROM api_tokens t \
                   JOIN users u ON u.id = t.user_id WHERE t.workspace_id = $1 AND t.revoked_at IS NULL \
                   ORDER BY t.created_at DESC, t.id DESC";
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).fetch_all(p).await)?)
    }

    /// Revokes a live token of the workspace; false when there is none with this id.
    pub async fn revoke_api_token(&self, workspace_id: &str, id: &str) -> Result<bool, DbError> {
        let sql = "UPDATE api_tokens SET revoked_at = $1 WHERE workspace_id = $2 AND id = $3 AND revoked_at IS NULL";
        let n = on!(self, p => sqlx::query(sql).bind(now_ms()).bind(workspace_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    // ---- the session's workspace, the user's profile ------------------------------------

    pub async fn set_session_workspace(
        &self,
        id_hash: &str,
        workspace_id: &str,
    ) -> Result<(), DbError> {
        let sql = "UPDATE sessions SET workspace_id = $1 WHERE id_hash = $2";
        on!(self, p => sqlx::query(sql).bind(workspace_id).bind(id_hash).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Corrects a user's name and e-mail; `Conflict` when another user has the e-mail.
    pub async fn update_user(
        &self,
        user_id: &str,
        name: &str,
        email: &str,
    ) -> Result<UserRow, DbError> {
        let sql = "UPDATE users SET name = $1, email = $2, updated_at = $3 WHERE id = $4";
        let n = on!(self, p => sqlx::query(sql).bind(name).bind(email).bind(now_ms()).bind(user_id)
            .execute(p).await.map(|r| r.rows_affected()))
        .map_err(conflict("a user with this e-mail"))?;
        if n == 0 {
            return Err(DbError::NotFound("user".into()));
        }
        Ok(UserRow {
            id: user_id.to_string(),
            email: email.to_string(),
            name: name.to_string(),
        })
    }

    // ---- numbers ------------------------------------------------------------------------

    /// Records what Meta says about a number (absent facts stay as they were).
    pub async fn update_number_details(
        &self,
        workspace_id: &str,
        id: &str,
        d: &NumberDetails<'_>,
    ) -> Result<(), DbError> {
        let sql = "UPDATE phone_numbers SET display_phone = COALESCE($1, display_phone), \
                   verified_name = COALESCE($2, verified_name), quality_rating = COALESCE($3, quality_rating), \
                   messaging_tier = COALESCE($4, messaging_tier), updated_at = $5 WHERE workspace_id = $6 AND id = $7";
        on!(self, p => sqlx::query(sql).bind(d.display_phone).bind(d.verified_name).bind(d.quality_rating)
            .bind(d.messaging_tier).bind(now_ms()).bind(workspace_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Replaces the (encrypted) access token of the connection a number belongs to.
    pub async fn replace_number_token(
        &self,
        workspace_id: &str,
        number_id: &str,
        access_token_enc: &str,
        key_id: &str,
    ) -> Result<bool, DbError> {
        let sql = "UPDATE meta_connections SET access_token_enc = $1, key_id = $2, token_invalid_at = NULL, updated_at = $3 \
                   WHERE workspace_id = $4 AND id = (SELECT connection_id FROM phone_numbers WHERE workspace_id = $4 AND id = $5)";
        let n = on!(self, p => sqlx::query(sql).bind(access_token_enc).bind(key_id).bind(now_ms()).bind(workspace_id)
            .bind(number_id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
