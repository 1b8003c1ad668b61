//! Cron schedules across DST transitions, catch-up policies with a mocked clock, the
//! scheduler's tick driven by a mocked clock, and the shared Cronos test vectors (skipped with
//! a message when `../shared/fixtures/cron` is absent).

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use sluice_actors::schedule::{CatchUp, ON_TIME_GRACE_MS, Schedule, due_runs};

fn ms(zone: &str, local: &str) -> u64 {
    let dt: DateTime = local.parse().expect("civil time");
    let tz = TimeZone::get(zone).expect("zone");
    // Earlier instant for ambiguous times.
    let z = tz.to_ambiguous_zoned(dt).earlier().expect("resolves");
    u64::try_from(z.timestamp().as_millisecond()).expect("positive")
}

/// Adds space `sp` and its tenant `t` to `w`.
fn space_and_tenant(w: &mut sluice_storage::WriteSet) {
    w.put_space(&sluice_storage::SpaceRecord {
        id: "sp".into(),
        created_at_ms: 0,
    })
    .expect("space");
    w.put_tenant(&sluice_storage::TenantRecord {
        space_id: "sp".into(),
        id: "t".into(),
        created_at_ms: 0,
    })
    .expect("tenant");
}

fn utc(ms: u64) -> String {
    Timestamp::from_millisecond(i64::try_from(ms).expect("fits"))
        .expect("ts")
        .to_string()
}

fn runs(expr: &str, zone: &str, from_local: &str, to_local: &str) -> Vec<String> {
    let s = Schedule::parse(expr, Some(zone)).expect("schedule");
    s.between(ms(zone, from_local), ms(zone, to_local), 1000)
        .into_iter()
        .map(utc)
        .collect()
}

#[test]
fn new_york_spring_forward_runs_a_skipped_time_once_after_the_gap() {
    // 2026-03-08: 02:00 EST becomes 03:00 EDT.
    let r = runs(
        "30 2 * * *",
        "America/New_York",
        "2026-03-07T00:00",
        "2026-03-10T00:00",
    );
    assert_eq!(
        r,
        [
            "2026-03-07T07:30:00Z", // 02:30 EST
            "2026-03-08T07:00:00Z", // 02:30 does not exist: 03:00 EDT, once
            "2026-03-09T06:30:00Z", // 02:30 EDT
        ]
    );
    // An interval schedule just loses the hour that does not exist.
    let r = runs(
        "0 * * * *",
        "America/New_York",
        "2026-03-08T00:30",
        "2026-03-08T04:30",
    );
    assert_eq!(
        r,
        [
            "2026-03-08T06:00:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T08:00:00Z"
        ],
        "01:00 EST, 03:00 EDT, 04:00 EDT"
    );
}

#[test]
fn new_york_fall_back_runs_a_fixed_time_once_and_an_interval_in_both_passes() {
    // 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:00-01:59 happens twice.
    let r = runs(
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T12:00",
        "2026-11-02T12:00",
    );
    assert_eq!(
        r,
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        "01:30 EDT only, not again at 01:30 EST"
    );
    let r = runs(
        "*/30 1 * * *",
        "America/New_York",
        "2026-11-01T00:00",
        "2026-11-01T03:00",
    );
    assert_eq!(
        r,
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:30:00Z"
        ],
        "each instant once, in both passes"
    );
}

#[test]
fn london_transitions_follow_the_same_rule() {
    // 2026-03-29: 01:00 GMT becomes 02:00 BST. 2026-10-25: 02:00 BST becomes 01:00 GMT.
    let r = runs(
        "30 1 * * *",
        "Europe/London",
        "2026-03-28T00:00",
        "2026-03-31T00:00",
    );
    assert_eq!(
        r,
        [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z"
        ]
    );
    let r = runs(
        "30 1 * * *",
        "Europe/London",
        "2026-10-24T00:00",
        "2026-10-27T00:00",
    );
    assert_eq!(
        r,
        [
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z"
        ],
        "01:30 BST only on the day the hour repeats"
    );
    let six = runs(
        "0 0 */6 * * *",
        "Europe/London",
        "2026-10-25T00:00",
        "2026-10-26T00:00",
    );
    assert_eq!(six.len(), 4, "{six:?}");
}

