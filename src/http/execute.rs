//! The execute API: `POST /api/v1/{flow_name}` with `{"input": {…}}`.
//!
//! - Tenant: `x-fastn-space-tenantid` (empty means `default`).
//! - `stage`: absent → the flow's live release; `DRAFT` → the current draft; any other value
//!   → the release live in that environment (404 when the environment or its release of the
//!   flow does not exist).
//! - The flow must have a `manual` trigger; `input` is validated against its `requestSchema`:
//!   400 `BAD_REQUEST` with `"violations": [{"path", "message"}]`.
//! - The execution runs at P1. The answer waits for it: the flow's `response` (status and the
//!   rendered body) when it completes, its error body and status when it fails, 408
//!   `TIMED_OUT` when it times out (the flow's `timeoutMs`) or is still going after
//!   [`MAX_SYNC_WAIT`] (it keeps running; its id is in `x-sluice-execution-id`).
//! - A call whose `CDN-Loop` header puts it too deep in, or past the budget of, a chain of
//!   calls Sluice made to itself (a flow calling itself, see
//!   `sluice_actors::pipeline::hops`) is refused with 508 `LOOP_DETECTED`; otherwise the
//!   execution carries the call's lineage into its own connector calls.
//! - A call from a flow (a `CDN-Loop` hop count above 0) runs its execution at once, outside
//!   the tenant's concurrency slots: the calling execution holds a slot while it waits, so
//!   queueing the callee behind such callers could leave it none. At most 256 such calls may
//!   wait at once per chain (past that: 508) and 1,024 per tenant (429 with `Retry-After`;
//!   see [`super::lineage::SyncCalls`]).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use sluice_actors::engine::context;
use sluice_actors::flow::{FlowSpec, Plan, Trigger, plan, request_schema, versions};
use sluice_actors::ids::now_ms;
use sluice_actors::json_depth::parse_stored;
use sluice_actors::mapping::template::render_value;
use sluice_actors::pipeline::submit::P1_USER;
use sluice_actors::runtime::{ExecutionRef, RootMsg};
use sluice_storage::{ExecutionRecord, ExecutionStatus, FlowRecord, FlowStatus, WriteSet};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use super::lineage::{IncomingLineage, admit};

/// Longest time the execute API waits for an execution (below the 30 s request limit).
pub const MAX_SYNC_WAIT: Duration = Duration::from_secs(25);

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/{flow_name}", post(execute))
}

/// The flow version `stage` selects.
fn select(
    state: &AppState,
    space: &str,
    tenant: &str,
    flow: &FlowRecord,
    stage: Option<&str>,
) -> Result<FlowRecord, ApiError> {
    match stage {
        Some(s) if s.eq_ignore_ascii_case("DRAFT") => Ok(flow.clone()),
        Some(env) => {
            state
                .store
                .environment(space, tenant, env)?
                .ok_or_else(ApiError::not_found)?;
            let release = state
                .store
                .release(space, tenant, env, &flow.id)?
                .ok_or_else(ApiError::not_found)?;
            versions::find(&state.store, space, tenant, &flow.id, release.version)?
                .ok_or_else(ApiError::not_found)
        }
        None => {
            if flow.status != FlowStatus::Live {
                return Err(ApiError::not_found());
            }
            Ok(versions::live(&state.store, space, tenant, &flow.id)?
                .unwrap_or_else(|| flow.clone()))
        }
    }
}

