//! Loop detection: how many times an event has already passed through Sluice, carried in the
//! `CDN-Loop` request header of RFC 8586.
//!
//! - Every request a connector makes for an execution carries `CDN-Loop: sluice; hops=N`,
//!   where N is one more than the hop count of what started the execution (see
//!   [`outgoing_value`]).
//! - A webhook, an app event or an execute call that arrives with such an entry passes its
//!   count on to the event and the executions it starts (the header is kept with the stored
//!   event, so retries, restarts and DLQ replays keep the count).
//! - One that arrives with more than [`MAX_HOPS`] is refused with 508 `LOOP_DETECTED` before
//!   anything is written.
//!
//! So a flow that posts to its own tenant's endpoint, directly or through other flows or other
//! Sluice servers, stops after [`MAX_HOPS`] rounds: the refused call fails its step, and that
//! execution lands in the DLQ with the refusal as its error. Requests from outside carry no
//! entry and count 0. A loop that goes through a SaaS provider (a flow updates an order, the
//! provider sends an `orders/updated` webhook) cannot carry the header and is not seen here.
//!
//! Parsing follows RFC 8586 §2: the field is a comma-separated list of `cdn-id *( OWS ";" OWS
//! parameter )`, possibly over several field lines; entries of other intermediaries are
//! ignored, and several of ours count as the largest. An entry of ours whose `hops` is missing
//! or not a number counts as one hop. Commas inside another intermediary's quoted parameter
//! values are not special-cased: at worst such an entry is misread as several, which only
//! matters if a fragment starts with `sluice`.

/// The header's name, lower case (header names are case-insensitive, RFC 9110 §5.1).
pub const HEADER: &str = "cdn-loop";

/// Sluice's `cdn-id` in the header (an RFC 8586 pseudonym).
pub const CDN_ID: &str = "sluice";

/// The largest hop count an incoming request may carry; one with more is refused.
pub const MAX_HOPS: u32 = 16;

/// The hop count carried by a request's `CDN-Loop` field lines: the largest `hops` of
/// Sluice's entries, 0 when there is none.
pub fn parse<'a>(field_lines: impl IntoIterator<Item = &'a str>) -> u32 {
    field_lines
        .into_iter()
        .flat_map(|line| line.split(','))
        .filter_map(entry_hops)
        .max()
        .unwrap_or(0)
}

/// The hops of one `cdn-info` entry when it is Sluice's.
fn entry_hops(entry: &str) -> Option<u32> {
    let mut parts = entry.split(';').map(str::trim);
    let id = parts.next()?;
    if !id.eq_ignore_ascii_case(CDN_ID) {
        return None;
    }
    let count = parts
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("hops"))
        .and_then(|(_, value)| value.trim().trim_matches('"').parse::<u64>().ok());
    Some(count.map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX)))
}

/// Whether a request carrying `hops` is refused.
pub fn exceeded(hops: u32) -> bool {
    hops > MAX_HOPS
}

/// The header value that records `hops`: `sluice; hops=N`.
pub fn value(hops: u32) -> String {
    format!("{CDN_ID}; hops={hops}")
}

/// The header value for a call made by an execution at hop count `hops`: `sluice; hops=N+1`.
pub fn outgoing_value(hops: u32) -> String {
    value(hops.saturating_add(1))
}

/// The header pair to keep with a stored event or DLQ item at hop count `hops`; none at 0
/// (the count of anything from outside).
pub fn stored_header(hops: u32) -> Option<(String, String)> {
    (hops > 0).then(|| (HEADER.to_owned(), value(hops)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_our_entries_only() {
        assert_eq!(parse([]), 0);
        assert_eq!(parse(["cloudflare; loops=3"]), 0);
        assert_eq!(parse(["sluice; hops=4"]), 4);
        assert_eq!(parse(["cloudflare, Sluice ;HOPS = 7 , other"]), 7);
        assert_eq!(parse(["sluice; hops=2", "foo, sluice; hops=9"]), 9);
        assert_eq!(parse(["sluice; v=1; hops=\"3\""]), 3);
    }

    #[test]
    fn malformed_entries_of_ours_count_one() {
        assert_eq!(parse(["sluice"]), 1);
        assert_eq!(parse(["sluice; hops=abc"]), 1);
        assert_eq!(parse(["sluice; hops=-2"]), 1);
        assert_eq!(parse(["sluice; hops=99999999999999"]), u32::MAX);
        assert_eq!(parse(["sluicey; hops=5, notsluice"]), 0);
    }

    #[test]
    fn outgoing_counts_one_more_and_round_trips() {
        assert_eq!(outgoing_value(0), "sluice; hops=1");
        assert_eq!(parse([outgoing_value(5).as_str()]), 6);
        assert_eq!(stored_header(0), None);
        let (name, value) = stored_header(3).expect("header");
        assert_eq!((name.as_str(), parse([value.as_str()])), (HEADER, 3));
        assert_eq!(
            outgoing_value(u32::MAX),
            format!("sluice; hops={}", u32::MAX)
        );
        assert!(!exceeded(MAX_HOPS));
        assert!(exceeded(MAX_HOPS + 1));
    }
}
