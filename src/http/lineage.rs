//! Loop detection at the HTTP entry points (webhook receipt, app events, the execute API,
//! DLQ replays): reading a request's `CDN-Loop` lineage and refusing, with 508
//! `LOOP_DETECTED` and before anything is stored, one that is too deep or past its chain's
//! budget (see `sluice_actors::pipeline::hops`).

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