async fn execute(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    IncomingLineage(lineage): IncomingLineage,
    Path(flow_name): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let tid = caller
        .tenant_header
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let tenant = caller.tenant(&state, &tid)?;
    admit(&state, &tenant, &lineage)?;
    let space = caller.space().to_owned();
    let flow = state
        .store
        .flows(&space, &tenant)?
        .into_iter()
        .find(|f| f.name == flow_name)
        .ok_or_else(ApiError::not_found)?;
    let stage = headers
        .get("stage")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let record = select(&state, &space, &tenant, &flow, stage)?;
    let spec: FlowSpec = serde_json::from_str(&record.spec_json).map_err(ApiError::internal)?;
    let plan = plan(spec).map_err(|e| ApiError::internal(e.message))?;
    let Trigger::Manual { request_schema } = &plan.spec.trigger else {
        return Err(ApiError::bad_request(format!(
            "flow {flow_name:?} has a {} trigger; only manual flows run through this API",
            plan.spec.trigger.kind()
        )));
    };
    let input = match body.get("input") {
        None | Some(Value::Null) => json!({}),
        Some(v) => v.clone(),
    };
    if let Some(schema) = request_schema {
        let violations: Vec<Value> = request_schema::violations(schema, &input)
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|v| json!({"path": v.path, "message": v.message}))
            .collect();
        if !violations.is_empty() {
            let body = json!({
                "code": "BAD_REQUEST",
                "statusCode": 400,
                "message": format!("input does not match the flow's request schema ({} violation(s))", violations.len()),
                "violations": violations,
            });
            return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
        }
    }
    // Held until this handler answers: the time the calling execution waits.
    let waiting = state.sync_calls.enter(&tenant, &lineage)?;
    let id = format!("exe_{}", uuid::Uuid::now_v7().simple());
    let input_json = input.to_string();
    let exec = ExecutionRecord {
        id: id.clone(),
        space_id: space.clone(),
        tenant_id: tenant.clone(),
        flow_id: record.id.clone(),
        flow_name: record.name.clone(),
        flow_version: record.version,
        status: ExecutionStatus::Pending,
        event_id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        trigger_kind: "manual".into(),
        trigger_json: input_json,
        input_json: String::new(),
        created_at_ms: now_ms(),
        started_at_ms: None,
        finished_at_ms: None,
        error_json: None,
        priority: P1_USER,
        attempt: 1,
        replay_of: None,
        idempotency_key: id.clone(),
        hops: lineage.hops,
        correlation_id: lineage.correlation_id,
    };
    let mut done = state.engine.completions();
    let mut w = WriteSet::new();
    w.put_execution(&exec)?;
    state.store.commit(w).await?;
    let run = if waiting.is_from_flow() {
        RootMsg::RunCalled {
            exec: ExecutionRef::of(&exec),
            until: std::time::Instant::now() + MAX_SYNC_WAIT,
        }
    } else {
        RootMsg::run(&exec)
    };
    state.root.cast(run).map_err(ApiError::internal)?;
    let finished = tokio::time::timeout(MAX_SYNC_WAIT, async {
        loop {
            match done.recv().await {
                Ok(x) if x == id => return,
                Ok(_) => {}
                // Missed notices: look at the record instead.
                Err(_) => {
                    if state
                        .store
                        .execution(&space, &tenant, &id)
                        .ok()
                        .flatten()
                        .is_some_and(|e| e.status.is_terminal())
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    done = state.engine.completions();
                }
            }
        }
    })
    .await;
    let exec = state
        .store
        .execution(&space, &tenant, &id)?
        .ok_or_else(|| ApiError::internal("execution vanished"))?;
    let mut response = if finished.is_err() || !exec.status.is_terminal() {
        ApiError::timed_out().into_response()
    } else {
        answer(&state, &plan, &exec)?
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-sluice-execution-id", v);
    }
    Ok(response)
}

/// The answer for a finished execution.
fn answer(state: &AppState, plan: &Plan, exec: &ExecutionRecord) -> Result<Response, ApiError> {
    if exec.status != ExecutionStatus::Completed {
        let mut error = exec
            .error_json
            .as_deref()
            .map(parse_stored)
            .unwrap_or_else(|| json!({"code": "INTERNAL_ERROR", "statusCode": 500}));
        let status = if exec.status == ExecutionStatus::TimedOut {
            if let Some(o) = error.as_object_mut() {
                o.insert("code".into(), json!("TIMED_OUT"));
                o.insert("statusCode".into(), json!(408));
            }
            StatusCode::REQUEST_TIMEOUT
        } else {
            error
                .get("statusCode")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        };
        if let Some(o) = error.as_object_mut() {
            o.insert("executionId".into(), json!(exec.id));
        }
        return Ok((status, Json(error)).into_response());
    }
    let mut ctx = context::initial(exec);
    for record in state
        .store
        .journal(&exec.space_id, &exec.tenant_id, &exec.id)?
    {
        context::record_output(&mut ctx, &record.name.clone(), &record);
    }
    let (status, body) = match &plan.spec.response {
        Some(r) => {
            let body = match &r.body {
                Some(t) => render_value(t, &ctx).map_err(|e| ApiError::internal(e.to_string()))?,
                None => json!({"executionId": exec.id, "status": "completed"}),
            };
            (
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK),
                body,
            )
        }
        None => (
            StatusCode::OK,
            json!({"executionId": exec.id, "status": "completed", "steps": ctx.get("steps")}),
        ),
    };
    Ok((status, Json(body)).into_response())
}
