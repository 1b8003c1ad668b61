//! Loop detection: where a request stands in a chain of calls Sluice made to itself (its
//! [`Lineage`]), carried in the `CDN-Loop` request header of RFC 8586.
//!
//! - Every request a connector makes for an execution carries
//!   `CDN-Loop: sluice; hops=N; correlation=ID`: N is one more than the hop count of what
//!   started the execution, ID the id of the event (or execute call) that started the chain.
//! - A webhook, an app event or an execute call that arrives with such an entry passes its
//!   lineage on to the event and the executions it starts (kept with the stored event, the
//!   execution record and DLQ items, so retries, restarts and replays keep it).
//! - Two bounds, each answered with 508 `LOOP_DETECTED` before anything is written: a
//!   request may carry at most [`MAX_HOPS`] hops (how deep a chain goes), and a tenant
//!   accepts a bounded number of requests with the same correlation id (how wide it goes: a
//!   flow that posts ten events per run would otherwise grow tenfold at every hop). See
//!   [`CorrelationBudget`]; its default, [`DEFAULT_CORRELATED`], lets one run of a loop
//!   step over its most items post an event per item.
//!
//! So a flow that posts to its own tenant, directly or through other flows or other Sluice
//! servers, stops: the refused call fails its step (508 is not retried), and that execution
//! lands in the DLQ. Requests from outside carry no entry: hop 0, and their own event id as
//! correlation id. A loop through a SaaS provider (a flow updates an order, the provider
//! sends an `orders/updated` webhook) cannot carry the header and is not seen here.
//!
//! Parsing follows RFC 8586 §2: the field is a comma-separated list of `cdn-id *( OWS ";" OWS
//! parameter )`, possibly over several field lines, parameter values being tokens or quoted
//! strings (commas and semicolons inside quotes do not separate). Entries of other
//! intermediaries are ignored; of several of ours the one with the most hops counts. An
//! entry of ours whose `hops` is missing or not a number counts one hop; a number too large
//! for 32 bits counts as the largest.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The header's name, lower case (header names are case-insensitive, RFC 9110 §5.1).
pub const HEADER: &str = "cdn-loop";

/// Sluice's `cdn-id` in the header (an RFC 8586 pseudonym).
pub const CDN_ID: &str = "sluice";

/// The largest hop count an incoming request may carry; one with more is refused. Below the
/// default tenant concurrency (16), so a chain of synchronous execute calls, each holding a
/// slot while it waits for the next, is refused before it can hold every slot.
pub const MAX_HOPS: u32 = 8;

/// The default for the most requests one tenant accepts with the same correlation id (and a
/// hop count above 0) between restarts: a loop step's most items
/// ([`MAX_LOOP_ITEMS`](crate::engine::steps::loop_step::MAX_LOOP_ITEMS)), so a flow may
/// split a batch into one event per item.
pub const DEFAULT_CORRELATED: u64 = 10_000;

/// Longest correlation id kept, bytes; a longer one is ignored.
const MAX_CORRELATION_LEN: usize = 128;

/// Where a request, event or execution stands in a chain of calls Sluice made to itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    /// How many times it passed through Sluice before (0 from outside).
    pub hops: u32,
    /// The id of the event or call that started the chain; empty from outside (the event's
    /// own id is then the chain's).
    pub correlation_id: String,
}

