//! Webhook signature verification, over the raw body bytes, in constant time.
//!
//! | scheme | header(s) | signed bytes | encoding | source |
//! |---|---|---|---|---|
//! | `shopify` | `X-Shopify-Hmac-Sha256` | body | base64 HMAC-SHA256 | Shopify, "Verify webhooks" |
//! | `github` | `X-Hub-Signature-256` | body | `sha256=` + lower-case hex | GitHub Docs, "Validating webhook deliveries" |
//! | `stripe` | `Stripe-Signature: t=…,v1=…[,v1=…]` | `t.body` | hex; key is the `whsec_…` string's bytes | Stripe, "Verify webhook signatures manually" |
//! | `slack` | `X-Slack-Signature`, `X-Slack-Request-Timestamp` | `v0:ts:body` | `v0=` + hex | Slack, "Verifying requests from Slack" |
//! | `standard` | `webhook-id`, `webhook-timestamp`, `webhook-signature` | `id.ts.body` | `v1,` + base64, space-separated list; key is base64 of the secret after `whsec_` | Standard Webhooks spec |
//!
//! Schemes that carry a timestamp (Stripe, Slack, Standard Webhooks) are refused when it is
//! more than [`TIMESTAMP_TOLERANCE_SECS`] away from now, in either direction (replay
//! protection). Comparison uses `hmac`'s `verify_slice`, which is constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::headers::Headers;

/// How far a signed timestamp may be from the receiver's clock, in seconds (5 minutes).
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// A webhook signature scheme, named as connectors are (`shopify`, `github`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `X-Shopify-Hmac-Sha256`.
    Shopify,
    /// `X-Hub-Signature-256`.
    GitHub,
    /// `Stripe-Signature`.
    Stripe,
    /// `X-Slack-Signature`.
    Slack,
    /// Standard Webhooks (`webhook-signature`); also the scheme of the generic `http` source.
    Standard,
}

impl Scheme {
    /// The scheme for a connector name: `shopify`, `github`, `stripe`, `slack`, `standard`
    /// (and `http`, which uses Standard Webhooks).
    pub fn for_connector(connector: &str) -> Option<Self> {
        match connector {
            "shopify" => Some(Self::Shopify),
            "github" => Some(Self::GitHub),
            "stripe" => Some(Self::Stripe),
            "slack" => Some(Self::Slack),
            "standard" | "http" => Some(Self::Standard),
            _ => None,
        }
    }

    /// The scheme's name as shown by the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Shopify => "shopify-hmac-sha256",
            Self::GitHub => "github-hmac-sha256",
            Self::Stripe => "stripe-v1",
            Self::Slack => "slack-v0",
            Self::Standard => "standard-webhooks-v1",
        }
    }
}

/// Why a delivery was refused. The message names the failed check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header the scheme needs is absent.
    #[error("missing signature header {0}")]
    MissingHeader(&'static str),
    /// A header is present but cannot be parsed.
    #[error("malformed header {header}: {reason}")]
    Malformed {
        /// Header name.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signature does not match the body and secret.
    #[error("signature in {0} does not match the request body")]
    Mismatch(&'static str),
    /// The signed timestamp is too old or too far in the future.
    #[error(
        "timestamp in {header} is outside the allowed window of 5 minutes ({skew_secs} s away from now)"
    )]
    TimestampOutsideWindow {
        /// Header name.
        header: &'static str,
        /// Distance from the receiver's clock, seconds.
        skew_secs: i64,
    },
    /// The configured secret cannot be used (a `whsec_` secret that is not base64).
    #[error("the webhook's secret is not valid for this scheme")]
    BadSecret,
}

