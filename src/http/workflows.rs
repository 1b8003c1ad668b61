//! Flow definitions of a tenant.
//!
//! - `POST /api/v1/tenants/{tid}/workflows` with the flow JSON → 201
//!   `{"id", "name", "version", "status": "draft"}`; an invalid flow is 400 `INVALID_FLOW`
//!   with the offending `step`; a name already used in the tenant is 409.
//! - `GET …/workflows`, `GET …/workflows/{wid}` (the full draft spec, `version`,
//!   `liveVersion`).
//! - `PUT …/workflows/{wid}` with the flow JSON edits the draft (validated like a create). When
//!   the draft's version was published, the edit starts version n+1; what runs live does not
//!   change until the next publish.
//! - `POST …/workflows/{wid}/publish` stores the draft as an immutable release version and
//!   makes it `live`; `POST …/workflows/{wid}/archive` deactivates the flow (its triggers stop
//!   matching; history and versions stay). Both tell the tenant's supervisor to reload.
//! - `GET …/workflows/{wid}/versions` lists the release versions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sluice_actors::flow::versions;
use sluice_actors::flow::{FlowSpec, plan};
use sluice_actors::ids::now_ms;
use sluice_actors::runtime::{RootMsg, scheduler};
use sluice_storage::{FlowRecord, FlowStatus, WriteSet};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use crate::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tid}/workflows", post(create).get(list))
        .route(
            "/api/v1/tenants/{tid}/workflows/{wid}",
            get(show).put(update),
        )
        .route(
            "/api/v1/tenants/{tid}/workflows/{wid}/versions",
            get(list_versions),
        )
        .route(
            "/api/v1/tenants/{tid}/workflows/{wid}/publish",
            post(publish),
        )
        .route(
            "/api/v1/tenants/{tid}/workflows/{wid}/archive",
            post(archive),
        )
}

fn summary(f: &FlowRecord) -> Value {
    json!({
        "id": f.id,
        "name": f.name,
        "version": f.version,
        "triggerType": serde_json::from_str::<FlowSpec>(&f.spec_json).ok().map(|s| s.trigger.kind()),
        "status": f.status.as_str(),
        "createdAt": rfc3339(f.created_at_ms),
        "updatedAt": rfc3339(f.updated_at_ms),
    })
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    JsonBody(doc): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let spec: FlowSpec = serde_json::from_value(doc)
        .map_err(|e| ApiError::invalid_flow(format!("invalid flow document: {e}"), None))?;
    let plan = plan(spec).map_err(|e| ApiError::invalid_flow(e.message, e.step))?;
    let space = caller.space();
    super::credentials::check_flow_credentials(&state, space, &tenant, &plan.spec)?;
    let _serialized = state.admin_writes.lock().await;
    if state
        .store
        .flows(space, &tenant)?
        .iter()
        .any(|f| f.name == plan.spec.name)
    {
        return Err(ApiError::conflict(format!(
            "a flow named {:?} already exists in this tenant",
            plan.spec.name
        )));
    }
    let now = now_ms();
    let record = FlowRecord {
        id: format!("flw_{}", uuid::Uuid::now_v7().simple()),
        tenant_id: tenant,
        name: plan.spec.name.clone(),
        version: 1,
        status: FlowStatus::Draft,
        spec_json: serde_json::to_string(&plan.spec).map_err(ApiError::internal)?,
        created_at_ms: now,
        updated_at_ms: now,
    };
    let mut w = WriteSet::new();
    w.put_flow(space, &record)?;
    state.store.commit(w).await?;
    Ok((StatusCode::CREATED, Json(summary(&record))))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let flows: Vec<Value> = state
        .store
        .flows(caller.space(), &tenant)?
        .iter()
        .map(summary)
        .collect();
    Ok(Json(json!({ "workflows": flows })))
}

fn load(state: &AppState, caller: &Caller, tid: &str, wid: &str) -> Result<FlowRecord, ApiError> {
    let tenant = caller.tenant(state, tid)?;
    state
        .store
        .flow(caller.space(), &tenant, wid)?
        .ok_or_else(ApiError::not_found)
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, wid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let flow = load(&state, &caller, &tid, &wid)?;
    let live = versions::live(&state.store, caller.space(), &flow.tenant_id, &flow.id)?;
    let mut view = summary(&flow);
    if let Some(obj) = view.as_object_mut() {
        obj.insert("liveVersion".into(), json!(live.map(|l| l.version)));
    }
    let spec: Value = serde_json::from_str(&flow.spec_json).map_err(ApiError::internal)?;
    if let Some(obj) = view.as_object_mut() {
        obj.insert("spec".into(), spec);
    }
    Ok(Json(view))
}

