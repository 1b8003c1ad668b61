//! Request extractors that reject in the API's own error format.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest JSON body accepted on management endpoints, bytes.
pub const MAX_API_BODY: usize = 2 * 1024 * 1024;

/// A JSON object body (every management resource is written as one); a malformed body, or
/// one whose top level is not an object, is a 400 naming the problem, an oversized one a 413.
///
/// The object check comes first because serde's derived structs also accept a JSON array of
/// their fields in order, which would turn `["acme"]` into a tenant.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_limited(req, MAX_API_BODY).await?;
        // A leading UTF-8 byte order mark is ignored, as on webhook bodies.
        let json = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        let first = json.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            return Err(ApiError::bad_request(
                "invalid JSON body: expected a JSON object",
            ));
        }
        parse(json).map(JsonBody)
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Query parameters; a malformed query string is a 400 in the API's error format.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }
}

/// Decodes a list endpoint's `cursor` parameter (the hex of the previous page's
/// `nextCursor`).
///
/// # Errors
/// 400 when it is empty or not hex.
pub fn page_cursor(cursor: Option<&str>) -> Result<Option<Vec<u8>>, ApiError> {
    cursor
        .map(|c| match hex::decode(c) {
            // An empty cursor would read as an empty last page: refuse it like the DLQ does.
            Ok(bytes) if !bytes.is_empty() => Ok(bytes),
            _ => Err(ApiError::bad_request("invalid cursor")),
        })
        .transpose()
}

/// Bytes of an oversized body read and discarded after answering 413, so the client sees the
/// answer instead of a reset connection (a "lingering close").
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;
/// Time spent draining an oversized body at most.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads a request body, refusing more than `limit` bytes (413) without keeping more than
/// `limit` bytes in memory. The refusal is answered as soon as the limit is passed (or at once
/// when the declared length is over it); the rest of the body is then read and discarded in
/// the background, bounded by [`DRAIN_LIMIT`] and [`DRAIN_TIME`], so that the connection is not
/// reset under the client before it reads the answer.
///
/// # Errors
/// 413 when over the limit; 400 when the body cannot be read.
pub async fn read_limited(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = req.into_body();
    if declared.is_some_and(|len| len > limit as u64) {
        if declared.is_some_and(|len| len <= DRAIN_LIMIT as u64) {
            tokio::spawn(drain(body, 0));
        }
        return Err(ApiError::too_large(limit));
    }
    let mut buf = Vec::with_capacity(declared.map_or(8 * 1024, |l| l as usize));
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("cannot read body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limit {
            tokio::spawn(drain(body, buf.len() + data.len()));
            return Err(ApiError::too_large(limit));
        }
        buf.extend_from_slice(&data);
    }
    Ok(Bytes::from(buf))
}

/// Reads and discards the rest of `body`, up to [`DRAIN_LIMIT`] bytes in all and
/// [`DRAIN_TIME`].
async fn drain(mut body: axum::body::Body, already: usize) {
    let mut seen = already;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while seen <= DRAIN_LIMIT {
            match http_body_util::BodyExt::frame(&mut body).await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    })
    .await;
}