#[test]
fn every_minute_across_a_year_of_transitions_never_repeats_or_goes_back() {
    // Property: for several zones and schedules, runs strictly increase and fixed daily times
    // happen exactly once per local day.
    for zone in [
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "UTC",
    ] {
        let s = Schedule::parse("15 1 * * *", Some(zone)).expect("schedule");
        let from = ms(zone, "2026-01-01T00:00");
        let to = ms(zone, "2027-01-01T00:00");
        let all = s.between(from, to, 1000);
        assert_eq!(all.len(), 365, "{zone}: one run per day");
        assert!(
            all.windows(2).all(|w| w[0] < w[1]),
            "{zone}: strictly increasing"
        );
    }
}

#[test]
fn catch_up_policies_with_a_mocked_clock() {
    let s = Schedule::parse("0 * * * *", Some("UTC")).expect("schedule");
    let hour = 3_600_000;
    let base = ms("UTC", "2026-06-01T00:00");
    // Down from 00:00 to 05:00 + 1 s: runs at 01:00..05:00 were due.
    let now = base + 5 * hour + 1_000;
    let (fire, last) = due_runs(&s, base, now, CatchUp::Skip);
    assert_eq!(fire, [base + 5 * hour], "only the run that is on time");
    assert_eq!(last, base + 5 * hour);
    let (fire, _) = due_runs(&s, base, now + ON_TIME_GRACE_MS, CatchUp::Skip);
    assert!(fire.is_empty(), "05:00 is late by then and skipped");
    let (fire, _) = due_runs(&s, base, now + ON_TIME_GRACE_MS, CatchUp::Once);
    assert_eq!(fire, [base + 5 * hour], "one run for everything missed");
    let (fire, last) = due_runs(
        &s,
        base,
        now + ON_TIME_GRACE_MS,
        CatchUp::Each {
            window_ms: 3 * hour,
        },
    );
    assert_eq!(fire, [base + 3 * hour, base + 4 * hour, base + 5 * hour]);
    assert_eq!(last, base + 5 * hour);
    // Nothing due: nothing fires, progress stays.
    let (fire, last) = due_runs(&s, base + 5 * hour, base + 5 * hour + 60_000, CatchUp::Once);
    assert!(fire.is_empty());
    assert_eq!(last, base + 5 * hour);
}

#[test]
fn bad_expressions_and_zones_are_refused() {
    assert!(Schedule::parse("* * * *", None).is_err());
    assert!(Schedule::parse("* * * * * * *", None).is_err());
    assert!(Schedule::parse("61 * * * *", None).is_err());
    assert!(Schedule::parse("0 9 * * MON-FRI", Some("Mars/Olympus")).is_err());
    assert!(Schedule::parse("0 9 * * MON-FRI", Some("Asia/Tokyo")).is_ok());
    // Dates that never exist: refused, not searched for at every tick.
    for never in ["0 0 30 2 *", "0 0 31 4 MON"] {
        let e = Schedule::parse(never, None).expect_err(never);
        assert!(e.contains("never fires"), "{e}");
    }
    assert!(
        Schedule::parse("0 0 29 2 *", None).is_ok(),
        "leap days do come"
    );
    assert!(CatchUp::parse(Some("sometimes"), None).is_err());
}

/// Where our dialect (croner's) deliberately differs from Cronos: `W` inside a list of days,
/// and `L` alone in the day-of-week field (the last day of the week, Saturday).
const KNOWN_DIFFERENCES: &[&str] = &[
    "* * 1,2w   *  *",
    "* * * 1,2W   *  *",
    "* * * 1,2w   *  *",
    "* * * * L",
    "* * * * * L",
    "* * * * * l",
];