/// Verifies `body` against the request's signature headers.
///
/// `now_unix_secs` is the receiver's clock (a parameter so tests can pin it).
///
/// # Errors
/// A [`SignatureError`] naming the failed check; nothing about which bytes differed.
pub fn verify(
    scheme: Scheme,
    secret: &str,
    headers: &Headers,
    body: &[u8],
    now_unix_secs: i64,
) -> Result<(), SignatureError> {
    match scheme {
        Scheme::Shopify => {
            const H: &str = "x-shopify-hmac-sha256";
            let given = headers.get(H).ok_or(SignatureError::MissingHeader(H))?;
            let sig = B64.decode(given).map_err(|_| SignatureError::Malformed {
                header: H,
                reason: "not base64",
            })?;
            check(secret.as_bytes(), &[body], &sig).map_err(|()| SignatureError::Mismatch(H))
        }
        Scheme::GitHub => {
            const H: &str = "x-hub-signature-256";
            let given = headers.get(H).ok_or(SignatureError::MissingHeader(H))?;
            let hexsig = given
                .strip_prefix("sha256=")
                .ok_or(SignatureError::Malformed {
                    header: H,
                    reason: "expected sha256=<hex>",
                })?;
            let sig = hex::decode(hexsig).map_err(|_| SignatureError::Malformed {
                header: H,
                reason: "not hex",
            })?;
            check(secret.as_bytes(), &[body], &sig).map_err(|()| SignatureError::Mismatch(H))
        }
        Scheme::Stripe => verify_stripe(secret, headers, body, now_unix_secs),
        Scheme::Slack => {
            const H: &str = "x-slack-signature";
            const T: &str = "x-slack-request-timestamp";
            let given = headers.get(H).ok_or(SignatureError::MissingHeader(H))?;
            let ts = headers.get(T).ok_or(SignatureError::MissingHeader(T))?;
            check_window(T, parse_ts(T, ts)?, now_unix_secs)?;
            let hexsig = given.strip_prefix("v0=").ok_or(SignatureError::Malformed {
                header: H,
                reason: "expected v0=<hex>",
            })?;
            let sig = hex::decode(hexsig).map_err(|_| SignatureError::Malformed {
                header: H,
                reason: "not hex",
            })?;
            let parts: [&[u8]; 4] = [b"v0:", ts.as_bytes(), b":", body];
            check(secret.as_bytes(), &parts, &sig).map_err(|()| SignatureError::Mismatch(H))
        }
        Scheme::Standard => verify_standard(secret, headers, body, now_unix_secs),
    }
}

fn verify_stripe(
    secret: &str,
    headers: &Headers,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    const H: &str = "stripe-signature";
    let given = headers.get(H).ok_or(SignatureError::MissingHeader(H))?;
    let mut ts = None;
    let mut candidates = Vec::new();
    for item in given.split(',') {
        match item.trim().split_once('=') {
            Some(("t", v)) => ts = Some(v),
            Some(("v1", v)) => candidates.push(v),
            _ => {}
        }
    }
    let ts = ts.ok_or(SignatureError::Malformed {
        header: H,
        reason: "no t= timestamp",
    })?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed {
            header: H,
            reason: "no v1= signature",
        });
    }
    check_window(H, parse_ts(H, ts)?, now)?;
    let parts: [&[u8]; 3] = [ts.as_bytes(), b".", body];
    let any = candidates.iter().any(|c| {
        hex::decode(c)
            .ok()
            .is_some_and(|sig| check(secret.as_bytes(), &parts, &sig).is_ok())
    });
    if any {
        Ok(())
    } else {
        Err(SignatureError::Mismatch(H))
    }
}

fn verify_standard(
    secret: &str,
    headers: &Headers,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    const ID: &str = "webhook-id";
    const TS: &str = "webhook-timestamp";
    const SIG: &str = "webhook-signature";
    let id = headers.get(ID).ok_or(SignatureError::MissingHeader(ID))?;
    let ts = headers.get(TS).ok_or(SignatureError::MissingHeader(TS))?;
    let given = headers.get(SIG).ok_or(SignatureError::MissingHeader(SIG))?;
    check_window(TS, parse_ts(TS, ts)?, now)?;
    let key = B64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| SignatureError::BadSecret)?;
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts.as_bytes(), b".", body];
    let any = given.split(' ').any(|entry| match entry.split_once(',') {
        Some(("v1", b64)) if !b64.is_empty() => B64
            .decode(b64)
            .ok()
            .is_some_and(|sig| check(&key, &parts, &sig).is_ok()),
        _ => false,
    });
    if any {
        Ok(())
    } else {
        Err(SignatureError::Mismatch(SIG))
    }
}

/// Constant-time HMAC-SHA256 check of `parts` concatenated.
fn check(key: &[u8], parts: &[&[u8]], expected: &[u8]) -> Result<(), ()> {
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| ())?;
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(expected).map_err(|_| ())
}

/// A decimal integer of Unix seconds (no sign, no fraction).
fn parse_ts(header: &'static str, v: &str) -> Result<i64, SignatureError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed {
            header,
            reason: "timestamp is not an integer of Unix seconds",
        });
    }
    v.parse().map_err(|_| SignatureError::Malformed {
        header,
        reason: "timestamp out of range",
    })
}

