//! [`ConnectorInvoker`]: the one executor of every connector action, over one shared
//! reqwest client (rustls).
//!
//! For each call: find the action in the registry, open the step's credential (it must
//! belong to the call's tenant and be for the call's connector), refresh an OAuth2 token
//! that is expired or about to, wait for the integration's rate limit, then
//! - definition-driven actions: build the request from the definition, send it, follow
//!   pagination to the last page (or `input.maxPages`, default 100, at most 1000), and answer
//!   `{"status", "body" (last page), "data" (the records of every page, or the selected
//!   result), "id" (the affected record's id, when the definition says where it is),
//!   "pages"}`;
//! - `http.request`: `{"method", "url", "headers"?, "body"?}` → `{"status", "headers",
//!   "body"}` (a string body is sent as is, any other JSON as `application/json`);
//! - `email.send`: see [`super::email`].
//!
//! Inside one call a 429 is waited out (its `Retry-After`, default 1 s, at most 30 s, within
//! the call's time limit) up to 3 times so pages already read are not lost; a 401 with an
//! OAuth2 credential refreshes the token once and repeats the request. Everything else is
//! returned to the engine, which owns retries. Every request carries `Idempotency-Key`, and
//! every HTTP one `CDN-Loop: sluice; hops=N; correlation=ID`, one hop more than the calling
//! execution's lineage (loop detection, see `sluice_actors::pipeline::hops`), and a call an
//! execution makes also `x-sluice-call` with a token valid while the call is in flight (see
//! [`crate::own_calls`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use serde_json::{Map, Value, json};
use sluice_actors::connector::{ActionCall, ActionError, ActionInvoker};
use sluice_actors::connectors::def::{ActionDef, ConnectorDef, Pagination, Transport};
use sluice_actors::connectors::paging::{NextPage, PageSeen, next_page};
use sluice_actors::connectors::registry;
use sluice_actors::connectors::request::{self, Body};
use sluice_actors::connectors::select::{id_text, select};
use sluice_actors::pipeline::hops;
use sluice_storage::Store;

use super::credentials::{self, Auth, Opened};
use super::exchange::{self, Answer};
use super::limits::Limits;
use super::net_policy::{NetPolicy, PolicyResolver};
use super::vault::Vault;
use super::{auth, email, oauth};
use crate::own_calls::{self, Caller, OwnCalls};

/// Most 429s waited out inside one call.
const MAX_429_WAITS: u32 = 3;
/// Longest single `Retry-After` waited inside a call.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Redirects followed per request.
const MAX_REDIRECTS: usize = 5;
/// Default and largest page counts.
const DEFAULT_MAX_PAGES: u64 = 100;
const MAX_PAGES: u64 = 1000;

/// `req` with the headers every call carries: `Idempotency-Key` (unless the step set its own,
/// which wins: one value, never two), `CDN-Loop` (appended after any the step set, RFC
/// 8586), and for an execution's call its `x-sluice-call` token (replacing any the step set).
///
/// # Errors
/// A request that cannot be built (a header or URL the step gave is invalid); not retryable.
fn with_call_headers(
    req: reqwest::RequestBuilder,
    call: &ActionCall,
    in_flight: Option<&own_calls::InFlight>,
) -> Result<reqwest::RequestBuilder, ActionError> {
    let (client, request) = req.build_split();
    let mut request = request.map_err(|e| config_error(format!("invalid request: {e}")))?;
    let headers = request.headers_mut();
    let value = |v: &str| {
        reqwest::header::HeaderValue::from_str(v)
            .map_err(|e| config_error(format!("invalid header value {v:?}: {e}")))
    };
    if !headers.contains_key("idempotency-key") {
        headers.insert("idempotency-key", value(&call.idempotency_key)?);
    }
    headers.append(hops::HEADER, value(&call.lineage.outgoing_value())?);
    match in_flight {
        Some(f) => {
            headers.insert(own_calls::HEADER, value(f.token())?);
        }
        None => {
            headers.remove(own_calls::HEADER);
        }
    }
    Ok(reqwest::RequestBuilder::from_parts(client, request))
}

/// Calls connector actions.
pub struct ConnectorInvoker {
    client: reqwest::Client,
    store: Store,
    vault: Arc<Vault>,
    policy: NetPolicy,
    limits: Limits,
    refresh_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    own_calls: OwnCalls,
}

fn config_error(message: impl Into<String>) -> ActionError {
    ActionError::new(message, false)
}