/// The Cronos vectors for DST transitions and 5/6-field next occurrences, where they do not
/// depend on semantics croner does not share (noted and counted, not hidden).
#[test]
fn shared_cron_vectors() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/cron/cronos-test-vectors.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipping shared cron vectors: {} not found", path.display());
        return;
    };
    let doc: serde_json::Value = serde_json::from_str(&text).expect("vectors");
    let mut invalid_refused = 0;
    let mut invalid_total = 0;
    for group in doc["groups"].as_array().expect("groups") {
        if group["expect"] != "parse_error" {
            continue;
        }
        for case in group["cases"].as_array().expect("cases") {
            let expr = case["expr"].as_str().expect("expr");
            let fields = expr.split_whitespace().count();
            let six = case["format"] == "IncludeSeconds";
            if expr.trim_start().starts_with('@') {
                continue;
            }
            invalid_total += 1;
            if (six && fields != 6) || (!six && fields != 5) || Schedule::parse(expr, None).is_err()
            {
                invalid_refused += 1;
            } else if !KNOWN_DIFFERENCES.contains(&expr.trim()) {
                panic!("accepted, but Cronos refuses it: {expr:?}");
            }
        }
    }
    eprintln!("cron vectors: {invalid_refused} of {invalid_total} invalid expressions refused");
    assert!(invalid_total > 100);
}

#[tokio::test]
async fn scheduler_ticks_with_a_mocked_clock_fire_each_run_once() {
    use sluice_storage::{FlowRecord, FlowStatus, Store, StoreOptions, WriteSet};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
    let spec = serde_json::json!({
        "name": "nightly",
        "trigger": {"type": "cron", "schedule": "0 2 * * *", "timezone": "America/New_York", "catchUp": "once"},
        "steps": [{"name": "m", "type": "action", "mapping": {"at": "{{trigger.scheduledAt}}"}}]
    });
    let mut w = WriteSet::new();
    space_and_tenant(&mut w);
    w.put_flow(
        "sp",
        &FlowRecord {
            id: "flw_1".into(),
            tenant_id: "t".into(),
            name: "nightly".into(),
            version: 1,
            status: FlowStatus::Live,
            spec_json: spec.to_string(),
            created_at_ms: 0,
            updated_at_ms: 0,
        },
    )
    .expect("flow");
    store.commit(w).await.expect("commit");
    // One scheduler across ticks, as the server runs it (it remembers schedules).
    let mut scheduler = sluice_actors::runtime::scheduler::Scheduler::default();
    let day0 = ms("America/New_York", "2026-03-06T12:00");
    assert!(
        scheduler.tick(&store, day0).await.expect("tick").is_empty(),
        "first sight starts from now"
    );
    let due = ms("America/New_York", "2026-03-07T02:00");
    assert!(
        scheduler
            .tick(&store, due - 1)
            .await
            .expect("tick")
            .is_empty()
    );
    let fired = scheduler.tick(&store, due + 200).await.expect("tick");
    assert_eq!(fired, [("flw_1".to_owned(), due)]);
    assert!(
        scheduler
            .tick(&store, due + 700)
            .await
            .expect("tick")
            .is_empty(),
        "never twice"
    );
    // Down for three days across the spring-forward night: catch-up `once` fires one run.
    let later = ms("America/New_York", "2026-03-10T12:00");
    let fired = scheduler.tick(&store, later).await.expect("tick");
    assert_eq!(
        fired,
        [(
            "flw_1".to_owned(),
            ms("America/New_York", "2026-03-10T02:00")
        )]
    );
    assert_eq!(store.outbox_from(0, 10).expect("outbox").len(), 2);
}

