//! `sluice-loadtest`: sends correctly signed webhooks to a running Sluice over HTTP.
//!
//! Today it registers a GitHub webhook endpoint on a tenant, sends `--count` signed `push`
//! deliveries with `--concurrency` in flight, and reports what the server answered and the
//! elapsed time. It measures only what it did; the open-loop generator, scenarios and
//! baseline comparison come with the load-test issue.

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Semaphore;

/// Send signed webhooks to a running Sluice server.
#[derive(Debug, Parser)]
struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// Admin API key (`x-fastn-api-key`).
    #[arg(long, env = "SLUICE_ADMIN_KEY")]
    api_key: String,
    /// Space id (`x-fastn-space-id`).
    #[arg(long, env = "SLUICE_SPACE_ID")]
    space: String,
    /// Tenant to send for.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Deliveries to send.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Deliveries in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let client = reqwest::Client::new();
    let secret = format!("lt-{}", uuid::Uuid::now_v7().simple());
    let created: Value = client
        .post(format!(
            "{}/api/v1/tenants/{}/webhooks",
            args.base, args.tenant
        ))
        .header("x-fastn-api-key", &args.api_key)
        .header("x-fastn-space-id", &args.space)
        .json(&json!({"connector": "github", "secret": secret}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let url = format!(
        "{}{}",
        args.base,
        created["url"].as_str().ok_or("no url in the answer")?
    );
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.count);
    for n in 0..args.count {
        let permit = gate.clone().acquire_owned().await?;
        let (client, url, secret) = (client.clone(), url.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let body =
                serde_json::to_vec(&json!({"ref": "refs/heads/main", "n": n})).unwrap_or_default();
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .expect("HMAC accepts keys of any length");
            mac.update(&body);
            let sig = format!("sha256={}", hex_lower(&mac.finalize().into_bytes()));
            let answer = client
                .post(&url)
                .header("x-hub-signature-256", sig)
                .header("x-github-event", "push")
                .header("x-github-delivery", uuid::Uuid::now_v7().to_string())
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            drop(permit);
            answer.map(|r| r.status().as_u16()).unwrap_or(0)
        }));
    }
    let mut by_status = std::collections::BTreeMap::new();
    for t in tasks {
        *by_status.entry(t.await.unwrap_or(0)).or_insert(0usize) += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sent {} signed deliveries to {url} in {secs:.3} s ({:.0}/s, concurrency {})",
        args.count,
        args.count as f64 / secs.max(1e-9),
        args.concurrency
    );
    for (status, n) in by_status {
        let label = if status == 0 {
            "transport error".to_owned()
        } else {
            status.to_string()
        };
        println!("  {label}: {n}");
    }
    Ok(())
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