impl ConnectorInvoker {
    /// Builds the shared client under `policy`; executions' calls are registered in
    /// `own_calls`.
    ///
    /// # Errors
    /// When the TLS backend cannot initialise.
    pub fn new(
        store: Store,
        vault: Arc<Vault>,
        policy: NetPolicy,
        own_calls: OwnCalls,
    ) -> anyhow::Result<Self> {
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if let Err(e) = policy.check_url(attempt.url()) {
                attempt.error(e)
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .redirect(redirect)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")));
        if !policy.allow_private {
            builder = builder.dns_resolver(Arc::new(PolicyResolver(policy)));
        }
        let limits = Limits::new(
            registry()
                .all()
                .iter()
                .filter_map(|d| d.rate_limit.as_ref().map(|r| (d.name.as_str(), r))),
        );
        Ok(Self {
            client: builder.build()?,
            store,
            vault,
            policy,
            limits,
            refresh_locks: Mutex::default(),
            own_calls,
        })
    }

    /// The shared HTTP client, under the network policy (for OAuth2 code exchanges).
    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    fn open_credential(
        &self,
        call: &ActionCall,
        def: &ConnectorDef,
    ) -> Result<Option<Opened>, ActionError> {
        let Some(id) = &call.credential else {
            if def.auth.types.iter().any(|t| t == "none") {
                return Ok(None);
            }
            return Err(config_error(format!(
                "connector {} needs a credential; name one in the step's \"credential\"",
                def.name
            )));
        };
        let opened = credentials::open(&self.vault, &self.store, &call.space, &call.tenant, id)
            .map_err(|e| config_error(e.to_string()))?;
        if opened.record.connector != def.name {
            return Err(config_error(format!(
                "credential {id:?} is for {}, not {}",
                opened.record.connector, def.name
            )));
        }
        Ok(Some(opened))
    }

    /// Refreshes the OAuth2 token when due (or when `force`), once per credential at a time.
    async fn ensure_token(
        &self,
        call: &ActionCall,
        def: &ConnectorDef,
        opened: &mut Opened,
        force_stale: Option<&str>,
    ) -> Result<(), ActionError> {
        let Auth::OAuth2(secret) = &opened.auth else {
            return Ok(());
        };
        let now = now_secs();
        if force_stale.is_none() && !oauth::needs_refresh(secret, now) {
            return Ok(());
        }
        let lock = {
            let mut locks = self
                .refresh_locks
                .lock()
                .map_err(|_| config_error("refresh lock poisoned"))?;
            locks
                .entry(format!(
                    "{}/{}/{}",
                    call.space, call.tenant, opened.record.id
                ))
                .or_default()
                .clone()
        };
        let _guard = lock.lock().await;
        // Another call may have refreshed while this one waited.
        let latest = credentials::open(
            &self.vault,
            &self.store,
            &call.space,
            &call.tenant,
            &opened.record.id,
        )
        .map_err(|e| config_error(e.to_string()))?;
        if let Auth::OAuth2(s) = &latest.auth {
            let rotated = force_stale.is_some_and(|stale| s.access_token.as_deref() != Some(stale));
            if rotated || (force_stale.is_none() && !oauth::needs_refresh(s, now)) {
                *opened = latest;
                return Ok(());
            }
        }
        *opened = latest;
        let Auth::OAuth2(secret) = &opened.auth else {
            return Ok(());
        };
        let default_url = def
            .auth
            .oauth2
            .as_ref()
            .map(|o| o.token_url.clone())
            .map(|u| fill_params(&u, &opened.params));
        let next = oauth::refresh(&self.client, secret, default_url.as_deref(), now).await?;
        credentials::save_tokens(&self.vault, &self.store, &call.space, opened, next)
            .await
            .map_err(|e| ActionError::new(format!("saving refreshed tokens: {e}"), true))?;
        metrics::counter!("sluice_oauth_refreshes_total", "connector" => def.name.clone())
            .increment(1);
        Ok(())
    }

    /// Sends one logical request: rate limit, auth, 429 waits, one refresh on 401.
    async fn exchange(
        &self,
        call: &ActionCall,
        def: &ConnectorDef,
        opened: &mut Option<Opened>,
        deadline: Instant,
        build: &(dyn Fn() -> reqwest::RequestBuilder + Send + Sync),
    ) -> Result<Answer, ActionError> {
        let key = format!(
            "{}/{}",
            call.tenant,
            call.credential.as_deref().unwrap_or("-")
        );
        let mut waits = 0;
        let mut refreshed = false;
        let in_flight = call.execution_id.as_ref().map(|id| {
            self.own_calls.begin(Caller {
                space: call.space.clone(),
                tenant: call.tenant.clone(),
                execution_id: id.clone(),
            })
        });
        loop {
            self.limits.acquire(&def.name, &key).await;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ActionError::new("the call ran out of time", true));
            }
            let req = with_call_headers(build().timeout(remaining), call, in_flight.as_ref())?;
            let req = auth::apply(req, def, opened.as_ref().map(|o| &o.auth));
            let result = exchange::send(req).await;
            if let (Some(rl), Ok(a)) = (&def.rate_limit, &result) {
                let header = rl.usage_header.as_deref().and_then(|h| a.header(h));
                self.limits.observe_bucket(rl, &key, header);
            }
            match result {
                Err(e) if e.status == Some(429) && waits < MAX_429_WAITS => {
                    let wait = e
                        .retry_after
                        .unwrap_or(Duration::from_secs(1))
                        .min(MAX_RETRY_AFTER);
                    if Instant::now() + wait >= deadline {
                        return Err(e);
                    }
                    waits += 1;
                    metrics::counter!("sluice_connector_throttled_total", "connector" => def.name.clone())
                        .increment(1);
                    tokio::time::sleep(wait).await;
                }
                Err(e) if e.status == Some(401) && !refreshed => {
                    let Some(o) = opened.as_mut() else {
                        return Err(e);
                    };
                    let Auth::OAuth2(s) = &o.auth else {
                        return Err(e);
                    };
                    let stale = s.access_token.clone().unwrap_or_default();
                    refreshed = true;
                    self.ensure_token(call, def, o, Some(&stale)).await?;
                }
                other => return other,
            }
        }
    }

    async fn definition_call(
        &self,
        call: &ActionCall,
        def: &ConnectorDef,
        action: &ActionDef,
        mut opened: Option<Opened>,
    ) -> Result<Value, ActionError> {
        let deadline = Instant::now() + call.timeout;
        let empty = Map::new();
        let params = opened.as_ref().map_or(&empty, |o| &o.params).clone();
        let base_url = opened.as_ref().and_then(|o| o.record.base_url.clone());
        let plan = request::build(def, action, base_url.as_deref(), &params, &call.input)
            .map_err(|e| config_error(e.0))?;
        let method = Method::from_bytes(plan.method.as_bytes())
            .map_err(|_| config_error(format!("bad method {}", plan.method)))?;
        let first = Url::parse(&plan.url)
            .map_err(|e| config_error(format!("bad URL {}: {e}", plan.url)))?;
        self.policy.check_url(&first).map_err(config_error)?;
        let max_pages = call
            .input
            .get("maxPages")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_MAX_PAGES)
            .clamp(1, MAX_PAGES);
        let mut query = plan.query.clone();
        let mut page_no = 0;
        if let Some(Pagination::Page {
            param,
            start,
            size,
            size_param,
        }) = &action.pagination
        {
            set_param(&mut query, param, start.to_string());
            if let Some(sp) = size_param {
                set_param(&mut query, sp, size.to_string());
            }
            page_no = *start;
        }
        let mut next_url: Option<Url> = None;
        let mut records: Vec<Value> = Vec::new();
        let mut selected: Option<Value> = None;
        let mut pages = 0u64;
        let last = loop {
            if let Some(o) = opened.as_mut() {
                self.ensure_token(call, def, o, None).await?;
            }
            let (url, q) = match &next_url {
                Some(u) => (u.clone(), Vec::new()),
                None => (first.clone(), query.clone()),
            };
            let body = plan.body.clone();
            let headers = plan.headers.clone();
            let method = method.clone();
            let client = self.client.clone();
            let build = move || {
                let mut r = client.request(method.clone(), url.clone()).query(&q);
                for (k, v) in &headers {
                    r = r.header(k.as_str(), v.as_str());
                }
                match &body {
                    Some(Body::Json(v)) => r.json(v),
                    Some(Body::Form(pairs)) => r.form(pairs),
                    None => r,
                }
            };
            let answer = self
                .exchange(call, def, &mut opened, deadline, &build)
                .await?;
            pages += 1;
            if let Some(field) = &action.ok_field
                && select(&answer.body, field).and_then(Value::as_bool) != Some(true)
            {
                return Err(ActionError {
                    message: format!("{} answered {field}: false", def.name),
                    status: Some(answer.status),
                    debug: Some(answer.body),
                    ..ActionError::new("", false)
                });
            }
            let picked = match &action.result {
                Some(path) => select(&answer.body, path).cloned(),
                None => Some(answer.body.clone()),
            };
            let page_records: Option<Vec<Value>> =
                picked.as_ref().and_then(|v| v.as_array().cloned());
            let next = match &action.pagination {
                Some(p) if pages < max_pages => next_page(
                    p,
                    PageSeen {
                        body: &answer.body,
                        records: page_records.as_deref(),
                        link: answer.header("link"),
                        page: page_no,
                    },
                ),
                _ => NextPage::Done,
            };
            match (&action.pagination, page_records) {
                (Some(_), Some(r)) => records.extend(r),
                _ => selected = picked,
            }
            match next {
                NextPage::Done => break answer,
                NextPage::Url(u) => {
                    let u =
                        Url::parse(&u).map_err(|e| config_error(format!("bad next link: {e}")))?;
                    if u.origin() != first.origin() {
                        return Err(config_error(format!(
                            "the next page link points to another origin ({u}); not followed"
                        )));
                    }
                    next_url = Some(u);
                }
                NextPage::Query(param, value) => {
                    set_param(&mut query, &param, value);
                    page_no += 1;
                }
            }
        };
        let data = if action.pagination.is_some() && selected.is_none() {
            Value::Array(records)
        } else {
            selected.unwrap_or(Value::Null)
        };
        let id = action
            .id
            .as_deref()
            .and_then(|p| select(&last.body, p))
            .and_then(id_text);
        // Built by hand: `json!` would serialize the body and the data, copying both.
        let mut output = Map::with_capacity(5);
        output.insert("status".into(), Value::from(last.status));
        output.insert("body".into(), last.body);
        output.insert("data".into(), data);
        output.insert("id".into(), id.map_or(Value::Null, Value::from));
        output.insert("pages".into(), Value::from(pages));
        Ok(Value::Object(output))
    }

    async fn raw_call(
        &self,
        call: &ActionCall,
        def: &ConnectorDef,
        mut opened: Option<Opened>,
    ) -> Result<Value, ActionError> {
        let deadline = Instant::now() + call.timeout;
        let input = &call.input;
        let method_name = input.get("method").and_then(Value::as_str).unwrap_or("GET");
        let method = Method::from_bytes(method_name.to_ascii_uppercase().as_bytes())
            .map_err(|_| config_error(format!("invalid HTTP method {method_name:?}")))?;
        let url = input
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| config_error("input.url is required"))?;
        let url = Url::parse(url).map_err(|e| config_error(format!("invalid url {url:?}: {e}")))?;
        self.policy.check_url(&url).map_err(config_error)?;
        if let Some(o) = opened.as_mut() {
            self.ensure_token(call, def, o, None).await?;
        }
        let headers: Vec<(String, String)> = input
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let body = input.get("body").cloned().unwrap_or(Value::Null);
        let client = self.client.clone();
        let build = move || {
            let mut r = client.request(method.clone(), url.clone());
            for (k, v) in &headers {
                r = r.header(k.as_str(), v.as_str());
            }
            match &body {
                Value::Null => r,
                Value::String(s) => r.body(s.clone()),
                v => r.json(v),
            }
        };
        let answer = self
            .exchange(call, def, &mut opened, deadline, &build)
            .await?;
        Ok(json!({"status": answer.status, "headers": answer.headers_json(), "body": answer.body}))
    }
}