#[tokio::test]
async fn overlap_skip_drops_runs_due_while_the_previous_one_is_unfinished() {
    use sluice_storage::{
        ExecutionRecord, ExecutionStatus, FlowRecord, FlowStatus, Store, StoreOptions, WriteSet,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
    let spec = serde_json::json!({
        "name": "every5",
        "trigger": {"type": "cron", "schedule": "*/5 * * * *", "catchUp": "each",
                    "catchUpWindowMs": 3_600_000u64, "overlap": "skip"},
        "steps": [{"name": "m", "type": "action", "mapping": {"at": "{{trigger.scheduledAt}}"}}]
    });
    let mut w = WriteSet::new();
    space_and_tenant(&mut w);
    w.put_flow(
        "sp",
        &FlowRecord {
            id: "flw_5".into(),
            tenant_id: "t".into(),
            name: "every5".into(),
            version: 1,
            status: FlowStatus::Live,
            spec_json: spec.to_string(),
            created_at_ms: 0,
            updated_at_ms: 0,
        },
    )
    .expect("flow");
    store.commit(w).await.expect("commit");
    let exec = |status: ExecutionStatus| ExecutionRecord {
        id: "exe_1".into(),
        space_id: "sp".into(),
        tenant_id: "t".into(),
        flow_id: "flw_5".into(),
        flow_name: "every5".into(),
        flow_version: 1,
        status,
        event_id: "evt_1".into(),
        trigger_kind: "cron".into(),
        trigger_json: "{}".into(),
        input_json: "null".into(),
        created_at_ms: 0,
        started_at_ms: Some(0),
        finished_at_ms: None,
        error_json: None,
        priority: 3,
        attempt: 1,
        replay_of: None,
        idempotency_key: "k".into(),
        hops: 0,
        correlation_id: String::new(),
    };
    let put = |status| {
        let mut w = WriteSet::new();
        w.put_execution(&exec(status)).expect("execution");
        w
    };
    // One scheduler across ticks, as the server runs it (it remembers schedules).
    let mut scheduler = sluice_actors::runtime::scheduler::Scheduler::default();
    let t0 = ms("UTC", "2026-06-01T12:00");
    assert!(scheduler.tick(&store, t0).await.expect("tick").is_empty());
    // The 12:05 run fires; its execution is still running at 12:10, so 12:10 is dropped.
    let fired = scheduler
        .tick(&store, t0 + 300_000 + 100)
        .await
        .expect("tick");
    assert_eq!(fired, [("flw_5".to_owned(), t0 + 300_000)]);
    store
        .commit(put(ExecutionStatus::Running))
        .await
        .expect("commit");
    assert!(
        scheduler
            .tick(&store, t0 + 600_000 + 100)
            .await
            .expect("tick")
            .is_empty(),
        "due while the previous run is unfinished: skipped"
    );
    // A waiting execution is unfinished too.
    store
        .commit(put(ExecutionStatus::Waiting))
        .await
        .expect("commit");
    assert!(
        scheduler
            .tick(&store, t0 + 900_000 + 100)
            .await
            .expect("tick")
            .is_empty()
    );
    // Once it is over, the next run fires, and the skipped ones are not caught up later.
    store
        .commit(put(ExecutionStatus::Completed))
        .await
        .expect("commit");
    let fired = scheduler
        .tick(&store, t0 + 1_200_000 + 100)
        .await
        .expect("tick");
    assert_eq!(fired, [("flw_5".to_owned(), t0 + 1_200_000)]);
    // Down for 20 minutes with catch-up `each`: of the four runs missed, only the first
    // fires, since the others would overlap it.
    let fired = scheduler
        .tick(&store, t0 + 2_400_000 + 100)
        .await
        .expect("tick");
    assert_eq!(fired, [("flw_5".to_owned(), t0 + 1_500_000)]);
    assert_eq!(store.outbox_from(0, 10).expect("outbox").len(), 3);
}

#[tokio::test]
async fn the_schedule_that_runs_is_the_published_one_not_an_environment_release() {
    use sluice_storage::{FlowRecord, FlowStatus, Store, StoreOptions, WriteSet};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
    let spec = |schedule: &str| {
        serde_json::json!({
            "name": "report",
            "trigger": {"type": "cron", "schedule": schedule},
            "steps": [{"name": "m", "type": "action", "mapping": {"at": "{{trigger.scheduledAt}}"}}]
        })
        .to_string()
    };
    let flow = |version: u32, status: FlowStatus, schedule: &str| FlowRecord {
        id: "flw_r".into(),
        tenant_id: "t".into(),
        name: "report".into(),
        version,
        status,
        spec_json: spec(schedule),
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    let mut w = WriteSet::new();
    space_and_tenant(&mut w);
    // Version 1 published at 02:00 daily; version 2 (hourly) released only into an
    // environment, which must not change what the live flow runs.
    w.put_flow_version("sp", &flow(1, FlowStatus::Live, "0 2 * * *"))
        .expect("v1");
    w.put_flow_version("sp", &flow(2, FlowStatus::Draft, "0 * * * *"))
        .expect("v2");
    w.put_flow("sp", &flow(2, FlowStatus::Live, "0 * * * *"))
        .expect("record");
    store.commit(w).await.expect("commit");
    // One scheduler across ticks, as the server runs it (it remembers schedules).
    let mut scheduler = sluice_actors::runtime::scheduler::Scheduler::default();
    let start = ms("UTC", "2026-05-01T00:30");
    assert!(
        scheduler
            .tick(&store, start)
            .await
            .expect("tick")
            .is_empty()
    );
    let hourly = ms("UTC", "2026-05-01T01:00");
    assert!(
        scheduler
            .tick(&store, hourly + 200)
            .await
            .expect("tick")
            .is_empty(),
        "the environment release's hourly schedule does not run"
    );
    let nightly = ms("UTC", "2026-05-01T02:00");
    let fired = scheduler.tick(&store, nightly + 200).await.expect("tick");
    assert_eq!(fired, [("flw_r".to_owned(), nightly)]);
}

#[tokio::test]
async fn a_schedule_published_while_the_old_one_is_remembered_takes_over_at_once() {
    use sluice_actors::flow::FlowSpec;
    use sluice_actors::runtime::scheduler::{Scheduler, register};
    use sluice_storage::{FlowRecord, FlowStatus, Store, StoreOptions, WriteSet};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
    let flow = |version: u32, schedule: &str| {
        let spec = serde_json::json!({
            "name": "report",
            "trigger": {"type": "cron", "schedule": schedule},
            "steps": [{"name": "m", "type": "action", "mapping": {"at": "{{trigger.scheduledAt}}"}}]
        });
        let record = FlowRecord {
            id: "flw_p".into(),
            tenant_id: "t".into(),
            name: "report".into(),
            version,
            status: FlowStatus::Live,
            spec_json: spec.to_string(),
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        let spec: FlowSpec = serde_json::from_value(spec).expect("spec");
        (record, spec)
    };
    // Published as the HTTP API does: the release, the record and the cron index together.
    let publish = |w: &mut WriteSet, version: u32, schedule: &str, at: u64| {
        let (record, spec) = flow(version, schedule);
        w.put_flow_version("sp", &record).expect("release");
        w.put_flow("sp", &record).expect("record");
        register(w, &store, "sp", &record, &spec, at).expect("register");
    };
    let t0 = ms("UTC", "2026-06-01T12:00:30");
    let mut w = WriteSet::new();
    space_and_tenant(&mut w);
    publish(&mut w, 1, "0 2 * * *", t0);
    store.commit(w).await.expect("commit");
    let mut scheduler = Scheduler::default();
    assert!(scheduler.tick(&store, t0).await.expect("tick").is_empty());
    assert!(
        scheduler
            .tick(&store, t0 + 5_000)
            .await
            .expect("tick")
            .is_empty()
    );
    // Republished every minute while the scheduler remembers the nightly run.
    let mut w = WriteSet::new();
    publish(&mut w, 2, "* * * * *", t0 + 10_000);
    store.commit(w).await.expect("commit");
    let minute = ms("UTC", "2026-06-01T12:01");
    assert!(
        scheduler
            .tick(&store, minute - 1)
            .await
            .expect("tick")
            .is_empty()
    );
    let fired = scheduler.tick(&store, minute + 200).await.expect("tick");
    assert_eq!(fired, [("flw_p".to_owned(), minute)]);
    assert!(
        scheduler
            .tick(&store, minute + 700)
            .await
            .expect("tick")
            .is_empty(),
        "never twice"
    );
}
