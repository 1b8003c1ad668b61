//! `POST /api/v1/tenants` `{"id": "acme"}` → 201; `GET /api/v1/tenants` lists them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_actors::ids::now_ms;
use sluice_storage::{TenantRecord, WriteSet, keys};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use crate::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/tenants", post(create).get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    id: String,
}

fn view(t: &TenantRecord) -> Value {
    json!({"id": t.id, "createdAt": rfc3339(t.created_at_ms)})
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateTenant>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if caller.key.tenant_id.is_some() {
        return Err(ApiError::forbidden(
            "a tenant-scoped key cannot create tenants",
        ));
    }
    let valid = keys::check_id(&body.id).is_ok()
        && body.id.len() <= 64
        && body
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(ApiError::bad_request(
            "tenant id must be 1-64 letters, digits, '_' or '-'",
        ));
    }
    if state.store.tenant(caller.space(), &body.id)?.is_some() {
        return Err(ApiError::conflict(format!(
            "tenant {:?} already exists",
            body.id
        )));
    }
    let record = TenantRecord {
        space_id: caller.space().to_owned(),
        id: body.id,
        created_at_ms: now_ms(),
    };
    let mut w = WriteSet::new();
    w.put_tenant(&record)?;
    state.store.commit(w).await?;
    Ok((StatusCode::CREATED, Json(view(&record))))
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let tenants: Vec<Value> = state
        .store
        .tenants(caller.space())?
        .iter()
        .filter(|t| {
            caller
                .key
                .tenant_id
                .as_ref()
                .is_none_or(|only| only == &t.id)
        })
        .map(view)
        .collect();
    Ok(Json(json!({ "tenants": tenants })))
}
