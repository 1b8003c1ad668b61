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
//! - `Idempotency-Key` (at most 255 visible ASCII bytes): the execution's id derives from
//!   (tenant, flow, key, attempt), so a repeated call with the key — a client retrying, or a calling
//!   execution's step run again after a restart (connectors send one key per step call) —
//!   waits for, or answers with, the execution the first call started instead of starting
//!   another (the first call's flow version stands), unless that one failed or timed out:
//!   then the repeat starts the next (a caller's retry runs the flow again, with the
//!   retry's input). A repeat whose `input` differs from that execution's (as JSON values)
//!   gets 422 `IDEMPOTENCY_KEY_REUSED` and starts nothing (IETF draft "The
//!   Idempotency-Key HTTP Header Field", §2.7).
//! - A call that a running execution of the same tenant makes (recognised by its in-flight
//!   `x-sluice-call` token, see [`crate::own_calls`]; a copied `CDN-Loop` header is not
//!   enough) runs its execution at once, outside the tenant's concurrency slots: the caller
//!   holds a slot while it waits, so queueing the callee behind such callers could leave it
//!   none (see `sluice_actors::runtime::TenantMsg::RunCalled`). While the tenant already
//!   runs 64 per slot so, such calls get 429 `RATE_LIMITED` with `Retry-After: 1`, and
//!   nothing is stored (see `sluice_actors::runtime::slot_free`).

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
use sluice_actors::ids::{keyed_execution_id, now_ms};
use sluice_actors::json_depth::parse_stored;
use sluice_actors::mapping::template::render_value;
use sluice_actors::pipeline::submit::P1_USER;
use sluice_actors::runtime::slot_free::Reservation;
use sluice_actors::runtime::{ExecutionRef, RootMsg};
use sluice_storage::{ExecutionRecord, ExecutionStatus, FlowRecord, FlowStatus, WriteSet};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use super::lineage::{IncomingLineage, admit};
use crate::own_calls;

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
    let key = idempotency_key(&headers)?;
    let input_text = input.to_string();
    let reservation = reserve_slot_free(&state, &headers, &space, &tenant)?;
    // Subscribed before the execution can start, so its completion cannot be missed.
    let mut done = state.engine.completions();
    let new_record = |id: String| ExecutionRecord {
        id: id.clone(),
        space_id: space.clone(),
        tenant_id: tenant.clone(),
        flow_id: record.id.clone(),
        flow_name: record.name.clone(),
        flow_version: record.version,
        status: ExecutionStatus::Pending,
        event_id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        trigger_kind: "manual".into(),
        trigger_json: input_text.clone(),
        input_json: String::new(),
        created_at_ms: now_ms(),
        started_at_ms: None,
        finished_at_ms: None,
        error_json: None,
        priority: P1_USER,
        attempt: 1,
        replay_of: None,
        idempotency_key: id,
        hops: lineage.hops,
        correlation_id: lineage.correlation_id.clone(),
    };
    let exec = find_or_start(
        &state,
        &space,
        &tenant,
        &record.id,
        key.as_deref(),
        new_record,
    )
    .await?;
    if key.is_some() && !same_input(&exec, &input, &input_text) {
        return Err(ApiError::idempotency_key_reused(
            "this Idempotency-Key was first sent with a different input; its execution ran with that one",
        ));
    }
    let id = exec.id.clone();
    let called = own_caller(&state, &headers, &space, &tenant, &id);
    // A repeated key may find an execution of an earlier version of the flow.
    let plan = if exec.flow_version == record.version {
        plan
    } else {
        let earlier = versions::find(
            &state.store,
            &space,
            &tenant,
            &exec.flow_id,
            exec.flow_version,
        )?
        .ok_or_else(|| ApiError::internal("the execution's flow version is gone"))?;
        let spec: FlowSpec =
            serde_json::from_str(&earlier.spec_json).map_err(ApiError::internal)?;
        sluice_actors::flow::plan(spec).map_err(|e| ApiError::internal(e.message))?
    };
    // Until this handler ends (answered, timed out, or its client gone) the calling
    // execution waits, holding a slot: its callee runs outside the slots meanwhile. Each
    // `RunCalled` sent is paired with one `CallerGone`, so with several callers waiting
    // (one `Idempotency-Key`) the first to stop does not end the others' slot-free runs.
    let mut _caller_waits = None;
    if !exec.status.is_terminal() {
        match (called.is_some(), reservation) {
            (true, Some(reservation)) => {
                let run = RootMsg::RunCalled {
                    exec: ExecutionRef::of(&exec),
                    until: std::time::Instant::now() + MAX_SYNC_WAIT,
                    reservation,
                };
                state.root.cast(run).map_err(ApiError::internal)?;
                _caller_waits = Some(CallerWaits {
                    root: state.root.clone(),
                    exec: ExecutionRef::of(&exec),
                });
            }
            _ => state
                .root
                .cast(RootMsg::run(&exec))
                .map_err(ApiError::internal)?,
        }
    }
    let already_ended = exec.status.is_terminal();
    let finished = tokio::time::timeout(MAX_SYNC_WAIT, async {
        if already_ended {
            return;
        }
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

/// Executions one `Idempotency-Key` may start: a repeat after a failed or timed-out one
/// starts the next, so a caller's retries run the flow again.
pub const MAX_KEYED_ATTEMPTS: u32 = 100;

/// The execution a call runs: the one an earlier call with the same `key` started, unless
/// it failed or timed out, or else a new one (`new_record` given its id) stored `pending`.
async fn find_or_start(
    state: &AppState,
    space: &str,
    tenant: &str,
    flow_id: &str,
    key: Option<&str>,
    new_record: impl FnOnce(String) -> ExecutionRecord,
) -> Result<ExecutionRecord, ApiError> {
    let store_new = |exec: ExecutionRecord| async move {
        let mut w = WriteSet::new();
        w.put_execution(&exec)?;
        state.store.commit(w).await?;
        Ok::<_, ApiError>(exec)
    };
    let Some(key) = key else {
        return store_new(new_record(format!("exe_{}", uuid::Uuid::now_v7().simple()))).await;
    };
    // Two calls with one key must not both find nothing and both store: one lock per shard
    // of the key's first id (its last hex digit) serializes them.
    let first = keyed_execution_id(tenant, flow_id, key, 0);
    let shard = usize::from_str_radix(&first[first.len() - 1..], 16).unwrap_or(0);
    let _creating = state.keyed_executes[shard % state.keyed_executes.len()]
        .lock()
        .await;
    let mut attempt = 0;
    loop {
        let id = keyed_execution_id(tenant, flow_id, key, attempt);
        match state.store.execution(space, tenant, &id)? {
            None => return store_new(new_record(id)).await,
            Some(e)
                if matches!(
                    e.status,
                    ExecutionStatus::Failed | ExecutionStatus::TimedOut
                ) && attempt + 1 < MAX_KEYED_ATTEMPTS =>
            {
                attempt += 1;
            }
            Some(existing) => return Ok(existing),
        }
    }
}

/// Whether `exec` (found or stored for this call) ran with `input` (serialized:
/// `input_text`): compared as JSON values, so key order and white space do not matter.
fn same_input(exec: &ExecutionRecord, input: &Value, input_text: &str) -> bool {
    exec.trigger_json == input_text
        || serde_json::from_str::<Value>(&exec.trigger_json)
            .is_ok_and(|stored| same_json(&stored, input))
}

/// JSON equality (RFC 8259) where numbers compare by value: `1`, `1.0` and `1e0` are one
/// number. (`Value`'s own equality compares numbers as written, because exact numbers are
/// kept as text.) Integers compare exactly, whatever their size; other numbers as `f64`.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let text = (x.to_string(), y.to_string());
            text.0 == text.1
                || match (x.as_i128(), y.as_i128()) {
                    (Some(i), Some(j)) => i == j,
                    _ => x.as_f64().zip(y.as_f64()).is_some_and(|(f, g)| f == g),
                }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_json(v, w))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Longest `Idempotency-Key` accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// The request's `Idempotency-Key` (IETF draft "The Idempotency-Key HTTP Header Field"; the
/// connectors send one per step call), trimmed; none when absent or blank.
///
/// # Errors
/// 400 `BAD_REQUEST` for a key that is not visible ASCII or longer than
/// [`MAX_IDEMPOTENCY_KEY_BYTES`].
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?
        .trim();
    if key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(ApiError::bad_request(format!(
            "Idempotency-Key is {} bytes; at most {MAX_IDEMPOTENCY_KEY_BYTES} are accepted",
            key.len()
        )));
    }
    Ok((!key.is_empty()).then(|| key.to_owned()))
}

