//! Outbound rate limits per integration (one connector account: tenant + credential), from
//! each definition's documented limit, as GCRA token buckets (`governor`). A call waits for
//! its turn instead of being refused, so a burst of executions is spread out rather than
//! answered with the provider's 429s. A provider's own bucket header (Shopify's
//! `X-Shopify-Shop-Api-Call-Limit`) adds a pause when the bucket is nearly full.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sluice_actors::connectors::def::RateLimitDef;

use super::exchange::bucket_use;

/// Per-connector keyed limiters and provider-requested pauses.
pub struct Limits {
    limiters: HashMap<String, DefaultKeyedRateLimiter<String>>,
    pauses: Mutex<HashMap<String, Instant>>,
}

impl Limits {
    /// Limiters for every connector that declares a limit.
    pub fn new<'a>(defs: impl IntoIterator<Item = (&'a str, &'a RateLimitDef)>) -> Self {
        let mut limiters = HashMap::new();
        for (name, def) in defs {
            if let Some(q) = quota(def) {
                limiters.insert(name.to_owned(), RateLimiter::keyed(q));
            }
        }
        Self {
            limiters,
            pauses: Mutex::default(),
        }
    }

    /// Waits until integration `key` of `connector` may make a call.
    pub async fn acquire(&self, connector: &str, key: &str) {
        let pause = self.pauses.lock().ok().and_then(|p| p.get(key).copied());
        if let Some(until) = pause {
            let now = Instant::now();
            if until > now {
                tokio::time::sleep(until - now).await;
            }
        }
        if let Some(l) = self.limiters.get(connector) {
            l.until_key_ready(&key.to_owned()).await;
        }
    }

    /// Reads a bucket header: when the provider's bucket is within two calls of full, the
    /// next call of this integration waits for two calls' worth of leak.
    pub fn observe_bucket(&self, def: &RateLimitDef, key: &str, header: Option<&str>) {
        let Some((used, size)) = header.and_then(bucket_use) else {
            return;
        };
        if used + 2 >= size && def.per_second > 0.0 {
            let wait = Duration::from_secs_f64(2.0 / def.per_second);
            if let Ok(mut p) = self.pauses.lock() {
                p.insert(key.to_owned(), Instant::now() + wait);
            }
        }
    }
}

fn quota(def: &RateLimitDef) -> Option<Quota> {
    if def.per_second <= 0.0 {
        return None;
    }
    let period = Duration::from_secs_f64(1.0 / def.per_second);
    Some(Quota::with_period(period)?.allow_burst(NonZeroU32::new(def.burst.max(1))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn burst_then_paced_and_bucket_header_pauses() {
        let def = RateLimitDef {
            per_second: 20.0,
            burst: 2,
            usage_header: None,
        };
        let limits = Limits::new([("shopify", &def)]);
        let start = Instant::now();
        for _ in 0..4 {
            limits.acquire("shopify", "t/c").await;
        }
        // Two in the burst, then two more at 50 ms each.
        assert!(
            start.elapsed() >= Duration::from_millis(90),
            "{:?}",
            start.elapsed()
        );
        let other = Instant::now();
        limits.acquire("shopify", "t/other").await;
        assert!(
            other.elapsed() < Duration::from_millis(40),
            "keys are independent"
        );
        limits.observe_bucket(&def, "t/b", Some("39/40"));
        let paused = Instant::now();
        limits.acquire("shopify", "t/b").await;
        assert!(
            paused.elapsed() >= Duration::from_millis(90),
            "{:?}",
            paused.elapsed()
        );
    }
}
