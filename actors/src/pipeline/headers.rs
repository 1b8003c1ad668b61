//! [`Headers`]: request headers as the pipeline sees them, without depending on an HTTP crate.

/// Header name/value pairs with lower-case names (HTTP header names are case-insensitive,
/// RFC 9110 §5.1). Values that were not valid UTF-8 are left out by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// Builds from pairs; names are lower-cased.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        )
    }

    /// The first value of `name` (any case), trimmed of surrounding whitespace.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    /// The lineage in the request's `CDN-Loop` field lines (see [`hops`](super::hops)).
    pub fn lineage(&self) -> super::hops::Lineage {
        super::hops::Lineage::parse(
            self.0
                .iter()
                .filter(|(k, _)| k == super::hops::HEADER)
                .map(|(_, v)| v.as_str()),
        )
    }

    /// The headers worth keeping with a stored event: those that carry the provider's topic,
    /// event name, delivery id, API version or content type. Signatures are left out: they
    /// were verified at receipt and are of no use afterwards. So is `CDN-Loop`: receipt
    /// stores the lineage it read in Sluice's own form (see [`hops`](super::hops)).
    pub fn retained(&self) -> Vec<(String, String)> {
        const PREFIXES: [&str; 4] = ["x-shopify-", "x-github-", "webhook-", "x-slack-"];
        self.0
            .iter()
            .filter(|(k, _)| {
                (k == "content-type" || PREFIXES.iter().any(|p| k.starts_with(p)))
                    && k != "x-shopify-hmac-sha256"
                    && k != "webhook-signature"
                    && k != "x-slack-signature"
            })
            .cloned()
            .collect()
    }
}
