//! The Canonical Data Model's schemas.
//!
//! - `GET /api/v1/cdm/entities` → `{"entities": [{"name": "CDMContact", "fields": ["id", …],
//!   "schema": "/api/v1/cdm/entities/CDMContact"}, …]}`, in the reference's order.
//! - `GET /api/v1/cdm/entities/{name}` → the entity's JSON Schema (draft 2020-12); an
//!   unknown name is 404 with the reference's message.

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use sluice_actors::cdm::EntityKind;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/cdm/entities", get(list))
        .route("/api/v1/cdm/entities/{name}", get(show))
}

async fn list(_caller: Caller) -> Json<Value> {
    let entities: Vec<Value> = EntityKind::ALL
        .iter()
        .map(|k| {
            json!({
                "name": k.name(),
                "fields": k.fields(),
                "schema": format!("/api/v1/cdm/entities/{}", k.name()),
            })
        })
        .collect();
    Json(json!({"entities": entities}))
}

async fn show(_caller: Caller, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    EntityKind::from_name(&name)
        .map(|k| Json(k.schema()))
        .ok_or_else(ApiError::not_found)
}
