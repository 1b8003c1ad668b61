//! One HTTP exchange with a provider: send, read at most [`MAX_RESPONSE_BYTES`], and classify
//! the outcome — 2xx is an answer; 408, 429 and 5xx except 508 Loop Detected (and timeouts
//! and connection failures) are retryable, honouring `Retry-After` in seconds; 401 means the credential no longer
//! works (`auth`); any non-2xx carries the provider's body for `datasourceDebug`.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Map, Value};
use sluice_actors::connector::ActionError;

/// Largest answer body read from a provider, bytes.
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;

/// A provider's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body: JSON when it parses as JSON, else text.
    pub body: Value,
}

impl Answer {
    /// Headers as a JSON object (values that are not text are left out).
    pub fn headers_json(&self) -> Value {
        let mut out = Map::new();
        for (k, v) in &self.headers {
            if let Ok(v) = v.to_str() {
                out.insert(k.as_str().to_owned(), Value::String(v.to_owned()));
            }
        }
        Value::Object(out)
    }

    /// A header's text value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `req` and reads the answer.
///
/// # Errors
/// [`ActionError`] for transport failures, oversized answers and non-2xx statuses.
pub async fn send(req: reqwest::RequestBuilder) -> Result<Answer, ActionError> {
    let mut resp = req.send().await.map_err(|e| {
        let retryable = e.is_timeout() || e.is_connect();
        ActionError::new(format!("request failed: {}", error_chain(&e)), retryable)
    })?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ActionError::new(format!("reading the answer failed: {e}"), true))?
    {
        if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ActionError::new(
                format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
                false,
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let body = serde_json::from_slice::<Value>(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    let answer = Answer {
        status: status.as_u16(),
        headers,
        body,
    };
    if status.is_success() {
        return Ok(answer);
    }
    Err(failure(answer))
}

/// The error for a non-2xx answer.
pub fn failure(answer: Answer) -> ActionError {
    let code = answer.status;
    ActionError {
        message: format!("the provider answered {code}"),
        // 508 Loop Detected (RFC 5842) is final: a Sluice refusing a call that came round too
        // often (see `sluice_actors::pipeline::hops`) refuses it again.
        retryable: code == 408 || code == 429 || (code >= 500 && code != 508),
        retry_after: retry_after(&answer.headers),
        status: Some(code),
        debug: Some(answer.body),
        auth: code == 401,
    }
}

/// `Retry-After` as a delay (the delta-seconds form; HTTP dates are ignored).
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    h.get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The error and its sources, so "error sending request" says what actually failed (a
/// policy refusal from the resolver, a refused connection…).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Shopify's leaky-bucket header `X-Shopify-Shop-Api-Call-Limit: 39/40` as (used, size).
pub fn bucket_use(value: &str) -> Option<(u32, u32)> {
    let (used, size) = value.split_once('/')?;
    Some((used.trim().parse().ok()?, size.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_and_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().expect("value"));
        let e = failure(Answer {
            status: 429,
            headers: h,
            body: Value::Null,
        });
        assert!(e.retryable);
        assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
        let e = failure(Answer {
            status: 401,
            headers: HeaderMap::new(),
            body: Value::Null,
        });
        assert!(e.auth && !e.retryable);
        let e = failure(Answer {
            status: 404,
            headers: HeaderMap::new(),
            body: Value::Null,
        });
        assert!(!e.retryable && !e.auth);
        for (code, retryable) in [(500, true), (503, true), (508, false)] {
            let e = failure(Answer {
                status: code,
                headers: HeaderMap::new(),
                body: Value::Null,
            });
            assert_eq!(e.retryable, retryable, "{code}");
        }
        assert_eq!(bucket_use("39/40"), Some((39, 40)));
        assert_eq!(bucket_use("x"), None);
    }
}
