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

/// Synchronous execute calls made by flows (a hop count above 0) waiting at once.
///
/// The execution such a call starts runs outside its tenant's concurrency slots (the caller
/// holds one while it waits; see `sluice_actors::runtime::RootMsg::RunCalled`), so these
/// calls cannot stall a tenant by holding its slots. What bounds them is this count: at most
/// [`SyncLimits::per_chain`] may wait at once for one chain (past that the call is a runaway
/// synchronous self-call, refused with 508 `LOOP_DETECTED`, which is not retried and unwinds
/// the chain) and [`SyncLimits::per_tenant`] for one tenant (past that: 429 `RATE_LIMITED`
/// with `Retry-After`, which the connectors wait out and retry).
#[derive(Debug, Clone)]
pub struct SyncCalls {
    waiting: Arc<Mutex<Waiting>>,
    limits: SyncLimits,
}

/// How many synchronous calls from flows may wait at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncLimits {
    /// Per chain (one `CDN-Loop` correlation id in one tenant). The default, 256, lets a
    /// loop at its widest (64 iterations at once) call a flow synchronously from every
    /// iteration, and those flows do the same, with room to spare.
    pub per_chain: usize,
    /// Per tenant, all chains together. Default 1,024: every one of 16 slots running such a
    /// loop.
    pub per_tenant: usize,
}

impl Default for SyncLimits {
    fn default() -> Self {
        Self {
            per_chain: 256,
            per_tenant: 1_024,
        }
    }
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

impl SyncCall {
    /// Whether the call came from a flow (and was counted): its execution then runs outside
    /// the tenant's concurrency slots.
    pub fn is_from_flow(&self) -> bool {
        self.counted.is_some()
    }
}

impl SyncCalls {
    /// Counts calls against `limits`.
    pub fn new(limits: SyncLimits) -> Self {
        Self {
            waiting: Arc::default(),
            limits,
        }
    }

    /// Admits a synchronous call of `tenant` with `lineage`, counting it until the returned
    /// guard drops. Calls from outside (hop 0) are not counted.
    ///
    /// # Errors
    /// 508 `LOOP_DETECTED` when [`SyncLimits::per_chain`] calls of its chain already wait;
    /// 429 `RATE_LIMITED` when [`SyncLimits::per_tenant`] calls from flows already wait in the
    /// tenant.
    pub fn enter(&self, tenant: &str, lineage: &Lineage) -> Result<SyncCall, ApiError> {
        if lineage.hops == 0 {
            return Ok(SyncCall {
                calls: self.clone(),
                counted: None,
            });
        }
        let chain = (tenant.to_owned(), lineage.correlation_id.clone());
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let SyncLimits {
            per_chain,
            per_tenant,
        } = self.limits;
        if waiting.by_chain.get(&chain).copied().unwrap_or(0) >= per_chain {
            metrics::counter!("sluice_loops_refused_total").increment(1);
            return Err(ApiError::loop_detected(format!(
                "{per_chain} synchronous calls of the chain started by {} already wait in \
                 this tenant (CDN-Loop): a flow is probably calling itself synchronously, \
                 several times per run",
                lineage.correlation_id
            )));
        }
        if waiting.by_tenant.get(tenant).copied().unwrap_or(0) >= per_tenant {
            return Err(ApiError::rate_limited(
                format!(
                    "{per_tenant} synchronous calls from flows already wait in this tenant; \
                     retry shortly"
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
        let calls = SyncCalls::new(SyncLimits {
            per_chain: 2,
            per_tenant: 3,
        });
        let chain = |id: &str| Lineage {
            hops: 2,
            correlation_id: id.into(),
        };
        let status = |r: Result<SyncCall, ApiError>| r.err().map(|e| e.status().as_u16());
        let first = calls.enter("t", &chain("a")).expect("first");
        let second = calls.enter("t", &chain("a")).expect("second");
        assert!(first.is_from_flow() && second.is_from_flow());
        assert_eq!(status(calls.enter("t", &chain("a"))), Some(508), "a loop");
        let third = calls.enter("t", &chain("b")).expect("another chain");
        assert_eq!(
            status(calls.enter("t", &chain("c"))),
            Some(429),
            "the tenant's share is taken: retry later"
        );
        assert!(calls.enter("u", &chain("a")).is_ok(), "another tenant");
        let outside = calls
            .enter("t", &Lineage::default())
            .expect("from outside: not counted");
        assert!(!outside.is_from_flow());
        drop(first);
        let fourth = calls.enter("t", &chain("c")).expect("a call ended");
        drop((second, third, fourth, outside));
        let waiting = calls.waiting.lock().expect("lock");
        assert!(waiting.by_chain.is_empty() && waiting.by_tenant.is_empty());
    }
}