/// The running execution of this tenant, in this process, making this request for execution
/// `callee`, if it is one: an `x-sluice-call` value is a token in flight and not claimed for
/// another execution (see [`crate::own_calls`]). A copied `CDN-Loop` header alone does not
/// make a request one, nor does a call from another tenant. Every value of the header is
/// tried (a step may set its own beside the connector's).
fn own_caller(
    state: &AppState,
    headers: &HeaderMap,
    space: &str,
    tenant: &str,
    callee: &str,
) -> Option<own_calls::Caller> {
    tokens(headers)
        .filter_map(|token| state.own_calls.claim(token, callee))
        .find(|c| c.space == space && c.tenant == tenant)
}

/// For a call from one of the tenant's own executions, its place under the tenant's bound
/// on executions outside its slots (see `sluice_actors::runtime::slot_free`), taken before
/// anything is stored; none for other calls.
///
/// # Errors
/// 429 `RATE_LIMITED` with `Retry-After: 1` when the tenant has reached its bound.
fn reserve_slot_free(
    state: &AppState,
    headers: &HeaderMap,
    space: &str,
    tenant: &str,
) -> Result<Option<Reservation>, ApiError> {
    let from_own_execution = tokens(headers).any(|t| {
        state
            .own_calls
            .caller(t)
            .is_some_and(|c| c.space == space && c.tenant == tenant)
    });
    if !from_own_execution {
        return Ok(None);
    }
    state
        .slot_free_counts
        .try_reserve(space, tenant, state.slot_free_bound)
        .map(Some)
        .ok_or_else(|| {
            ApiError::rate_limited(
                format!(
                    "this tenant already runs {} executions that flows called synchronously \
                     (64 per concurrency slot); retry shortly",
                    state.slot_free_bound
                ),
                1,
            )
        })
}

