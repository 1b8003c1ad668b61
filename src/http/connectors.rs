//! The connector catalogue.
//!
//! - `GET /api/v1/connectors` → `{"connectors": [{"name", "title", "category", "authTypes",
//!   "baseUrl", "docs", "actions": <count>, "events": <count>}]}`.
//! - `POST /api/v1/connectors/discover` `{"connector": "shopify"}` → the connector's
//!   actions (method, path, entity, operation, pagination), webhook events and entities, each
//!   entity with its CDM coverage (`{"cdm", "keyFields", "mapped", "score"}`; `mapped` and
//!   `score` are `null` when `sluice_actors::cdm` has no mapping of that entity for the
//!   connector). Unknown → 404.

use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_actors::cdm::mapped_fields;
use sluice_actors::connectors::coverage::entity_coverage;
use sluice_actors::connectors::registry;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/connectors", get(list))
        .route("/api/v1/connectors/discover", post(discover))
}

async fn list(_caller: Caller) -> Json<Value> {
    let connectors: Vec<Value> = registry()
        .all()
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "title": c.title,
                "category": c.category,
                "authTypes": c.auth.types,
                "baseUrl": c.base_url,
                "docs": c.docs,
                "actions": c.actions.len(),
                "events": c.events.len(),
            })
        })
        .collect();
    Json(json!({ "connectors": connectors }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Discover {
    connector: String,
}

async fn discover(
    _caller: Caller,
    JsonBody(body): JsonBody<Discover>,
) -> Result<Json<Value>, ApiError> {
    let c = registry()
        .get(&body.connector)
        .ok_or_else(ApiError::not_found)?;
    let actions: Vec<Value> = c
        .actions
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "title": a.title,
                "method": a.method,
                "path": a.path,
                "entity": a.entity,
                "operation": a.operation,
                "pagination": a.pagination,
            })
        })
        .collect();
    let entities: Vec<Value> = c
        .entities
        .iter()
        .map(|e| {
            let coverage = e
                .cdm
                .as_deref()
                .and_then(|cdm| entity_coverage(cdm, mapped_fields(&c.name, cdm)));
            json!({
                "name": e.name,
                "cdm": e.cdm,
                "list": e.list,
                "create": e.create,
                "update": e.update,
                "idField": e.id_field,
                "updatedField": e.updated_field,
                "coverage": coverage,
            })
        })
        .collect();
    Ok(Json(json!({
        "connector": c.name,
        "title": c.title,
        "category": c.category,
        "auth": c.auth,
        "rateLimit": c.rate_limit,
        "actions": actions,
        "events": c.events,
        "webhook": c.webhook,
        "entities": entities,
    })))
}
