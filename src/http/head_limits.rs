//! Limits on a request's head (target and header fields), answered in the API's error shape.
//!
//! hyper enforces its own, larger limits while parsing and answers past them before any of
//! our code runs: over HTTP/1.1 a bare 414 or 431 with no body (a target of 65,534 bytes,
//! the connection's `max_headers`, a read buffer of about 400 KiB), over HTTP/2 a refused
//! stream (the header list size the accept loop sets). These tighter limits sit under
//! hyper's, so that an oversized head anywhere below them gets `URI_TOO_LONG` or
//! `HEADERS_TOO_LARGE` as JSON, like every other error. Nothing of a refused request is read
//! past its head or stored.

use axum::extract::Request;
use axum::http::Version;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Longest request target, bytes: path and query, plus scheme and authority when the target
/// is in absolute form (RFC 9112 §3.2.2). Webhook and API paths are far shorter; 8 KiB is
/// the common proxy default (nginx `large_client_header_buffers`).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Most header fields in one request (hyper's own default, which the accept loop raises so
/// that this check is reached first).
pub const MAX_HEADER_FIELDS: usize = 100;

/// Most bytes in all header names and values together.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Header fields hyper is allowed to parse: above [`MAX_HEADER_FIELDS`], so that a request
/// between the two limits reaches [`check`] and gets a JSON answer.
pub const HYPER_MAX_HEADERS: usize = 4 * MAX_HEADER_FIELDS;

/// HTTP/2 header list size hyper accepts (RFC 9113 §6.5.2 `SETTINGS_MAX_HEADER_LIST_SIZE`,
/// which counts the `:path` pseudo-header and 32 bytes per field): above both of our byte
/// limits, so that an HTTP/2 request between them gets a JSON answer too. hyper's default is
/// 16 KiB.
pub const HYPER_MAX_HEADER_LIST_BYTES: u32 = 4 * MAX_HEADER_BYTES as u32;

/// Length of the request target as it was sent. Over HTTP/1.x that is the request line's
/// target: scheme and authority when in absolute form (RFC 9112 §3.2.2), plus path and query.
/// Over HTTP/2 and later the target is the `:path` pseudo-header alone (RFC 9113 §8.3.1);
/// hyper fills the URI's scheme and authority from `:scheme` and `:authority`, which are
/// separate fields and count toward the header limits instead.
fn target_len(version: Version, uri: &axum::http::Uri) -> usize {
    let path = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if version >= Version::HTTP_2 {
        return path;
    }
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + "://".len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    scheme + authority + path
}

/// Middleware: refuses a request whose head is over the limits above with 414 or 431, before
/// routing and before its body is read.
pub async fn check(request: Request, next: Next) -> Response {
    if target_len(request.version(), request.uri()) > MAX_URI_BYTES {
        return ApiError::uri_too_long(MAX_URI_BYTES).into_response();
    }
    let headers = request.headers();
    if headers.len() > MAX_HEADER_FIELDS {
        return ApiError::headers_too_large(format!(
            "request has {} header fields; the limit is {MAX_HEADER_FIELDS}",
            headers.len()
        ))
        .into_response();
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return ApiError::headers_too_large(format!(
            "request header fields hold {bytes} bytes; the limit is {MAX_HEADER_BYTES}"
        ))
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/x", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(check))
    }

    async fn answer(request: axum::http::Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = app().oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    #[tokio::test]
    async fn target_at_the_limit_passes_and_one_byte_over_is_414() {
        let at = format!("/x?q={}", "a".repeat(MAX_URI_BYTES - 5));
        let request = axum::http::Request::get(at)
            .body(Body::empty())
            .expect("request");
        assert_eq!(answer(request).await.0, StatusCode::OK);

        let over = format!("/x?q={}", "a".repeat(MAX_URI_BYTES - 4));
        let request = axum::http::Request::get(over)
            .body(Body::empty())
            .expect("request");
        let (status, body) = answer(request).await;
        assert_eq!(status, StatusCode::URI_TOO_LONG);
        assert_eq!(body["code"], "URI_TOO_LONG");
        assert_eq!(body["statusCode"], 414);
    }

    #[tokio::test]
    async fn an_absolute_form_target_counts_its_authority() {
        let host = format!("{}.example", "h".repeat(MAX_URI_BYTES));
        let request = axum::http::Request::get(format!("http://{host}/x"))
            .body(Body::empty())
            .expect("request");
        let (status, body) = answer(request).await;
        assert_eq!(status, StatusCode::URI_TOO_LONG);
        assert_eq!(body["code"], "URI_TOO_LONG");
        let short = axum::http::Request::get("http://h.example/x")
            .body(Body::empty())
            .expect("request");
        assert_eq!(answer(short).await.0, StatusCode::OK);
    }

    /// Over HTTP/2 the URI always carries the `:scheme` and `:authority` pseudo-headers: the
    /// limit applies to `:path` alone, as it does to an HTTP/1.1 origin-form target.
    #[tokio::test]
    async fn an_http2_target_counts_its_path_only() {
        let at = format!("http://h.example/x?q={}", "a".repeat(MAX_URI_BYTES - 5));
        let request = axum::http::Request::get(&at)
            .version(Version::HTTP_2)
            .body(Body::empty())
            .expect("request");
        assert_eq!(answer(request).await.0, StatusCode::OK);
        let over = format!("http://h.example/x?q={}", "a".repeat(MAX_URI_BYTES - 4));
        let request = axum::http::Request::get(over)
            .version(Version::HTTP_2)
            .body(Body::empty())
            .expect("request");
        assert_eq!(answer(request).await.0, StatusCode::URI_TOO_LONG);
    }

    #[tokio::test]
    async fn too_many_fields_is_431() {
        let mut request = axum::http::Request::get("/x");
        for i in 0..MAX_HEADER_FIELDS {
            request = request.header(format!("x-h{i}"), "v");
        }
        let ok = request.body(Body::empty()).expect("request");
        assert_eq!(answer(ok).await.0, StatusCode::OK);

        let mut request = axum::http::Request::get("/x");
        for i in 0..=MAX_HEADER_FIELDS {
            request = request.header(format!("x-h{i}"), "v");
        }
        let (status, body) = answer(request.body(Body::empty()).expect("request")).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(body["code"], "HEADERS_TOO_LARGE");
    }

    #[tokio::test]
    async fn too_many_header_bytes_is_431() {
        let request = axum::http::Request::get("/x")
            .header("x-big", "v".repeat(MAX_HEADER_BYTES))
            .body(Body::empty())
            .expect("request");
        let (status, body) = answer(request).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(body["statusCode"], 431);
    }
}
