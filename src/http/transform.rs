//! `POST /api/v1/transform/preview`: tries a mapping or one expression on a document and
//! saves nothing.
//!
//! - `{"document": {…}, "mapping": {"target.path": <source>, …}}` → `{"result": {…}}`, the
//!   mapped document (field mapping language: `actors/src/mapping/field_spec.rs`).
//! - `{"document": {…}, "expression": "$.items[*].sku"}` → `{"result": [ … ]}`: a `$`
//!   expression is RFC 9535 JSONPath and gives its nodelist as an array, in document order;
//!   any other string is a template rendered with the document as its context
//!   (`"{{ UPPER(customer.name) }}"`).
//!
//! Problems are 400 `BAD_REQUEST` with `errors`: every problem found, each
//! `{"field"?, "position"?, "message"}` (`position` is a byte offset in the expression).

use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sluice_actors::mapping::field_map::{FieldMap, MappingErrors};
use sluice_actors::mapping::field_spec::FieldError;
use sluice_actors::mapping::jsonpath::{Selector, is_jsonpath};
use sluice_actors::mapping::template::Template;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/transform/preview", post(preview))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Preview {
    #[serde(default)]
    document: Value,
    mapping: Option<Map<String, Value>>,
    expression: Option<String>,
}

async fn preview(
    _caller: Caller,
    JsonBody(body): JsonBody<Preview>,
) -> Result<Json<Value>, ApiError> {
    // On a blocking thread: a large document makes even bounded work take seconds, and on
    // an async worker it would hold up every other request (and the request timeout).
    let result = tokio::task::spawn_blocking(move || evaluate(body))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(json!({"result": result})))
}

/// The mapped document, or the expression's value, for `body`.
fn evaluate(body: Preview) -> Result<Value, ApiError> {
    let result = match (body.mapping, body.expression) {
        (Some(mapping), None) => FieldMap::compile(&mapping)
            .and_then(|m| m.apply(&body.document))
            .map_err(mapping_error)?,
        (None, Some(expr)) if is_jsonpath(&expr) => {
            let selector = Selector::parse(&expr).map_err(|e| {
                invalid(
                    &e.to_string(),
                    vec![json!({"position": e.position, "message": e.message})],
                )
            })?;
            Value::Array(
                selector
                    .nodes(&body.document)
                    .map_err(|m| invalid(&m, vec![json!({"position": 0, "message": m})]))?,
            )
        }
        (None, Some(expr)) => Template::parse(&expr)
            .and_then(|t| t.render(&body.document))
            .map_err(|e| {
                let fe = FieldError::template("expression", &e);
                invalid(&e.to_string(), vec![field_error_json(&fe, false)])
            })?,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of \"mapping\" or \"expression\"",
            ));
        }
    };
    Ok(result)
}

fn invalid(message: &str, errors: Vec<Value>) -> ApiError {
    ApiError::bad_request(message).with_errors(Value::Array(errors))
}

fn mapping_error(e: MappingErrors) -> ApiError {
    let errors = e.0.iter().map(|f| field_error_json(f, true)).collect();
    invalid(&e.to_string(), errors)
}

fn field_error_json(e: &FieldError, with_field: bool) -> Value {
    let mut v = json!({"message": e.message});
    if let Some(obj) = v.as_object_mut() {
        if with_field {
            obj.insert("field".into(), e.field.clone().into());
        }
        if let Some(p) = e.position {
            obj.insert("position".into(), p.into());
        }
    }
    v
}