impl Lineage {
    /// The lineage carried by a request's `CDN-Loop` field lines (see the module docs).
    pub fn parse<'a>(field_lines: impl IntoIterator<Item = &'a str>) -> Lineage {
        field_lines
            .into_iter()
            .flat_map(|line| split_unquoted(line, ','))
            .filter_map(entry_lineage)
            .max_by_key(|l| l.hops)
            .unwrap_or_default()
    }

    /// Whether a request with this lineage is refused for its depth.
    pub fn too_deep(&self) -> bool {
        self.hops > MAX_HOPS
    }

    /// The header value that records this lineage: `sluice; hops=N; correlation=ID` (the
    /// correlation parameter only when there is one).
    pub fn value(&self) -> String {
        if self.correlation_id.is_empty() {
            format!("{CDN_ID}; hops={}", self.hops)
        } else {
            format!(
                "{CDN_ID}; hops={}; correlation={}",
                self.hops, self.correlation_id
            )
        }
    }

    /// The header value for a call made by an execution with this lineage: one hop more.
    pub fn outgoing_value(&self) -> String {
        Lineage {
            hops: self.hops.saturating_add(1),
            correlation_id: self.correlation_id.clone(),
        }
        .value()
    }

    /// The header pair to keep with a stored event or DLQ item; none for the default
    /// lineage (anything from outside, whose chain starts with itself).
    pub fn stored_header(&self) -> Option<(String, String)> {
        (self.hops > 0 || !self.correlation_id.is_empty())
            .then(|| (HEADER.to_owned(), self.value()))
    }

    /// The lineage a DLQ replay runs with, given the item's (`self`) and the replay
    /// request's (`via`); `replay_id` names this replay. A replay a flow asked for (`via` has
    /// hops) continues that flow's chain, at least as deep as the item, so a flow that
    /// replays its own failures is stopped like any loop. A replay from outside keeps the
    /// item's depth and starts a chain of its own: what the first run counted against its
    /// chain's budget does not refuse the replay again.
    pub fn for_replay(self, via: &Lineage, replay_id: &str) -> Lineage {
        if via.hops > 0 {
            Lineage {
                hops: via.hops.max(self.hops),
                correlation_id: via.correlation_id.clone(),
            }
            .or_correlation(replay_id)
        } else {
            Lineage {
                hops: self.hops,
                correlation_id: replay_id.to_owned(),
            }
        }
    }

    /// This lineage with `own_id` as correlation id when it has none: the lineage an
    /// execution passes on, `own_id` being the id of the event or call that started it.
    pub fn or_correlation(mut self, own_id: &str) -> Lineage {
        if self.correlation_id.is_empty() {
            own_id.clone_into(&mut self.correlation_id);
        }
        self
    }
}

/// The lineage of one `cdn-info` entry when it is Sluice's.
fn entry_lineage(entry: &str) -> Option<Lineage> {
    let mut parts = split_unquoted(entry, ';').into_iter().map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case(CDN_ID) {
        return None;
    }
    let mut lineage = Lineage {
        hops: 1,
        correlation_id: String::new(),
    };
    for (name, value) in parts.filter_map(|p| p.split_once('=')) {
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "hops" => lineage.hops = hop_count(value),
            "correlation" if is_correlation_id(value) => {
                value.clone_into(&mut lineage.correlation_id)
            }
            _ => {}
        }
    }
    Some(lineage)
}

/// A `hops` value: a decimal number, saturating at `u32::MAX`; anything else counts one.
fn hop_count(value: &str) -> u32 {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return 1;
    }
    value.parse::<u32>().unwrap_or(u32::MAX)
}

