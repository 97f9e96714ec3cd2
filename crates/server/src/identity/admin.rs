//! The admin API: list users and their usage, change role, disable/enable (which ends
//! their sessions and keys within the revocation bound), set quotas, delete users, and
//! read the audit log. Admins see any item through the media API (`?owner=` to list).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::{self, AuditEntry, AuditEvent};
use super::auth::{Admin, ClientInfo};
use super::{sessions, users, UserView};
use crate::kernel::error::{AppError, AppJson, AppQuery, AppResult, ErrorBody};
use crate::kernel::ids::UserId;
use crate::kernel::paging::{Page, PageQuery};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(list_audit))
}

#[derive(Serialize, ToSchema)]
pub struct AdminUserView {
    #[serde(flatten)]
    pub user: UserView,
    pub used_bytes: i64,
    pub items: i64,
    pub locked: bool,
}

#[derive(Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<AdminUserView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// `user` or `admin`.
    pub role: Option<String>,
    pub disabled: Option<bool>,
    /// Bytes of originals the user may own; `null` removes the limit.
    #[serde(default, deserialize_with = "crate::kernel::error::present")]
    #[schema(value_type = Option<i64>)]
    pub quota_bytes: Option<Option<i64>>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub kind: Option<String>,
    pub user_id: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

pub(super) fn last_admin() -> AppError {
    AppError::unprocessable(
        "last_admin",
        "this is the last active administrator; promote another one first",
    )
}

fn admin_view(user: users::User) -> AdminUserView {
    let locked = user
        .locked_until
        .is_some_and(|t| t > crate::kernel::time::now_ms());
    AdminUserView {
        used_bytes: user.used_bytes,
        items: user.item_count,
        user: user.into(),
        locked,
    }
}

async fn existing(state: &AppState, id: &str) -> AppResult<users::User> {
    let id = UserId::parse(id).ok_or_else(|| AppError::not_found("user"))?;
    users::find_by_id(&state.db, id.as_str())
        .await?
        .ok_or_else(|| AppError::not_found("user"))
}

#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = UserPage), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<UserPage>> {
    let page = Page::of(q)?;
    let mut rows = users::list(&state.db, page.cursor.as_deref(), page.fetch()).await?;
    let next_cursor = page.finish(&mut rows, |u| u.id.clone());
    let mut out = Vec::with_capacity(rows.len());
    for user in rows {
        out.push(admin_view(user));
    }
    Ok(Json(UserPage {
        users: out,
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = AdminUserView), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(id): Path<String>,
) -> AppResult<Json<AdminUserView>> {
    let user = existing(&state, &id).await?;
    Ok(Json(admin_view(user)))
}

#[utoipa::path(patch, path = "/api/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])), request_body = UpdateUser,
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = AdminUserView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
    AppJson(req): AppJson<UpdateUser>,
) -> AppResult<Json<AdminUserView>> {
    let user = existing(&state, &id).await?;
    let is_admin = match req.role.as_deref() {
        None => None,
        Some("admin") => Some(true),
        Some("user") => Some(false),
        Some(_) => {
            return Err(AppError::unprocessable(
                "invalid_role",
                "role is `user` or `admin`",
            ))
        }
    };
    if id == admin.user_id && (is_admin == Some(false) || req.disabled == Some(true)) {
        return Err(AppError::unprocessable(
            "cannot_demote_self",
            "an admin cannot demote or disable themselves; ask another admin",
        ));
    }
    let removes_admin = user.is_admin && (is_admin == Some(false) || req.disabled == Some(true));
    if removes_admin && users::other_admins(&state.db, &id).await? == 0 {
        return Err(last_admin());
    }
    if let Some(Some(quota)) = req.quota_bytes {
        if quota < 0 {
            return Err(AppError::unprocessable(
                "invalid_quota",
                "quota_bytes must be ≥ 0 or null",
            ));
        }
    }
    let change = users::UserChange {
        is_admin,
        disabled: req.disabled,
        quota_bytes: req.quota_bytes,
    };
    users::apply_change(&state.db, &id, &change).await?;
    if req.disabled == Some(true) {
        sessions::revoke_all(&state.db, &id, None, "user_disabled").await?;
    }
    state.identity.auth.forget();
    let event = |kind| {
        AuditEvent::new(kind)
            .user(&id)
            .actor(&admin.user_id)
            .client(&client)
    };
    if let Some(now_admin) = is_admin.filter(|&a| a != user.is_admin) {
        event("role_changed")
            .detail(serde_json::json!({ "role": if now_admin { "admin" } else { "user" } }))
            .record(&state.db)
            .await;
    }
    if let Some(disabled) = req.disabled.filter(|&d| d != user.disabled_at.is_some()) {
        event(if disabled {
            "user_disabled"
        } else {
            "user_enabled"
        })
        .record(&state.db)
        .await;
    }
    if let Some(quota) = req.quota_bytes {
        event("quota_changed")
            .detail(serde_json::json!({ "quota_bytes": quota }))
            .record(&state.db)
            .await;
    }
    let user = existing(&state, &id).await?;
    Ok(Json(admin_view(user)))
}

#[utoipa::path(delete, path = "/api/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let user = existing(&state, &id).await?;
    if id == admin.user_id {
        return Err(AppError::unprocessable(
            "cannot_delete_self",
            "delete your own account through DELETE /api/v1/account",
        ));
    }
    super::delete_user(&state, &id).await?;
    AuditEvent::new("user_deleted")
        .user(&id)
        .actor(&admin.user_id)
        .client(&client)
        .detail(serde_json::json!({ "username": user.username, "items": user.item_count }))
        .record(&state.db)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
pub async fn list_audit(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    AppQuery(q): AppQuery<AuditQuery>,
) -> AppResult<Json<AuditPage>> {
    let page = Page::parse(q.limit, q.cursor)?;
    let mut events = audit::query(
        &state.db,
        q.kind.as_deref(),
        q.user_id.as_deref(),
        page.cursor.as_deref(),
        page.fetch(),
    )
    .await?;
    let next_cursor = page.finish(&mut events, |e| e.id.clone());
    Ok(Json(AuditPage {
        events,
        next_cursor,
    }))
}
