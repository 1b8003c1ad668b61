//! Crash suite (T1): a multi-tenant load of signed webhooks runs while the server is killed
//! with SIGKILL at random points and restarted on the same data directory, cycle after cycle.
//! Small memtables (`--memtable-bytes`) make fjall seal, flush and compact and rotate its
//! journal many times over the run, so kills land during those too.
//!
//! A ledger of what the server acknowledged is checked at the end: every acknowledged delivery
//! ends as exactly one execution (completed, or failed and in the DLQ), the sink sees a step
//! twice only if it was in flight at a kill and then with the same Idempotency-Key, and the
//! server serves again within seconds of each restart.
//!
//! `SLUICE_CRASH_CYCLES` (default 20) sets the number of kills, `SLUICE_CRASH_SEED` replays a
//! run (the seed is printed).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Server, Sink, github_headers};
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::Mutex;

const SECRET: &str = "crash-cycles-secret";
const TENANTS: [&str; 3] = ["default", "c2", "c3"];
/// Concurrent senders during a cycle.
const SENDERS: usize = 12;
/// Executions one tenant runs at once (the server's flag; bounds the steps in flight).
const TENANT_CONCURRENCY: usize = 8;
/// Bytes of padding per webhook, so that the store's memtables fill quickly.
const PADDING: usize = 1500;
/// Memtable size given to the server: tiny, to force frequent flushes and compactions.
const MEMTABLE_BYTES: &str = "65536";
/// A restart must serve again within this (generous for a loaded 2-core machine).
const RESTART_BOUND: Duration = Duration::from_secs(10);

/// What the sender knows about one delivery.
#[derive(Debug, Clone)]
enum Answer {
    /// 202 or 200-duplicate: durable, with its event id.
    Acked(String),
    /// No answer (the server died mid-request): may or may not have been persisted.
    Unknown,
}

#[derive(Debug, Clone)]
struct Delivery {
    tenant: &'static str,
    id: String,
    n: u64,
    answer: Answer,
}

type Ledger = Arc<Mutex<Vec<Delivery>>>;
/// Calls the sink received per (tenant, n): how many, and with which Idempotency-Keys.
type SinkCalls = HashMap<(String, u64), (usize, HashSet<Option<String>>)>;

fn body(tenant: &str, n: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "tenant": tenant,
        "n": n,
        "padding": "x".repeat(PADDING),
    }))
    .expect("json")
}

/// Sends one delivery; `None` when the server gave no usable answer.
async fn send_one(
    client: &reqwest::Client,
    url: &str,
    tenant: &str,
    id: &str,
    n: u64,
) -> Option<(u16, String)> {
    let b = body(tenant, n);
    let mut req = client
        .post(url)
        .timeout(Duration::from_secs(20))
        .body(b.clone());
    for (k, v) in github_headers(SECRET, &b, "push", id) {
        req = req.header(k, v);
    }
    let r = req.send().await.ok()?;
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.ok()?;
    if status >= 500 {
        return None;
    }
    assert!(
        status == 202 || status == 200,
        "{tenant}/{id}: unexpected {status} {v}"
    );
    Some((status, v["eventId"].as_str()?.to_owned()))
}

/// Re-sends every delivery whose answer was lost, as a provider would, until each is acked.
async fn resolve_unknowns(server: &Server, urls: &HashMap<&str, String>, ledger: &Ledger) {
    let mut all = ledger.lock().await;
    for d in all.iter_mut() {
        if matches!(d.answer, Answer::Unknown) {
            let url = format!("{}{}", server.base, urls[d.tenant]);
            let (_, event) = send_one(&server.client, &url, d.tenant, &d.id, d.n)
                .await
                .expect("a live server answers a redelivery");
            d.answer = Answer::Acked(event);
        }
    }
}

