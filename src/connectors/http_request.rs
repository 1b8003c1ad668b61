//! The `http` connector's `request` action over one shared reqwest client (rustls).
//!
//! Input: `{"method": "POST", "url": "https://…", "headers": {"k": "v"}?, "body": <any>?}`.
//! A string body is sent as is; any other JSON value is sent as `application/json`.
//! Output: `{"status": 200, "headers": {…}, "body": <JSON if the answer is JSON, else text>}`.
//! A non-2xx answer fails the step with the answer under `datasourceDebug`; 408, 429 and 5xx
//! (and timeouts and connection errors) are retryable, honouring `Retry-After` in seconds.
//! Every call carries `Idempotency-Key` (stable per execution and step). Redirects are
//! followed at most 5 times; answers larger than 10 MiB are refused.

use std::time::Duration;

use reqwest::{Method, header::HeaderMap};
use serde_json::{Map, Value, json};
use sluice_actors::connector::{ActionCall, ActionError, ActionInvoker};

/// Largest answer body read from a provider, bytes.
const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;

/// Calls connector actions over HTTP.
pub struct HttpInvoker {
    client: reqwest::Client,
}

impl HttpInvoker {
    /// Builds the shared client.
    ///
    /// # Errors
    /// When the TLS backend cannot initialise.
    pub fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(5))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }
}

fn fail(message: String, retryable: bool) -> ActionError {
    ActionError {
        message,
        retryable,
        retry_after: None,
        status: None,
        debug: None,
    }
}

#[async_trait::async_trait]
impl ActionInvoker for HttpInvoker {
    async fn invoke(&self, call: ActionCall) -> Result<Value, ActionError> {
        if (call.connector.as_str(), call.action.as_str()) != ("http", "request") {
            return Err(fail(
                format!(
                    "connector action {}.{} is not available",
                    call.connector, call.action
                ),
                false,
            ));
        }
        let input = &call.input;
        let method_name = input.get("method").and_then(Value::as_str).unwrap_or("GET");
        let method = Method::from_bytes(method_name.to_ascii_uppercase().as_bytes())
            .map_err(|_| fail(format!("invalid HTTP method {method_name:?}"), false))?;
        let url = input
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("input.url is required".into(), false))?;
        let url = reqwest::Url::parse(url)
            .map_err(|e| fail(format!("invalid url {url:?}: {e}"), false))?;
        let mut req = self
            .client
            .request(method, url)
            .timeout(call.timeout)
            .header("idempotency-key", &call.idempotency_key);
        if let Some(headers) = input.get("headers").and_then(Value::as_object) {
            for (k, v) in headers {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                req = req.header(k.as_str(), v);
            }
        }
        match input.get("body") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => req = req.body(s.clone()),
            Some(v) => req = req.json(v),
        }
        let mut resp = req.send().await.map_err(|e| {
            fail(
                format!("request failed: {e}"),
                e.is_timeout() || e.is_connect() || e.is_request(),
            )
        })?;
        let status = resp.status();
        let headers = header_map(resp.headers());
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| fail(format!("reading the answer failed: {e}"), true))?
        {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(fail(
                    format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
                    false,
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = serde_json::from_slice::<Value>(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status.is_success() {
            return Ok(json!({"status": status.as_u16(), "headers": headers, "body": body}));
        }
        let code = status.as_u16();
        Err(ActionError {
            message: format!("the server answered {status}"),
            retryable: code == 408 || code == 429 || status.is_server_error(),
            retry_after,
            status: Some(code),
            debug: Some(body),
        })
    }
}

fn header_map(h: &HeaderMap) -> Value {
    let mut out = Map::new();
    for (k, v) in h {
        if let Ok(v) = v.to_str() {
            out.insert(k.as_str().to_owned(), Value::String(v.to_owned()));
        }
    }
    Value::Object(out)
}
