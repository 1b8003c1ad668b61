//! Webhook receipt: `POST /api/v1/clients/{space_id}/webhooks/{webhook_id}`.
//!
//! No API key: the provider proves itself with the signature. In order:
//! 1. find the registration (404 if unknown or in another space);
//! 2. read the body, refusing more than the configured limit (413) without buffering past it;
//! 3. verify the signature over the raw bytes, in constant time, with the timestamp window
//!    where the scheme has one (401 naming the failed check); during a secret rotation's
//!    overlap the previous secret verifies too;
//! 4. refuse a request too deep in, or past the budget of, a chain of calls Sluice made to
//!    itself (its `CDN-Loop` header, see `sluice_actors::pipeline::hops`) with 508
//!    `LOOP_DETECTED`;
//! 5. compute the idempotency key from the provider's delivery id (or the body's SHA-256);
//! 6. write the dedup record and the outbox entry in one durable group commit;
//! 7. answer `202 {"eventId", "duplicate": false}` — or `200 {"eventId": <first>,
//!    "duplicate": true}` for a repeat. The body is not parsed here: that happens when the
//!    event is normalized, after the acknowledgement.
//!
//! Nothing is written for a refused request.

use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use sluice_actors::ids::now_ms;
use sluice_actors::pipeline::Headers;
use sluice_actors::pipeline::idempotency::{delivery_id, idempotency_key};
use sluice_actors::pipeline::signature::{self, Scheme};
use sluice_actors::pipeline::submit::P2_EVENT;
use sluice_storage::{IngestOutcome, OutboxEntry};

use super::AppState;
use super::error::ApiError;
use super::extract::read_limited;
use super::lineage::{admit, lineage_of};
use crate::time::now_secs;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/clients/{space_id}/webhooks/{webhook_id}",
        post(receive),
    )
}

async fn receive(
    State(state): State<AppState>,
    Path((space_id, webhook_id)): Path<(String, String)>,
    request: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let clock = Instant::now();
    let outcome = receive_inner(&state, &space_id, &webhook_id, request).await;
    let (connector, label) = match &outcome {
        Ok((connector, s, _)) if *s == StatusCode::ACCEPTED => (connector.clone(), "accepted"),
        Ok((connector, _, _)) => (connector.clone(), "duplicate"),
        Err((connector, e)) => (
            connector.clone(),
            match e.status() {
                StatusCode::UNAUTHORIZED => "unauthorized",
                StatusCode::PAYLOAD_TOO_LARGE => "too_large",
                StatusCode::NOT_FOUND => "not_found",
                StatusCode::LOOP_DETECTED => "loop",
                _ => "error",
            },
        ),
    };
    metrics::counter!("sluice_webhooks_received_total", "connector" => connector, "outcome" => label)
        .increment(1);
    match outcome {
        Ok((_, status, body)) => {
            metrics::histogram!("sluice_webhook_ack_seconds").record(clock.elapsed().as_secs_f64());
            Ok((status, Json(body)))
        }
        Err((_, e)) => Err(e),
    }
}

type Outcome = Result<(String, StatusCode, Value), (String, ApiError)>;

async fn receive_inner(
    state: &AppState,
    space_id: &str,
    webhook_id: &str,
    request: Request,
) -> Outcome {
    let unknown = || "unknown".to_owned();
    let hook = match state.store.webhook(webhook_id) {
        Ok(Some(h)) if h.space_id == space_id => h,
        Ok(_) => return Err((unknown(), ApiError::not_found())),
        Err(e) => return Err((unknown(), e.into())),
    };
    let connector = hook.connector.clone();
    let fail = |e: ApiError| (connector.clone(), e);
    let scheme = Scheme::for_connector(&hook.connector)
        .ok_or_else(|| fail(ApiError::internal("webhook has an unknown scheme")))?;
    let lineage = lineage_of(request.headers());
    let headers = Headers::new(request.headers().iter().filter_map(|(k, v)| {
        v.to_str()
            .ok()
            .map(|v| (k.as_str().to_owned(), v.to_owned()))
    }));
    let body = read_limited(request, state.max_webhook_bytes)
        .await
        .map_err(fail)?;
    let now = now_secs();
    if let Err(e) = signature::verify(scheme, &hook.secret, &headers, &body, now) {
        // During a rotation's overlap the previous secret still verifies.
        let previous_ok = match (&hook.previous_secret, hook.previous_secret_expires_at_ms) {
            (Some(old), Some(until)) if now_ms() < until => {
                signature::verify(scheme, old, &headers, &body, now).is_ok()
            }
            _ => false,
        };
        if !previous_ok {
            return Err(fail(ApiError::unauthorized(e.to_string())));
        }
    }
    admit(state, &hook.tenant_id, &lineage).map_err(fail)?;

    let delivery = delivery_id(&hook.connector, &headers, &body);
    let key = idempotency_key(&hook.tenant_id, &hook.connector, &delivery);
    let entry = OutboxEntry {
        seq: 0,
        event_id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        space_id: hook.space_id.clone(),
        tenant_id: hook.tenant_id.clone(),
        webhook_id: hook.id.clone(),
        connector: hook.connector.clone(),
        headers: headers
            .retained()
            .into_iter()
            .chain(lineage.stored_header())
            .collect(),
        body: body.to_vec(),
        body_in_blob: false,
        received_at_ms: now_ms(),
        priority: P2_EVENT,
        idempotency_key: hex::encode(key),
        attempt: 1,
        replay_of: None,
    };
    match state.store.ingest(key, entry).await {
        Ok(IngestOutcome::Accepted { event_id, .. }) => Ok((
            connector,
            StatusCode::ACCEPTED,
            json!({"eventId": event_id, "duplicate": false}),
        )),
        Ok(IngestOutcome::Duplicate { event_id }) => Ok((
            connector,
            StatusCode::OK,
            json!({"eventId": event_id, "duplicate": true}),
        )),
        Err(e) => Err(fail(e.into())),
    }
}