/// Starts the server and measures the time until it acknowledges a webhook.
async fn restart(dir: &std::path::Path, urls: &HashMap<&str, String>) -> (Server, Duration) {
    let clock = Instant::now();
    let server = Server::start_with(
        dir,
        &[
            "--memtable-bytes",
            MEMTABLE_BYTES,
            "--tenant-concurrency",
            &TENANT_CONCURRENCY.to_string(),
        ],
    );
    // Serving means answering a webhook durably, not only listening.
    if !urls.is_empty() {
        let url = format!("{}{}", server.base, urls["default"]);
        loop {
            if send_one(&server.client, &url, "default", "probe", 0)
                .await
                .is_some()
            {
                break;
            }
            assert!(clock.elapsed() < RESTART_BOUND, "server not serving");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    (server, clock.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sigkills_lose_and_double_nothing_acknowledged() {
    let cycles: usize = std::env::var("SLUICE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("SLUICE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
    eprintln!("crash cycles: {cycles}, seed: {seed} (SLUICE_CRASH_SEED={seed} replays)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start_with_delay(Duration::from_millis(5)).await;
    let (mut server, _) = restart(dir.path(), &HashMap::new()).await;
    let mut urls: HashMap<&str, String> = HashMap::new();
    for tenant in TENANTS {
        server.tenant(tenant).await;
        let url = server.webhook(tenant, "github", SECRET).await;
        urls.insert(
            tenant,
            url.strip_prefix(&server.base).expect("url").to_owned(),
        );
        server
            .live_flow(
                tenant,
                &json!({
                    "name": "push_to_sink",
                    "trigger": {"type": "event", "source": "github", "event": "push"},
                    "steps": [
                        {"name": "forward", "type": "action", "connector": "http", "action": "request",
                         "retry": {"maxAttempts": 5, "backoff": "fixed", "initialDelayMs": 50},
                         "input": {"method": "POST", "url": sink.url,
                                   "body": {"tenant": tenant, "n": "{{trigger.n}}"}}},
                        {"name": "record", "type": "action", "mapping": {"n": "{{trigger.n}}"}}
                    ]
                }),
            )
            .await;
    }

    let ledger: Ledger = Arc::default();
    let counter = Arc::new(AtomicUsize::new(1));
    let mut restart_times = Vec::new();
    let mut kills_mid_flight = 0;
    for cycle in 0..cycles {
        resolve_unknowns(&server, &urls, &ledger).await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut senders = tokio::task::JoinSet::new();
        for s in 0..SENDERS {
            let (stop, ledger, counter) = (stop.clone(), ledger.clone(), counter.clone());
            let client = server.client.clone();
            let tenant = TENANTS[s % TENANTS.len()];
            let url = format!("{}{}", server.base, urls[tenant]);
            senders.spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let n = counter.fetch_add(1, Ordering::SeqCst) as u64;
                    let id = format!("{tenant}-{n}");
                    let answer = match send_one(&client, &url, tenant, &id, n).await {
                        Some((202, e)) => Answer::Acked(e),
                        Some((s, e)) => panic!("new delivery {id} answered {s} ({e})"),
                        None => Answer::Unknown,
                    };
                    let unknown = matches!(answer, Answer::Unknown);
                    ledger.lock().await.push(Delivery {
                        tenant,
                        id,
                        n,
                        answer,
                    });
                    if unknown {
                        break;
                    }
                }
            });
        }
        let delay = Duration::from_millis(rng.random_range(100..1200));
        tokio::time::sleep(delay).await;
        let received = sink.received().len();
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        while let Some(r) = senders.join_next().await {
            r.expect("sender");
        }
        // Did the kill catch steps in flight (the sink still being called)?
        let acked = ledger
            .lock()
            .await
            .iter()
            .filter(|d| matches!(d.answer, Answer::Acked(_)))
            .count();
        if received < acked {
            kills_mid_flight += 1;
        }
        let (s, took) = restart(dir.path(), &urls).await;
        server = s;
        eprintln!(
            "cycle {cycle}: killed after {delay:?}, {acked} acked so far, serving again in {took:?}"
        );
        restart_times.push(took);
    }
    resolve_unknowns(&server, &urls, &ledger).await;

    // The ledger: tenant → event id → delivery.
    let ledger = ledger.lock().await.clone();
    let mut expected: HashMap<&str, HashMap<String, u64>> = HashMap::new();
    for d in &ledger {
        let Answer::Acked(event) = &d.answer else {
            unreachable!("all resolved")
        };
        let previous = expected
            .entry(d.tenant)
            .or_default()
            .insert(event.clone(), d.n);
        assert!(previous.is_none(), "two deliveries got one event id: {d:?}");
    }
    let total: usize = expected.values().map(HashMap::len).sum();
    eprintln!("{total} deliveries acknowledged over {cycles} kills");

    // Every acknowledged delivery ends as exactly one execution (the probe delivery too),
    // once the backlog left by the last kill has drained.
    server.wait_drained(Duration::from_secs(60)).await;
    for tenant in TENANTS {
        let want = expected.get(tenant).map_or(0, HashMap::len) + usize::from(tenant == "default");
        let execs = server
            .wait_executions(tenant, 120, |e| {
                e.len() >= want
                    && e.iter()
                        .all(|x| x["status"] == "completed" || x["status"] == "failed")
            })
            .await;
        let mut seen = HashSet::new();
        for e in &execs {
            let event = e["eventId"].as_str().expect("eventId").to_owned();
            assert!(
                seen.insert(event.clone()),
                "{tenant}: two executions for {event}"
            );
        }
        assert_eq!(execs.len(), want, "{tenant}: one execution per delivery");
        for event in expected.get(tenant).into_iter().flat_map(HashMap::keys) {
            assert!(seen.contains(event), "{tenant}: acked {event} never ran");
        }
        let failed: Vec<_> = execs.iter().filter(|e| e["status"] == "failed").collect();
        if !failed.is_empty() {
            let (_, dlq) = server
                .get_json(&format!("/tenants/{tenant}/dlq?limit=500"))
                .await;
            let in_dlq = dlq["items"].as_array().map_or(0, Vec::len);
            assert!(
                in_dlq >= failed.len(),
                "{tenant}: failed executions not in DLQ"
            );
        }
    }

    // The sink: every delivery arrived; repeats only with the same key, and only as many as
    // steps can be in flight at the kills.
    let mut by_delivery: SinkCalls = HashMap::new();
    for r in sink.received() {
        let key = (
            r.body["tenant"].as_str().expect("tenant").to_owned(),
            r.body["n"].as_u64().expect("n"),
        );
        let entry = by_delivery.entry(key).or_default();
        entry.0 += 1;
        entry.1.insert(r.idempotency_key);
    }
    for (tenant, events) in &expected {
        for n in events.values() {
            assert!(
                by_delivery.contains_key(&((*tenant).to_owned(), *n)),
                "{tenant}/{n} never reached the sink"
            );
        }
    }
    assert!(
        by_delivery.values().all(|(_, keys)| keys.len() == 1),
        "a repeated call changed its Idempotency-Key"
    );
    let repeats: usize = by_delivery.values().map(|(c, _)| c - 1).sum();
    let bound = cycles * TENANTS.len() * TENANT_CONCURRENCY;
    assert!(
        repeats <= bound,
        "{repeats} repeated calls, more than the {bound} steps that can be in flight at {cycles} kills"
    );

    // The data directory went through flushes (and so journal rotations) and compactions.
    let tables = count_files(dir.path());
    let slowest = restart_times.iter().max().copied().unwrap_or_default();
    let mean = restart_times.iter().sum::<Duration>() / restart_times.len().max(1) as u32;
    eprintln!(
        "restart to first ack: mean {mean:?}, max {slowest:?}; {repeats} repeated sink calls; \
         {kills_mid_flight} kills with calls in flight; {tables} files in the data directory"
    );
    assert!(slowest < RESTART_BOUND);
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() { count_files(&p) } else { 1 }
                })
                .sum()
        })
        .unwrap_or(0)
}
