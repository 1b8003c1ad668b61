//! Webhook endpoint registrations of a tenant.
//!
//! `POST /api/v1/tenants/{tid}/webhooks` `{"connector": "shopify", "secret": "…"}` → 201
//! `{"id", "url", "connector", "scheme"}`; `GET` lists them and `GET …/{id}` shows one.
//! Secrets are never returned.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_actors::ids::now_ms;
use sluice_actors::pipeline::signature::Scheme;
use sluice_storage::{WebhookRecord, WriteSet};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use crate::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tid}/webhooks", post(create).get(list))
        .route("/api/v1/tenants/{tid}/webhooks/{id}", get(show))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWebhook {
    connector: String,
    secret: String,
}

fn view(w: &WebhookRecord) -> Value {
    let scheme = Scheme::for_connector(&w.connector).map(Scheme::name);
    json!({
        "id": w.id,
        "url": format!("/api/v1/clients/{}/webhooks/{}", w.space_id, w.id),
        "connector": w.connector,
        "scheme": scheme,
        "createdAt": rfc3339(w.created_at_ms),
    })
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    JsonBody(body): JsonBody<CreateWebhook>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let Some(scheme) = Scheme::for_connector(&body.connector) else {
        return Err(ApiError::bad_request(format!(
            "unknown connector {:?} (one of: shopify, github, stripe, slack, standard)",
            body.connector
        )));
    };
    if body.secret.is_empty() || body.secret.len() > 1024 {
        return Err(ApiError::bad_request("secret must be 1-1024 bytes"));
    }
    if scheme == Scheme::Standard {
        use base64::Engine as _;
        let raw = body.secret.strip_prefix("whsec_").unwrap_or(&body.secret);
        if base64::engine::general_purpose::STANDARD
            .decode(raw)
            .is_err()
        {
            return Err(ApiError::bad_request(
                "a Standard Webhooks secret is whsec_ followed by base64",
            ));
        }
    }
    let record = WebhookRecord {
        id: format!("wh_{}", uuid::Uuid::now_v7().simple()),
        space_id: caller.space().to_owned(),
        tenant_id: tenant,
        connector: body.connector,
        secret: body.secret,
        created_at_ms: now_ms(),
    };
    let mut w = WriteSet::new();
    w.put_webhook(&record)?;
    state.store.commit(w).await?;
    Ok((StatusCode::CREATED, Json(view(&record))))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let hooks: Vec<Value> = state
        .store
        .webhooks(caller.space(), &tenant)?
        .iter()
        .map(view)
        .collect();
    Ok(Json(json!({ "webhooks": hooks })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    match state.store.webhook(&id)? {
        Some(w) if w.space_id == caller.space() && w.tenant_id == tenant => Ok(Json(view(&w))),
        _ => Err(ApiError::not_found()),
    }
}
