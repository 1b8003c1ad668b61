//! Executions of a tenant.
//!
//! - `GET /api/v1/tenants/{tid}/executions?limit=50&cursor=…` → `{"executions": […],
//!   "nextCursor": "…" | null}`, newest first; `limit` is 1-500 (default 50); `cursor` is the
//!   opaque value of the previous page's `nextCursor`. Each summary carries `hops` and
//!   `correlationId`: where its trigger stands in a chain of calls Sluice made to itself
//!   (see `sluice_actors::pipeline::hops`).
//! - `GET …/executions/{eid}` → status, timestamps and every journaled step's input, output,
//!   error and attempts; steps still waiting show `"status": "waiting"` with their wait.
//!   Another tenant's execution is 404.
//! - `POST …/executions/{eid}/cancel` → the execution `cancelled` (in-flight calls abandoned,
//!   remaining steps `skipped`); 409 `CONFLICT` when it already ended.
//! - `POST …/executions/{eid}/approve` and `/reject` with `{"comment"?}` → decide the pending
//!   approval step (the approver is the API key's label); 409 when none is pending.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_actors::flow::{FlowSpec, plan};
use sluice_actors::ids::now_ms;
use sluice_actors::json_depth::parse_stored;
use sluice_actors::runtime::RootMsg;
use sluice_storage::{ExecutionRecord, StepRecord, WaitRecord, WriteSet};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::{QueryParams, page_cursor};
use crate::time::{rfc3339, rfc3339_opt};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tid}/executions", get(list))
        .route("/api/v1/tenants/{tid}/executions/{eid}", get(show))
        .route(
            "/api/v1/tenants/{tid}/executions/{eid}/cancel",
            post(cancel),
        )
        .route(
            "/api/v1/tenants/{tid}/executions/{eid}/approve",
            post(approve),
        )
        .route(
            "/api/v1/tenants/{tid}/executions/{eid}/reject",
            post(reject),
        )
}

fn wait_view(w: &WaitRecord) -> Value {
    json!({
        "name": w.name,
        "status": "waiting",
        "wait": {
            "kind": w.kind,
            "since": rfc3339(w.started_at_ms),
            "until": rfc3339_opt(w.due_ms),
            "deadline": rfc3339_opt(w.deadline_ms),
            "nextCheck": rfc3339_opt(w.next_check_ms),
            "checks": w.checks,
            "resolution": w.resolution.as_deref().map(parse_stored),
        },
    })
}

/// The plan of an execution's flow version (for skipping its remaining steps).
fn plan_of(state: &AppState, e: &ExecutionRecord) -> Option<sluice_actors::flow::Plan> {
    let record = sluice_actors::flow::versions::find(
        &state.store,
        &e.space_id,
        &e.tenant_id,
        &e.flow_id,
        e.flow_version,
    )
    .ok()??;
    let spec: FlowSpec = serde_json::from_str(&record.spec_json).ok()?;
    plan(spec).ok()
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, eid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let space = caller.space();
    // One decision per approval: the check below and the write it guards must not race.
    let _serialized = state.admin_writes.lock().await;
    let exec = state
        .store
        .execution(space, &tenant, &eid)?
        .ok_or_else(ApiError::not_found)?;
    if exec.status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "the execution is already {}",
            exec.status.as_str()
        )));
    }
    let plan = plan_of(&state, &exec);
    let exec = state
        .engine
        .cancel(space, &tenant, &eid, plan.as_ref())
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(summary(&exec)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    comment: Option<String>,
}