fn is_correlation_id(value: &str) -> bool {
    (1..=MAX_CORRELATION_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `text` split at `sep` outside double-quoted strings (a backslash escapes the next
/// character inside quotes, RFC 9110 §5.6.4).
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Counts, per (tenant, correlation id), the requests accepted with a hop count above 0, and
/// refuses those past its limit. In memory only: a restart starts every chain's count
/// afresh. Holds at most [`CorrelationBudget::CAPACITY`] chains; when full, chains idle for
/// [`CorrelationBudget::IDLE_MS`] are forgotten, and if none is, the least recently seen.
#[derive(Debug)]
pub struct CorrelationBudget {
    limit: u64,
    chains: Mutex<HashMap<(String, String), Seen>>,
}

impl Default for CorrelationBudget {
    fn default() -> Self {
        Self::new(DEFAULT_CORRELATED)
    }
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    count: u64,
    last_ms: u64,
}

impl CorrelationBudget {
    /// Most chains remembered.
    pub const CAPACITY: usize = 100_000;

    /// A chain not seen for this long may be forgotten, ms.
    pub const IDLE_MS: u64 = 10 * 60 * 1000;

    /// A budget of `limit` requests per (tenant, chain).
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            chains: Mutex::default(),
        }
    }

    /// Requests admitted per (tenant, chain).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Counts one more request of `tenant` with `lineage` at `now_ms`; false when it is past
    /// the budget (refuse it). Requests from outside (hop 0) and those without a correlation
    /// id are not counted and always pass.
    pub fn admit(&self, tenant: &str, lineage: &Lineage, now_ms: u64) -> bool {
        if lineage.hops == 0 || lineage.correlation_id.is_empty() {
            return true;
        }
        let mut chains = self.chains.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (tenant.to_owned(), lineage.correlation_id.clone());
        if !chains.contains_key(&key) && chains.len() >= Self::CAPACITY {
            chains.retain(|_, s| now_ms.saturating_sub(s.last_ms) < Self::IDLE_MS);
            if chains.len() >= Self::CAPACITY {
                let oldest = chains
                    .iter()
                    .min_by_key(|(_, s)| s.last_ms)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    chains.remove(&k);
                }
            }
        }
        let seen = chains.entry(key).or_insert(Seen {
            count: 0,
            last_ms: now_ms,
        });
        seen.last_ms = now_ms;
        if seen.count >= self.limit {
            return false;
        }
        seen.count += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lineage(hops: u32, correlation: &str) -> Lineage {
        Lineage {
            hops,
            correlation_id: correlation.into(),
        }
    }

    #[test]
    fn reads_our_entries_only() {
        assert_eq!(Lineage::parse([]), Lineage::default());
        assert_eq!(Lineage::parse(["cloudflare; loops=3"]), Lineage::default());
        assert_eq!(
            Lineage::parse(["sluice; hops=4; correlation=evt_1"]),
            lineage(4, "evt_1")
        );
        assert_eq!(
            Lineage::parse(["cloudflare, Sluice ;HOPS = 7 , other"]),
            lineage(7, "")
        );
        assert_eq!(
            Lineage::parse([
                "sluice; hops=2; correlation=a",
                "foo, sluice; hops=9; correlation=b"
            ]),
            lineage(9, "b")
        );
        assert_eq!(Lineage::parse(["sluice; v=1; hops=\"3\""]), lineage(3, ""));
    }

    #[test]
    fn quoted_separators_do_not_split() {
        // Ours, with a quoted parameter holding a comma and a semicolon.
        assert_eq!(
            Lineage::parse([r#" sluice;foo="a,b;c";hops=17"#]),
            lineage(17, "")
        );
        // Another intermediary's quoted value mentioning us is not an entry of ours.
        assert_eq!(
            Lineage::parse([r#"other; x="a, sluice; hops=99""#]),
            Lineage::default()
        );
        assert_eq!(
            Lineage::parse([r#"other; x="q\"uote, sluice; hops=99", sluice; hops=2"#]),
            lineage(2, "")
        );
    }

    #[test]
    fn malformed_entries_of_ours_count_one_and_huge_counts_saturate() {
        assert_eq!(Lineage::parse(["sluice"]).hops, 1);
        assert_eq!(Lineage::parse(["sluice; hops=abc"]).hops, 1);
        assert_eq!(Lineage::parse(["sluice; hops="]).hops, 1);
        assert_eq!(Lineage::parse(["sluice; hops=-2"]).hops, 1);
        assert_eq!(Lineage::parse(["sluice; hops=1e3"]).hops, 1);
        assert_eq!(
            Lineage::parse(["sluice; hops=99999999999999"]).hops,
            u32::MAX
        );
        assert_eq!(
            Lineage::parse(["sluice; hops=18446744073709551616"]).hops,
            u32::MAX
        );
        assert_eq!(Lineage::parse(["sluicey; hops=5, notsluice"]).hops, 0);
        // An id that is not a plain token is ignored, the hops still count.
        assert_eq!(
            Lineage::parse(["sluice; hops=3; correlation=a b"]),
            lineage(3, "")
        );
    }

    #[test]
    fn values_round_trip_and_count_one_more_outgoing() {
        let l = lineage(5, "evt_1");
        assert_eq!(l.value(), "sluice; hops=5; correlation=evt_1");
        assert_eq!(
            Lineage::parse([l.outgoing_value().as_str()]),
            lineage(6, "evt_1")
        );
        assert_eq!(Lineage::default().outgoing_value(), "sluice; hops=1");
        assert_eq!(
            lineage(u32::MAX, "").outgoing_value(),
            format!("sluice; hops={}", u32::MAX)
        );
        assert_eq!(Lineage::default().stored_header(), None);
        let (name, value) = l.stored_header().expect("header");
        assert_eq!(
            (name.as_str(), Lineage::parse([value.as_str()])),
            (HEADER, l)
        );
        assert_eq!(
            Lineage::default().or_correlation("evt_9"),
            lineage(0, "evt_9")
        );
        assert_eq!(
            lineage(2, "evt_1").or_correlation("evt_9"),
            lineage(2, "evt_1")
        );
        assert_eq!(
            lineage(0, "evt_9").stored_header().map(|(_, v)| v),
            Some("sluice; hops=0; correlation=evt_9".to_owned())
        );
        assert!(!lineage(MAX_HOPS, "").too_deep());
        assert!(lineage(MAX_HOPS + 1, "").too_deep());
    }

    #[test]
    fn a_replay_continues_a_flow_s_chain_or_starts_its_own() {
        let item = lineage(3, "evt_root");
        assert_eq!(
            item.clone().for_replay(&lineage(5, "evt_other"), "dlq_1-2"),
            lineage(5, "evt_other")
        );
        assert_eq!(
            item.clone().for_replay(&lineage(1, "evt_other"), "dlq_1-2"),
            lineage(3, "evt_other"),
            "never shallower than the item"
        );
        assert_eq!(
            item.for_replay(&Lineage::default(), "dlq_1-2"),
            lineage(3, "dlq_1-2")
        );
    }

    #[test]
    fn the_budget_counts_per_tenant_and_chain() {
        let budget = CorrelationBudget::new(50);
        let chain = lineage(1, "evt_1");
        for _ in 0..50 {
            assert!(budget.admit("t", &chain, 1));
        }
        assert!(!budget.admit("t", &chain, 2), "past the budget");
        assert!(
            !budget.admit("t", &lineage(3, "evt_1"), 2),
            "any hop of the chain"
        );
        assert!(budget.admit("u", &chain, 2), "another tenant");
        assert!(budget.admit("t", &lineage(1, "evt_2"), 2), "another chain");
        assert!(budget.admit("t", &lineage(0, "evt_1"), 2), "from outside");
        assert!(budget.admit("t", &lineage(4, ""), 2), "no correlation id");
    }

    #[test]
    fn a_full_budget_forgets_idle_chains_first() {
        let budget = CorrelationBudget::default();
        for i in 0..CorrelationBudget::CAPACITY {
            assert!(budget.admit("t", &lineage(1, &format!("c{i}")), 0));
        }
        // c0 is busy (recent); the rest are idle by the time a new chain arrives.
        assert!(budget.admit("t", &lineage(1, "c0"), CorrelationBudget::IDLE_MS));
        let later = CorrelationBudget::IDLE_MS + 1;
        assert!(budget.admit("t", &lineage(1, "new"), later));
        let chains = budget.chains.lock().expect("lock");
        assert_eq!(chains.len(), 2, "idle chains forgotten");
        assert_eq!(chains[&("t".to_owned(), "c0".to_owned())].count, 2);
    }
}