/// The request's `x-sluice-call` values, trimmed.
fn tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(own_calls::HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
}

/// Tells the tenant, when dropped, that the synchronous caller of an execution stopped
/// waiting for it: its later runs (after a wait parks it) take a slot like any other.
struct CallerWaits {
    root: ractor::ActorRef<RootMsg>,
    exec: ExecutionRef,
}

impl Drop for CallerWaits {
    fn drop(&mut self) {
        let _ = self.root.cast(RootMsg::CallerGone(self.exec.clone()));
    }
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

#[cfg(test)]
mod tests {
    use super::same_json;
    use serde_json::Value;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("json")
    }

    #[test]
    fn numbers_compare_by_value_and_objects_ignore_key_order() {
        let same = [
            (
                r#"{"n": 1, "m": [2, {"x": 3}]}"#,
                r#"{"m": [2.0, {"x": 30e-1}], "n": 1e0}"#,
            ),
            ("0", "-0"),
            ("1.5", "1.50"),
            ("18446744073709551617", "18446744073709551617"),
        ];
        for (a, b) in same {
            assert!(same_json(&parse(a), &parse(b)), "{a} ~ {b}");
        }
        let different = [
            (r#"{"n": 1}"#, r#"{"n": 2}"#),
            (r#"{"n": 1}"#, r#"{"n": 1, "m": null}"#),
            ("[1, 2]", "[2, 1]"),
            ("1", r#""1""#),
            ("18446744073709551617", "18446744073709551616"),
        ];
        for (a, b) in different {
            assert!(!same_json(&parse(a), &parse(b)), "{a} !~ {b}");
        }
    }
}