async fn decide(
    state: AppState,
    caller: Caller,
    tid: String,
    eid: String,
    body: Option<Decision>,
    approved: bool,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let space = caller.space();
    // One decision per approval: the check below and the write it guards must not race.
    let _serialized = state.admin_writes.lock().await;
    let exec = state
        .store
        .execution(space, &tenant, &eid)?
        .ok_or_else(ApiError::not_found)?;
    if exec.status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "the execution is already {}",
            exec.status.as_str()
        )));
    }
    let Some(mut wait) = state
        .store
        .waits(space, &tenant, &eid)?
        .into_iter()
        .find(|w| w.kind == "approval" && w.resolution.is_none())
    else {
        return Err(ApiError::conflict(
            "no approval is pending in this execution",
        ));
    };
    let decision = json!({
        "approved": approved,
        "approver": caller.key.label,
        "approverKey": caller.key.key_prefix,
        "comment": body.and_then(|b| b.comment),
        "at": rfc3339(now_ms()),
    });
    wait.resolution = Some(decision.to_string());
    let mut w = WriteSet::new();
    w.put_wait(space, &tenant, &eid, &wait)?;
    state.store.commit(w).await?;
    state
        .root
        .cast(RootMsg::run(&exec))
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({"executionId": eid, "step": wait.name, "decision": decision}),
    ))
}

/// An optional `{"comment"}` body (empty means no comment).
fn parse_decision(body: &[u8]) -> Result<Option<Decision>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, eid)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    decide(state, caller, tid, eid, parse_decision(&body)?, true).await
}

async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, eid)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    decide(state, caller, tid, eid, parse_decision(&body)?, false).await
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

fn summary(e: &ExecutionRecord) -> Value {
    json!({
        "id": e.id,
        "flowId": e.flow_id,
        "flowName": e.flow_name,
        "flowVersion": e.flow_version,
        "status": e.status.as_str(),
        "eventId": e.event_id,
        "triggerType": e.trigger_kind,
        "priority": format!("P{}", e.priority),
        "attempt": e.attempt,
        "replayOf": e.replay_of,
        // Loop detection: how many times its trigger passed through Sluice, and the event
        // or call that started that chain (its own event when it came from outside).
        "hops": e.hops,
        "correlationId": if e.correlation_id.is_empty() { &e.event_id } else { &e.correlation_id },
        "createdAt": rfc3339(e.created_at_ms),
        "startedAt": rfc3339_opt(e.started_at_ms),
        "finishedAt": rfc3339_opt(e.finished_at_ms),
        "error": e.error_json.as_deref().map(parse_stored),
    })
}

fn step_view(s: &StepRecord) -> Value {
    json!({
        "name": s.name,
        "status": s.status.as_str(),
        "input": parse_stored(&s.input_json),
        "output": parse_stored(&s.output_json),
        "error": s.error_json.as_deref().map(parse_stored),
        "attempts": s.attempts.iter().map(|a| json!({
            "startedAt": rfc3339(a.started_at_ms),
            "finishedAt": rfc3339(a.finished_at_ms),
            "durationMs": a.finished_at_ms.saturating_sub(a.started_at_ms),
            "error": a.error_json.as_deref().map(parse_stored),
        })).collect::<Vec<_>>(),
        "startedAt": rfc3339(s.started_at_ms),
        "finishedAt": rfc3339(s.finished_at_ms),
        "durationMs": s.finished_at_ms.saturating_sub(s.started_at_ms),
    })
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 500"));
    }
    let cursor = page_cursor(q.cursor.as_deref())?;
    let (page, next) =
        state
            .store
            .executions_page(caller.space(), &tenant, cursor.as_deref(), limit)?;
    Ok(Json(json!({
        "executions": page.iter().map(summary).collect::<Vec<_>>(),
        "nextCursor": next.map(hex::encode),
    })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, eid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let space = caller.space();
    let exec = state
        .store
        .execution(space, &tenant, &eid)?
        .ok_or_else(ApiError::not_found)?;
    let steps = state.store.journal(space, &tenant, &eid)?;
    let waits = state.store.waits(space, &tenant, &eid)?;
    let mut views: Vec<(u32, Value)> = steps.iter().map(|s| (s.index, step_view(s))).collect();
    views.extend(waits.iter().map(|w| (w.index, wait_view(w))));
    views.sort_by_key(|(i, _)| *i);
    let mut view = summary(&exec);
    if let Some(obj) = view.as_object_mut() {
        obj.insert("trigger".into(), parse_stored(&exec.trigger_json));
        obj.insert(
            "steps".into(),
            Value::Array(views.into_iter().map(|(_, v)| v).collect()),
        );
    }
    Ok(Json(view))
}
