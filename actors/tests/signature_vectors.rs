//! The shared signature vectors (`../shared/fixtures/webhook-signatures/signature-vectors.json`,
//! collected from the providers' docs and reference libraries, not written here) all give the
//! expected verdict. Skipped, with a message, when the folder is absent.

use std::path::Path;

use serde_json::Value;
use sluice_actors::pipeline::Headers;
use sluice_actors::pipeline::signature::{Scheme, verify};

fn scheme(name: &str) -> Option<Scheme> {
    match name {
        "standard-webhooks" => Some(Scheme::Standard),
        "github" => Some(Scheme::GitHub),
        "stripe" => Some(Scheme::Stripe),
        "shopify" => Some(Scheme::Shopify),
        "slack" => Some(Scheme::Slack),
        _ => None,
    }
}

fn num(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

#[test]
fn shared_signature_vectors_give_the_expected_verdict() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/webhook-signatures");
    let Ok(text) = std::fs::read_to_string(dir.join("signature-vectors.json")) else {
        eprintln!("skipped: ../shared/fixtures/webhook-signatures is absent");
        return;
    };
    let doc: Value = serde_json::from_str(&text).expect("vectors are JSON");
    let mut checked = 0;
    for (i, v) in doc["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .enumerate()
    {
        let Some(scheme) = v["scheme"].as_str().and_then(scheme) else {
            eprintln!("vector {i}: scheme {} not handled here", v["scheme"]);
            continue;
        };
        let secret = v["secret"].as_str().expect("secret");
        let body = match (v["payload"].as_str(), v["payload_file"].as_str()) {
            (Some(p), _) => p.as_bytes().to_vec(),
            (None, Some(f)) => std::fs::read(dir.join(f)).expect("payload file"),
            _ => panic!("vector {i} has no payload"),
        };
        let expect = v["expect"].as_str().unwrap_or("valid");
        if let Some(bad) = v["invalid_timestamps"].as_array() {
            for ts in bad {
                let mut pairs = vec![
                    ("webhook-id".to_owned(), "msg_x".to_owned()),
                    ("webhook-signature".to_owned(), "v1,AAAA".to_owned()),
                ];
                pairs.push(("webhook-timestamp".into(), ts.as_str().unwrap_or("").into()));
                let r = verify(scheme, secret, &Headers::new(pairs), &body, 1_614_265_330);
                assert!(r.is_err(), "vector {i}: timestamp {ts} must be refused");
                checked += 1;
            }
            continue;
        }
        let headers = Headers::new(
            v["headers"]
                .as_object()
                .expect("headers")
                .iter()
                .map(|(k, x)| (k.clone(), x.as_str().unwrap_or("").to_owned())),
        );
        let now = num(&v["now"]).or_else(|| num(&v["timestamp"])).unwrap_or(0);
        let result = verify(scheme, secret, &headers, &body, now);
        if expect.starts_with("valid") {
            assert_eq!(result, Ok(()), "vector {i} ({}) should verify", v["scheme"]);
        } else {
            assert!(
                result.is_err(),
                "vector {i} ({}) should be refused: {expect}",
                v["scheme"]
            );
        }
        checked += 1;
    }
    assert!(checked >= 8, "too few vectors checked: {checked}");
    eprintln!("{checked} shared signature vectors checked");
}