fn check_window(header: &'static str, ts: i64, now: i64) -> Result<(), SignatureError> {
    let skew = now.saturating_sub(ts);
    if skew.abs() > TIMESTAMP_TOLERANCE_SECS {
        return Err(SignatureError::TimestampOutsideWindow {
            header,
            skew_secs: skew,
        });
    }
    Ok(())
}

/// Computes the header a sender would put on `body` (for tests, the load generator and the
/// CLI's `send` helper). For schemes with timestamps, `ts` and `msg_id` are used as given.
pub fn sign(
    scheme: Scheme,
    secret: &str,
    body: &[u8],
    ts: i64,
    msg_id: &str,
) -> Vec<(String, String)> {
    let mac = |key: &[u8], parts: &[&[u8]]| {
        let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    };
    let ts_s = ts.to_string();
    match scheme {
        Scheme::Shopify => vec![(
            "x-shopify-hmac-sha256".into(),
            B64.encode(mac(secret.as_bytes(), &[body])),
        )],
        Scheme::GitHub => vec![(
            "x-hub-signature-256".into(),
            format!("sha256={}", hex::encode(mac(secret.as_bytes(), &[body]))),
        )],
        Scheme::Stripe => vec![(
            "stripe-signature".into(),
            format!(
                "t={ts_s},v1={}",
                hex::encode(mac(secret.as_bytes(), &[ts_s.as_bytes(), b".", body]))
            ),
        )],
        Scheme::Slack => vec![
            ("x-slack-request-timestamp".into(), ts_s.clone()),
            (
                "x-slack-signature".into(),
                format!(
                    "v0={}",
                    hex::encode(mac(
                        secret.as_bytes(),
                        &[b"v0:", ts_s.as_bytes(), b":", body]
                    ))
                ),
            ),
        ],
        Scheme::Standard => {
            let key = B64
                .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
                .unwrap_or_default();
            vec![
                ("webhook-id".into(), msg_id.into()),
                ("webhook-timestamp".into(), ts_s.clone()),
                (
                    "webhook-signature".into(),
                    format!(
                        "v1,{}",
                        B64.encode(mac(
                            &key,
                            &[msg_id.as_bytes(), b".", ts_s.as_bytes(), b".", body]
                        ))
                    ),
                ),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        Headers::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn github_docs_vector() {
        // GitHub Docs, "Validating webhook deliveries".
        let headers = h(&[(
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        assert_eq!(
            verify(
                Scheme::GitHub,
                "It's a Secret to Everybody",
                &headers,
                b"Hello, World!",
                0
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                Scheme::GitHub,
                "It's a Secret to Everybody",
                &headers,
                b"Hello, World?",
                0
            ),
            Err(SignatureError::Mismatch("x-hub-signature-256"))
        );
    }

    #[test]
    fn standard_webhooks_spec_vector_and_tolerance() {
        // The vector hard-coded in the Standard Webhooks reference libraries' tests.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let headers = h(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            (
                "webhook-signature",
                "v2,abc v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ]);
        assert_eq!(
            verify(Scheme::Standard, secret, &headers, body, 1_614_265_330),
            Ok(())
        );
        let unprefixed = secret.trim_start_matches("whsec_");
        assert_eq!(
            verify(Scheme::Standard, unprefixed, &headers, body, 1_614_265_330),
            Ok(())
        );
        assert!(matches!(
            verify(
                Scheme::Standard,
                secret,
                &headers,
                body,
                1_614_265_330 + 301
            ),
            Err(SignatureError::TimestampOutsideWindow { .. })
        ));
        assert!(matches!(
            verify(
                Scheme::Standard,
                secret,
                &headers,
                body,
                1_614_265_330 - 301
            ),
            Err(SignatureError::TimestampOutsideWindow { .. })
        ));
        let empty = h(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", "v1,"),
        ]);
        assert!(verify(Scheme::Standard, secret, &empty, body, 1_614_265_330).is_err());
    }

    #[test]
    fn every_scheme_round_trips_and_rejects_tampering() {
        let now = 1_700_000_000;
        let secrets = [
            (Scheme::Shopify, "shpss_secret"),
            (Scheme::GitHub, "gh-secret"),
            (Scheme::Stripe, "whsec_stripe_test"),
            (Scheme::Slack, "8f742231b10e8888abcd99yyyzzz85a5"),
            (Scheme::Standard, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ];
        for (scheme, secret) in secrets {
            let body = b"payload=%7B%22a%22%3A1%7D"; // form-encoded: content type never matters
            let headers = Headers::new(sign(scheme, secret, body, now, "msg_1"));
            assert_eq!(
                verify(scheme, secret, &headers, body, now),
                Ok(()),
                "{scheme:?}"
            );
            assert!(
                verify(scheme, secret, &headers, b"payload=x", now).is_err(),
                "{scheme:?}"
            );
            assert!(
                verify(scheme, "other", &headers, body, now).is_err(),
                "{scheme:?}"
            );
            assert!(verify(scheme, secret, &Headers::default(), body, now).is_err());
        }
    }

    #[test]
    fn stripe_accepts_any_of_several_v1_and_checks_the_window() {
        let body = b"{}";
        let good = sign(Scheme::Stripe, "whsec_x", body, 100, "");
        let value = good[0].1.clone();
        let multi = h(&[("stripe-signature", &format!("{value},v1=00ff,v0=zz"))]);
        assert_eq!(verify(Scheme::Stripe, "whsec_x", &multi, body, 100), Ok(()));
        let reordered = h(&[("stripe-signature", &format!("v1=00ff,{value}"))]);
        assert_eq!(
            verify(Scheme::Stripe, "whsec_x", &reordered, body, 100),
            Ok(())
        );
        let err = verify(Scheme::Stripe, "whsec_x", &multi, body, 100 + 600).expect_err("late");
        assert!(
            err.to_string().contains("outside the allowed window"),
            "{err}"
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_for_every_timed_scheme() {
        let body = b"{}";
        for (scheme, secret) in [
            (Scheme::Stripe, "whsec_s"),
            (Scheme::Slack, "slack-secret"),
            (Scheme::Standard, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ] {
            let signed_at = 1_700_000_000;
            let headers = Headers::new(sign(scheme, secret, body, signed_at, "msg_1"));
            for (now, ok) in [
                (signed_at + 299, true),
                (signed_at - 299, true),
                (signed_at + 301, false),
                (signed_at - 301, false),
            ] {
                let r = verify(scheme, secret, &headers, body, now);
                assert_eq!(r.is_ok(), ok, "{scheme:?} at skew {}", now - signed_at);
                if !ok {
                    assert!(
                        r.expect_err("refused")
                            .to_string()
                            .contains("outside the allowed window")
                    );
                }
            }
        }
    }

    #[test]
    fn malformed_headers_are_refused_for_every_scheme() {
        for (scheme, pairs) in [
            (
                Scheme::Shopify,
                vec![("x-shopify-hmac-sha256", "not base64!")],
            ),
            (Scheme::GitHub, vec![("x-hub-signature-256", "sha256=zz")]),
            (Scheme::Stripe, vec![("stripe-signature", "v1=00")]),
            (Scheme::Stripe, vec![("stripe-signature", "t=1700000000")]),
            (
                Scheme::Slack,
                vec![
                    ("x-slack-signature", "abc"),
                    ("x-slack-request-timestamp", "1700000000"),
                ],
            ),
            (
                Scheme::Standard,
                vec![
                    ("webhook-id", "m"),
                    ("webhook-timestamp", "1700000000.5"),
                    ("webhook-signature", "v1,AA=="),
                ],
            ),
        ] {
            let r = verify(
                scheme,
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                &h(&pairs),
                b"{}",
                1_700_000_000,
            );
            assert!(
                matches!(r, Err(SignatureError::Malformed { .. })),
                "{scheme:?} {pairs:?}: {r:?}"
            );
        }
    }

    #[test]
    fn malformed_headers_are_named() {
        let err = verify(
            Scheme::GitHub,
            "s",
            &h(&[("x-hub-signature-256", "md5=00")]),
            b"",
            0,
        )
        .expect_err("malformed");
        assert!(err.to_string().contains("x-hub-signature-256"), "{err}");
        let err = verify(
            Scheme::Slack,
            "s",
            &h(&[
                ("x-slack-signature", "v0=00"),
                ("x-slack-request-timestamp", "-5"),
            ]),
            b"",
            0,
        )
        .expect_err("bad ts");
        assert!(err.to_string().contains("timestamp"), "{err}");
    }
}
