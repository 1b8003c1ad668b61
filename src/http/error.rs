//! API errors in the reference's body shape:
//! `{"code": "NOT_FOUND", "statusCode": 404, "message": "…", "step"?: "…", "errors"?: […]}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The message the reference gives for every 404.
pub const NOT_FOUND_MESSAGE: &str = "The resource does not exist, or you do not have access.";

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    step: Option<String>,
    errors: Option<serde_json::Value>,
    /// Seconds for a `Retry-After` header (RFC 9110 §10.2.3).
    retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            step: None,
            errors: None,
            retry_after_secs: None,
        }
    }

    /// 400 `BAD_REQUEST`: malformed body or parameters.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// 400 `INVALID_FLOW` naming the offending step.
    pub fn invalid_flow(message: impl Into<String>, step: Option<String>) -> Self {
        Self {
            step,
            ..Self::new(StatusCode::BAD_REQUEST, "INVALID_FLOW", message)
        }
    }

    /// 401 `UNAUTHORIZED`: missing or invalid credentials or signature.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// 403 `FORBIDDEN`: authenticated, but not for this space or tenant.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// 404 `NOT_FOUND` with the reference's message.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", NOT_FOUND_MESSAGE)
    }

    /// 405 `METHOD_NOT_ALLOWED`: the path exists, the method does not.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "This method is not allowed on this resource.",
        )
    }

    /// 408 `TIMED_OUT`: the request took longer than the server allows.
    pub fn timed_out() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "TIMED_OUT",
            "The request took too long and was abandoned.",
        )
    }

    /// 409 `CONFLICT`: the resource already exists.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// 422 `IDEMPOTENCY_KEY_REUSED`: the request's `Idempotency-Key` was first sent with a
    /// different payload (IETF draft "The Idempotency-Key HTTP Header Field", §2.7); nothing
    /// was started. Send a new key for a new request.
    pub fn idempotency_key_reused(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_REUSED",
            message,
        )
    }

    /// 413 `PAYLOAD_TOO_LARGE`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 414 `URI_TOO_LONG`: the request target (path and query) is longer than `limit` bytes.
    pub fn uri_too_long(limit: usize) -> Self {
        Self::new(
            StatusCode::URI_TOO_LONG,
            "URI_TOO_LONG",
            format!("request target is longer than the limit of {limit} bytes"),
        )
    }

    /// 431 `HEADERS_TOO_LARGE` (RFC 6585 §5): too many header fields, or too many bytes in
    /// them; `what` says which limit was passed.
    pub fn headers_too_large(what: String) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HEADERS_TOO_LARGE",
            what,
        )
    }

    /// 508 `LOOP_DETECTED` (RFC 5842 §7.2): the request's `CDN-Loop` header puts it too deep
    /// in, or too late in, a chain of calls Sluice made to itself (see
    /// `sluice_actors::pipeline::hops`); nothing of it was stored. Not worth retrying.
    pub fn loop_detected(message: String) -> Self {
        Self::new(StatusCode::LOOP_DETECTED, "LOOP_DETECTED", message)
    }

    /// 429 `RATE_LIMITED` with `Retry-After: retry_after_secs`: too many requests of this
    /// kind at once; the same request later may succeed.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", message)
        }
    }

    /// 503 `STORAGE_UNAVAILABLE`: writes are refused (disk full or failing); nothing of the
    /// request was stored. Retry later.
    pub fn storage_unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "write refused: storage unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "STORAGE_UNAVAILABLE",
            "Storage is unavailable for writes; nothing was stored. Retry later.",
        )
    }

    /// 500 `INTERNAL_ERROR`; the cause is logged, not returned.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "Unexpected error; see the server log.",
        )
    }

    /// The same error listing every individual problem under `errors` (an array of
    /// `{"field"?, "position"?, "message"}` objects).
    pub fn with_errors(self, errors: serde_json::Value) -> Self {
        Self {
            errors: Some(errors),
            ..self
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<sluice_storage::StorageError> for ApiError {
    fn from(e: sluice_storage::StorageError) -> Self {
        match e {
            sluice_storage::StorageError::Unavailable(_) => Self::storage_unavailable(&e),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "code": self.code,
            "statusCode": self.status.as_u16(),
            "message": self.message,
        });
        if let Some(obj) = body.as_object_mut() {
            if let Some(step) = self.step {
                obj.insert("step".into(), step.into());
            }
            if let Some(errors) = self.errors {
                obj.insert("errors".into(), errors);
            }
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