#[async_trait::async_trait]
impl ActionInvoker for ConnectorInvoker {
    async fn invoke(&self, call: ActionCall) -> Result<Value, ActionError> {
        let Some((def, action)) = registry().action(&call.connector, &call.action) else {
            return Err(config_error(format!(
                "connector action {}.{} is not available",
                call.connector, call.action
            )));
        };
        let opened = self.open_credential(&call, def)?;
        let started = Instant::now();
        let result = match action.transport {
            Transport::Http => self.definition_call(&call, def, action, opened).await,
            Transport::Raw => self.raw_call(&call, def, opened).await,
            Transport::Smtp => email::send(self.policy, opened.as_ref(), &call).await,
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::histogram!("sluice_connector_call_seconds", "connector" => def.name.clone(), "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        result
    }
}

fn set_param(query: &mut Vec<(String, String)>, name: &str, value: String) {
    query.retain(|(k, _)| k != name);
    query.push((name.to_owned(), value));
}

fn fill_params(template: &str, params: &Map<String, Value>) -> String {
    let mut out = template.to_owned();
    for (k, v) in params {
        if let Some(s) = v.as_str() {
            out = out.replace(&format!("{{{k}}}"), s);
        }
    }
    out
}

fn now_secs() -> u64 {
    sluice_actors::ids::now_ms() / 1000
}