/// Adds to `w` the immutable release version of `flow`'s current draft.
///
/// # Errors
/// Encoding errors.
pub fn snapshot(w: &mut WriteSet, space: &str, flow: &FlowRecord) -> Result<(), ApiError> {
    snapshot_as(w, space, flow, FlowStatus::Live)
}

/// Stores the draft as its immutable release version with `status`: `live` when published
/// (what event triggers and the execute API run), `draft` when only released into an
/// environment (what `stage: <env>` runs; it does not change the published version).
pub fn snapshot_as(
    w: &mut WriteSet,
    space: &str,
    flow: &FlowRecord,
    status: FlowStatus,
) -> Result<(), ApiError> {
    let mut release = flow.clone();
    release.status = status;
    release.updated_at_ms = now_ms();
    w.put_flow_version(space, &release)?;
    Ok(())
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, wid)): Path<(String, String)>,
    JsonBody(doc): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let spec: FlowSpec = serde_json::from_value(doc)
        .map_err(|e| ApiError::invalid_flow(format!("invalid flow document: {e}"), None))?;
    let plan = plan(spec).map_err(|e| ApiError::invalid_flow(e.message, e.step))?;
    let space = caller.space();
    let _serialized = state.admin_writes.lock().await;
    let mut flow = load(&state, &caller, &tid, &wid)?;
    super::credentials::check_flow_credentials(&state, space, &flow.tenant_id, &plan.spec)?;
    if plan.spec.name != flow.name
        && state
            .store
            .flows(space, &flow.tenant_id)?
            .iter()
            .any(|f| f.name == plan.spec.name)
    {
        return Err(ApiError::conflict(format!(
            "a flow named {:?} already exists in this tenant",
            plan.spec.name
        )));
    }
    if state
        .store
        .flow_version(space, &flow.tenant_id, &flow.id, flow.version)?
        .is_some()
    {
        flow.version += 1;
    }
    flow.name = plan.spec.name.clone();
    flow.spec_json = serde_json::to_string(&plan.spec).map_err(ApiError::internal)?;
    flow.updated_at_ms = now_ms();
    let mut w = WriteSet::new();
    w.put_flow(space, &flow)?;
    state.store.commit(w).await?;
    Ok(Json(summary(&flow)))
}

async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, wid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let flow = load(&state, &caller, &tid, &wid)?;
    let all = state
        .store
        .flow_versions(caller.space(), &flow.tenant_id, &flow.id)?;
    let list: Vec<Value> = all
        .iter()
        .map(|v| {
            json!({"version": v.version, "publishedAt": rfc3339(v.updated_at_ms),
                   "spec": serde_json::from_str::<Value>(&v.spec_json).unwrap_or(Value::Null)})
        })
        .collect();
    Ok(Json(json!({"versions": list})))
}

async fn set_status(
    state: AppState,
    caller: Caller,
    tid: String,
    wid: String,
    status: FlowStatus,
) -> Result<Json<Value>, ApiError> {
    let mut flow = load(&state, &caller, &tid, &wid)?;
    // Publishing stores the published release, also when the same version was released
    // into an environment before (that snapshot does not count as published).
    let unreleased = status == FlowStatus::Live
        && state
            .store
            .flow_version(caller.space(), &flow.tenant_id, &flow.id, flow.version)?
            .is_none_or(|v| v.status != FlowStatus::Live);
    if flow.status != status || unreleased {
        flow.status = status;
        flow.updated_at_ms = now_ms();
        let mut w = WriteSet::new();
        if unreleased {
            snapshot(&mut w, caller.space(), &flow)?;
        }
        if status == FlowStatus::Live {
            // What goes live is this version: a cron trigger joins the scheduler's index.
            let spec: FlowSpec =
                serde_json::from_str(&flow.spec_json).map_err(ApiError::internal)?;
            scheduler::register(
                &mut w,
                &state.store,
                caller.space(),
                &flow,
                &spec,
                flow.updated_at_ms,
            )?;
        }
        w.put_flow(caller.space(), &flow)?;
        state.store.commit(w).await?;
        state
            .root
            .cast(RootMsg::FlowsChanged {
                space: caller.space().to_owned(),
                tenant: flow.tenant_id.clone(),
            })
            .map_err(ApiError::internal)?;
    }
    Ok(Json(summary(&flow)))
}

async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, wid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    set_status(state, caller, tid, wid, FlowStatus::Live).await
}

async fn archive(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, wid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    set_status(state, caller, tid, wid, FlowStatus::Archived).await
}
