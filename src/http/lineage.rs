//! Loop detection at the HTTP entry points (webhook receipt, app events, the execute API):
//! reading a request's `CDN-Loop` lineage and refusing, with 508 `LOOP_DETECTED` and before
//! anything is stored, one that is too deep or past its chain's budget (see
//! `sluice_actors::pipeline::hops`).

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

/// Synchronous execute calls waiting at once, per (tenant, chain of calls Sluice made to
/// itself). Each such call holds a tenant concurrency slot in the execution that made it
/// while its own execution runs, so a flow that calls itself synchronously, several times
/// per run, fills every slot of its tenant a few hops in (and stalls it until the calls time
/// out). The execute API admits at most a limit of them per chain (half the tenant
/// concurrency, see [`SyncCalls::limit_for`]) and refuses the rest with 508.
#[derive(Debug, Default, Clone)]
pub struct SyncCalls {
    waiting: Arc<Mutex<HashMap<(String, String), usize>>>,
}

/// One admitted synchronous call; leaving its chain's count when dropped.
#[derive(Debug)]
pub struct SyncCall {
    calls: SyncCalls,
    key: Option<(String, String)>,
}

impl SyncCalls {
    /// The most synchronous calls of one chain that may wait at once in a tenant running
    /// `tenant_concurrency` executions: half, at least one.
    pub fn limit_for(tenant_concurrency: usize) -> usize {
        (tenant_concurrency / 2).max(1)
    }

    /// Admits a synchronous call of `tenant` with `lineage`, counting it until the returned
    /// guard drops. Calls from outside (hop 0) or without a chain are not counted.
    ///
    /// # Errors
    /// 508 `LOOP_DETECTED` when `limit` calls of its chain already wait.
    pub fn enter(
        &self,
        tenant: &str,
        lineage: &Lineage,
        limit: usize,
    ) -> Result<SyncCall, ApiError> {
        if lineage.hops == 0 || lineage.correlation_id.is_empty() {
            return Ok(SyncCall {
                calls: self.clone(),
                key: None,
            });
        }
        let key = (tenant.to_owned(), lineage.correlation_id.clone());
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let count = waiting.entry(key.clone()).or_insert(0);
        if *count >= limit {
            metrics::counter!("sluice_loops_refused_total").increment(1);
            return Err(ApiError::loop_detected(format!(
                "{limit} synchronous calls of the chain started by {} already wait in this \
                 tenant (CDN-Loop): a flow is probably calling itself synchronously; each \
                 waiting call holds a concurrency slot",
                lineage.correlation_id
            )));
        }
        *count += 1;
        Ok(SyncCall {
            calls: self.clone(),
            key: Some(key),
        })
    }
}

impl Drop for SyncCall {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut waiting = self
            .calls
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = waiting.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                waiting.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_calls_of_one_chain_are_bounded_while_they_wait() {
        let calls = SyncCalls::default();
        let chain = Lineage {
            hops: 2,
            correlation_id: "evt_1".into(),
        };
        let first = calls.enter("t", &chain, 2).expect("first");
        let second = calls.enter("t", &chain, 2).expect("second");
        assert!(
            calls.enter("t", &chain, 2).is_err(),
            "a third waits too many"
        );
        assert!(calls.enter("u", &chain, 2).is_ok(), "another tenant");
        assert!(
            calls.enter("t", &Lineage::default(), 2).is_ok(),
            "from outside"
        );
        drop(first);
        let third = calls.enter("t", &chain, 2).expect("a slot came free");
        drop((second, third));
        assert!(calls.waiting.lock().expect("lock").is_empty());
        assert_eq!(SyncCalls::limit_for(16), 8);
        assert_eq!(SyncCalls::limit_for(1), 1);
    }
}
