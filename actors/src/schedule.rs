//! Cron schedules (croner over jiff time zones) and the rules for runs that were missed.
//!
//! # Expressions
//! Five fields (`minute hour day-of-month month day-of-week`) or six (seconds first); no year
//! field. Names (`MON`, `JAN`), ranges, steps, lists, `L`, `W` and `#` are accepted. When both
//! day-of-month and day-of-week are restricted, a day must match both.
//!
//! # Time zones and daylight saving time (the rule)
//! A schedule is read in its IANA time zone (default `UTC`), by wall clock:
//! - **Skipped hour** (clocks go forward, e.g. 02:00→03:00 in `America/New_York` on the second
//!   Sunday of March): a run whose wall-clock time does not exist that day runs once, at the
//!   first instant after the gap (a daily `30 2 * * *` runs at 03:00 that day). Nothing is lost.
//! - **Repeated hour** (clocks go back, e.g. 02:00→01:00 on the first Sunday of November): a
//!   fixed-time schedule (single second, minute and hour) runs once, at the first of the two
//!   instants (a daily `30 1 * * *` runs at 01:30 EDT and not again at 01:30 EST). A schedule
//!   with a wildcard, range or step in its time fields is an interval: it keeps its rhythm on
//!   the real clock and runs in both passes (`*/30 * * * *` runs at 01:00 and 01:30 EDT, then
//!   01:00 and 01:30 EST), each instant once.
//!
//! Every run has a distinct instant (Unix ms), and each instant is fired once: the scheduler
//! records the last instant handled and the outbox deduplicates by (flow, instant).
//!
//! # Missed runs (catch-up)
//! [`due_runs`] decides what fires when the scheduler looks at the clock: runs due within
//! [`ON_TIME_GRACE_MS`] are on time and always fire; older ones were missed (the server was
//! down) and follow the flow's [`CatchUp`] policy.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A run this late or less is on time, not missed, ms.
pub const ON_TIME_GRACE_MS: u64 = 5_000;
/// Most runs one catch-up fires.
pub const MAX_CATCH_UP_RUNS: usize = 1_000;
/// Default window of [`CatchUp::Each`], ms (one day).
pub const DEFAULT_CATCH_UP_WINDOW_MS: u64 = 86_400_000;

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: TimeZone,
}

/// What to do with runs missed while the server was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Drop them.
    Skip,
    /// Run once for all of them (at the latest missed time).
    Once,
    /// Run each of them that falls within the window (ms before now).
    Each {
        /// How far back, ms.
        window_ms: u64,
    },
}

impl CatchUp {
    /// The policy from the trigger's `catchUp` and `catchUpWindowMs`.
    ///
    /// # Errors
    /// An unknown policy name.
    pub fn parse(name: Option<&str>, window_ms: Option<u64>) -> Result<Self, String> {
        match name.unwrap_or("skip") {
            "skip" => Ok(Self::Skip),
            "once" => Ok(Self::Once),
            "each" => Ok(Self::Each {
                window_ms: window_ms.unwrap_or(DEFAULT_CATCH_UP_WINDOW_MS),
            }),
            other => Err(format!("catchUp {other:?} must be one of skip, once, each")),
        }
    }
}

impl Schedule {
    /// Parses a 5- or 6-field expression in time zone `tz` (default `UTC`).
    ///
    /// # Errors
    /// A sentence naming the problem (bad expression, unknown time zone).
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Self, String> {
        let fields = expr.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "schedule {expr:?} must have 5 fields (minute hour day month weekday) or 6 (seconds first)"
            ));
        }
        check_fields(expr)?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .dom_and_dow(true)
            .build()
            .parse(expr)
            .map_err(|e| format!("schedule {expr:?}: {e}"))?;
        let tz = match tz {
            None | Some("UTC") => TimeZone::UTC,
            Some(name) => TimeZone::get(name)
                .map_err(|e| format!("time zone {name:?} is not a known IANA zone: {e}"))?,
        };
        let schedule = Self { cron, tz };
        // A schedule no date matches (`0 0 30 2 *`) would be searched for again at every
        // scheduler tick, ~30 ms of CPU each time, for ever.
        let now = u64::try_from(Timestamp::now().as_millisecond()).unwrap_or_default();
        if schedule.next_after(now).is_none() {
            return Err(format!("schedule {expr:?} never fires: no date matches it"));
        }
        Ok(schedule)
    }

    /// The first run strictly after `after_ms` (Unix ms), if any within croner's search range.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let ts = Timestamp::from_millisecond(i64::try_from(after_ms).ok()?).ok()?;
        let zoned = ts.to_zoned(self.tz.clone());
        let next = self.cron.find_next_occurrence(&zoned, false).ok()?;
        u64::try_from(next.timestamp().as_millisecond()).ok()
    }

    /// Runs in `(after_ms, upto_ms]`, oldest first, at most `limit`.
    pub fn between(&self, after_ms: u64, upto_ms: u64, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let mut cursor = after_ms;
        while out.len() < limit {
            match self.next_after(cursor) {
                Some(t) if t <= upto_ms => {
                    out.push(t);
                    cursor = t;
                }
                _ => break,
            }
        }
        out
    }
}

