//! Environments and releases of a tenant.
//!
//! - `POST /api/v1/tenants/{tid}/environments` `{"name"}` → 201 `{"name", "createdAt"}`
//!   (409 when it exists); `GET` lists them. The name is what the `stage` header selects.
//! - `POST /api/v1/tenants/{tid}/releases` `{"workflowId", "environment", "version"?}` → 201:
//!   makes that release version of the flow live in the environment. Without `version`, the
//!   current draft is published (an immutable release version, if it is not one yet) and
//!   released. `GET` lists every environment's releases.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_actors::ids::now_ms;
use sluice_storage::{EnvironmentRecord, FlowStatus, ReleaseRecord, WriteSet};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use super::workflows::snapshot_as;
use crate::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/tenants/{tid}/environments",
            post(create_env).get(list_envs),
        )
        .route(
            "/api/v1/tenants/{tid}/releases",
            post(create_release).get(list_releases),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEnvironment {
    name: String,
}

fn env_view(e: &EnvironmentRecord) -> Value {
    json!({"name": e.name, "createdAt": rfc3339(e.created_at_ms)})
}

fn release_view(r: &ReleaseRecord) -> Value {
    json!({
        "environment": r.environment,
        "workflowId": r.flow_id,
        "workflowName": r.flow_name,
        "version": r.version,
        "createdAt": rfc3339(r.created_at_ms),
    })
}

async fn create_env(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    JsonBody(body): JsonBody<NewEnvironment>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let space = caller.space();
    let valid = (1..=64).contains(&body.name.len())
        && body
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !body.name.eq_ignore_ascii_case("DRAFT");
    if !valid {
        return Err(ApiError::bad_request(
            "environment name must be 1-64 letters, digits, '_' or '-', and not DRAFT",
        ));
    }
    if state
        .store
        .environment(space, &tenant, &body.name)?
        .is_some()
    {
        return Err(ApiError::conflict(format!(
            "environment {:?} already exists",
            body.name
        )));
    }
    let record = EnvironmentRecord {
        name: body.name,
        created_at_ms: now_ms(),
    };
    let mut w = WriteSet::new();
    w.put_environment(space, &tenant, &record)?;
    state.store.commit(w).await?;
    Ok((StatusCode::CREATED, Json(env_view(&record))))
}

async fn list_envs(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let envs = state.store.environments(caller.space(), &tenant)?;
    Ok(Json(
        json!({"environments": envs.iter().map(env_view).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewRelease {
    workflow_id: String,
    environment: String,
    version: Option<u32>,
}

async fn create_release(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    JsonBody(body): JsonBody<NewRelease>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let space = caller.space();
    if state
        .store
        .environment(space, &tenant, &body.environment)?
        .is_none()
    {
        return Err(ApiError::bad_request(format!(
            "no environment {:?}; create it first",
            body.environment
        )));
    }
    let flow = state
        .store
        .flow(space, &tenant, &body.workflow_id)?
        .ok_or_else(ApiError::not_found)?;
    let mut w = WriteSet::new();
    let version = match body.version {
        Some(v) => {
            if state
                .store
                .flow_version(space, &tenant, &flow.id, v)?
                .is_none()
            {
                return Err(ApiError::bad_request(format!(
                    "flow {} has no release version {v}",
                    flow.id
                )));
            }
            v
        }
        None => {
            if state
                .store
                .flow_version(space, &tenant, &flow.id, flow.version)?
                .is_none()
            {
                snapshot_as(&mut w, space, &flow, FlowStatus::Draft)?;
            }
            flow.version
        }
    };
    let record = ReleaseRecord {
        environment: body.environment,
        flow_id: flow.id.clone(),
        flow_name: flow.name.clone(),
        version,
        created_at_ms: now_ms(),
    };
    w.put_release(space, &tenant, &record)?;
    state.store.commit(w).await?;
    Ok((StatusCode::CREATED, Json(release_view(&record))))
}

async fn list_releases(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let releases = state.store.releases(caller.space(), &tenant)?;
    Ok(Json(
        json!({"releases": releases.iter().map(release_view).collect::<Vec<_>>()}),
    ))
}
