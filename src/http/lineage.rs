//! Loop detection at the HTTP entry points (webhook receipt, app events, the execute API,
//! DLQ replays): reading a request's `CDN-Loop` lineage and refusing, with 508
//! `LOOP_DETECTED` and before anything is stored, one that is too deep or past its chain's
//! budget (see `sluice_actors::pipeline::hops`); and bounding the synchronous execute calls
//! flows make ([`SyncCalls`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use sluice_actors::ids::now_ms;
use sluice_actors::pipeline::hops::{self, Lineage, MAX_HOPS};

use super::AppState;
use super::error::ApiError;

/// The lineage in `headers`' `CDN-Loop` field lines. A line that is not valid UTF-8 is read
/// with replacement characters rather than skipped, so a stray byte cannot hide the count.
pub fn lineage_of(headers: &HeaderMap) -> Lineage {
    let lines: Vec<String> = headers
        .get_all(hops::HEADER)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    Lineage::parse(lines.iter().map(String::as_str))
}

/// Admits a request of `tenant` with `lineage`, counting it against its chain's budget.
///
/// # Errors
/// 508 `LOOP_DETECTED` when it is more than [`MAX_HOPS`] deep or its chain has already
/// brought its budget of requests (`--loop-budget`) to this tenant.
pub fn admit(state: &AppState, tenant: &str, lineage: &Lineage) -> Result<(), ApiError> {
    let refusal = if lineage.too_deep() {
        format!(
            "request has passed through Sluice {} times (CDN-Loop), more than the limit of \
             {MAX_HOPS}: a flow is probably triggering itself",
            lineage.hops
        )
    } else if !state.loop_budget.admit(tenant, lineage, now_ms()) {
        format!(
            "more than {} requests of this tenant come from the chain started by {} \
             (CDN-Loop): a flow is probably triggering itself more than once per run",
            state.loop_budget.limit(),
            lineage.correlation_id
        )
    } else {
        return Ok(());
    };
    metrics::counter!("sluice_loops_refused_total").increment(1);
    Err(ApiError::loop_detected(refusal))
}

/// A request's lineage as an extractor (for handlers that call [`admit`] once they know the
/// tenant).
pub struct IncomingLineage(pub Lineage);

impl<S: Send + Sync> FromRequestParts<S> for IncomingLineage {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(IncomingLineage(lineage_of(&parts.headers)))
    }
}

/// Synchronous execute calls made by flows (a hop count above 0) waiting at once. Each holds
/// a tenant concurrency slot in the execution that made it while its own execution runs, so
/// enough of them fill every slot of the tenant and stall it until they time out: a flow
/// calling itself several times per run, or several outside callers of a flow that calls
/// another synchronously. The execute API admits at most a limit of them (half the tenant
/// concurrency, see [`SyncCalls::limit_for`]) per tenant and per chain: past the chain's
/// limit the call is a loop (508 `LOOP_DETECTED`); past the tenant's, it is refused for now
/// (429 `RATE_LIMITED` with `Retry-After`, which the connectors wait out and retry).
#[derive(Debug, Default, Clone)]
pub struct SyncCalls {
    waiting: Arc<Mutex<Waiting>>,
}

#[derive(Debug, Default)]
struct Waiting {
    by_chain: HashMap<(String, String), usize>,
    by_tenant: HashMap<String, usize>,
}

/// One admitted synchronous call; leaving the counts when dropped.
#[derive(Debug)]
pub struct SyncCall {
    calls: SyncCalls,
    counted: Option<(String, String)>,
}

impl SyncCalls {
    /// The most synchronous calls from flows that may wait at once in a tenant running
    /// `tenant_concurrency` executions, per chain and in all: half, at least one.
    pub fn limit_for(tenant_concurrency: usize) -> usize {
        (tenant_concurrency / 2).max(1)
    }

    /// Admits a synchronous call of `tenant` with `lineage`, counting it until the returned
    /// guard drops. Calls from outside (hop 0) are not counted.
    ///
    /// # Errors
    /// 508 `LOOP_DETECTED` when `limit` calls of its chain already wait; 429 `RATE_LIMITED`
    /// when `limit` calls from flows already wait in the tenant.
    pub fn enter(
        &self,
        tenant: &str,
        lineage: &Lineage,
        limit: usize,
    ) -> Result<SyncCall, ApiError> {
        if lineage.hops == 0 {
            return Ok(SyncCall {
                calls: self.clone(),
                counted: None,
            });
        }
        let chain = (tenant.to_owned(), lineage.correlation_id.clone());
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting.by_chain.get(&chain).copied().unwrap_or(0) >= limit {
            metrics::counter!("sluice_loops_refused_total").increment(1);
            return Err(ApiError::loop_detected(format!(
                "{limit} synchronous calls of the chain started by {} already wait in this \
                 tenant (CDN-Loop): a flow is probably calling itself synchronously; each \
                 waiting call holds a concurrency slot",
                lineage.correlation_id
            )));
        }
        if waiting.by_tenant.get(tenant).copied().unwrap_or(0) >= limit {
            return Err(ApiError::rate_limited(
                format!(
                    "{limit} synchronous calls from flows already wait in this tenant, each \
                     holding a concurrency slot; retry shortly"
                ),
                1,
            ));
        }
        *waiting.by_chain.entry(chain.clone()).or_insert(0) += 1;
        *waiting.by_tenant.entry(tenant.to_owned()).or_insert(0) += 1;
        Ok(SyncCall {
            calls: self.clone(),
            counted: Some(chain),
        })
    }
}

impl Drop for SyncCall {
    fn drop(&mut self) {
        let Some(chain) = self.counted.take() else {
            return;
        };
        let mut waiting = self
            .calls
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let tenant = chain.0.clone();
        decrement(&mut waiting.by_chain, &chain);
        decrement(&mut waiting.by_tenant, &tenant);
    }
}

/// Lowers `key`'s count in `counts`, forgetting it at 0.
fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_calls_from_flows_are_bounded_per_chain_and_per_tenant() {
        let calls = SyncCalls::default();
        let chain = |id: &str| Lineage {
            hops: 2,
            correlation_id: id.into(),
        };
        let status = |r: Result<SyncCall, ApiError>| r.err().map(|e| e.status().as_u16());
        let first = calls.enter("t", &chain("a"), 2).expect("first");
        let second = calls.enter("t", &chain("a"), 2).expect("second");
        assert_eq!(
            status(calls.enter("t", &chain("a"), 2)),
            Some(508),
            "a loop"
        );
        assert_eq!(
            status(calls.enter("t", &chain("b"), 2)),
            Some(429),
            "the tenant's share is taken: retry later"
        );
        assert!(calls.enter("u", &chain("a"), 2).is_ok(), "another tenant");
        assert!(
            calls.enter("t", &Lineage::default(), 2).is_ok(),
            "from outside"
        );
        drop(first);
        let third = calls.enter("t", &chain("b"), 2).expect("a slot came free");
        drop((second, third));
        let waiting = calls.waiting.lock().expect("lock");
        assert!(waiting.by_chain.is_empty() && waiting.by_tenant.is_empty());
        assert_eq!(SyncCalls::limit_for(16), 8);
        assert_eq!(SyncCalls::limit_for(1), 1);
    }
}