/// Refuses what croner would accept loosely: empty list items (`,1`) and names in fields that
/// take numbers (`mon` as a day of the month).
fn check_fields(expr: &str) -> Result<(), String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let names = if fields.len() == 6 {
        [
            "seconds",
            "minutes",
            "hours",
            "days of month",
            "months",
            "days of week",
        ]
        .as_slice()
    } else {
        [
            "minutes",
            "hours",
            "days of month",
            "months",
            "days of week",
        ]
        .as_slice()
    };
    for (field, name) in fields.iter().zip(names) {
        if field.split(',').any(str::is_empty) {
            return Err(format!(
                "schedule {expr:?}: {name} field {field:?} has an empty list item"
            ));
        }
        let letters_ok: &[char] = match *name {
            "days of month" => &['L', 'W', 'l', 'w'],
            "months" | "days of week" => &[],
            _ => &[],
        };
        if !matches!(*name, "months" | "days of week")
            && field
                .chars()
                .any(|c| c.is_ascii_alphabetic() && !letters_ok.contains(&c))
        {
            return Err(format!(
                "schedule {expr:?}: {name} field {field:?} takes numbers"
            ));
        }
    }
    Ok(())
}

/// The runs to fire now, given the last instant handled (`last_ms`) and the clock (`now_ms`):
/// on-time runs (due within [`ON_TIME_GRACE_MS`]) always, missed ones per `policy`. The new
/// "last handled" instant is the latest run in `(last_ms, now_ms]` (or `last_ms`).
pub fn due_runs(
    schedule: &Schedule,
    last_ms: u64,
    now_ms: u64,
    policy: CatchUp,
) -> (Vec<u64>, u64) {
    let on_time_from = now_ms.saturating_sub(ON_TIME_GRACE_MS);
    // Never look further back than the catch-up window needs.
    let look_from = match policy {
        CatchUp::Each { window_ms } => last_ms.max(now_ms.saturating_sub(window_ms)),
        CatchUp::Skip => last_ms.max(on_time_from.saturating_sub(1)),
        CatchUp::Once => last_ms,
    };
    let (missed, on_time): (Vec<u64>, Vec<u64>) = match policy {
        CatchUp::Once => {
            // Only the latest missed run matters: find it without walking every occurrence.
            let on_time = schedule.between(
                last_ms.max(on_time_from.saturating_sub(1)),
                now_ms,
                MAX_CATCH_UP_RUNS,
            );
            let latest_missed = latest_before(schedule, last_ms, on_time_from);
            (latest_missed.into_iter().collect(), on_time)
        }
        _ => schedule
            .between(look_from, now_ms, MAX_CATCH_UP_RUNS)
            .into_iter()
            .partition(|&t| t < on_time_from),
    };
    let mut fire = match policy {
        CatchUp::Skip => Vec::new(),
        CatchUp::Once | CatchUp::Each { .. } => missed,
    };
    fire.extend(on_time);
    let last = fire
        .last()
        .copied()
        .into_iter()
        .chain(latest_before(schedule, last_ms, now_ms.saturating_add(1)))
        .max()
        .unwrap_or(last_ms)
        .max(last_ms);
    (fire, last)
}

/// The latest run in `(after_ms, before_ms)`, found by walking backwards from `before_ms`.
fn latest_before(schedule: &Schedule, after_ms: u64, before_ms: u64) -> Option<u64> {
    let ts = Timestamp::from_millisecond(i64::try_from(before_ms).ok()?).ok()?;
    let zoned = ts.to_zoned(schedule.tz.clone());
    let prev = schedule.cron.find_previous_occurrence(&zoned, false).ok()?;
    let prev = u64::try_from(prev.timestamp().as_millisecond()).ok()?;
    (prev > after_ms && prev < before_ms).then_some(prev)
}
