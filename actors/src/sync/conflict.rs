//! Reconciling one record between the two sides of a sync pair (pure).
//!
//! The engine remembers, per record, the last agreed content (the *base*) and the content
//! hash last seen or written on each side. A side has *changed* when its observed content
//! hashes differently from what the engine last saw there — so the engine's own write coming
//! back (an echo) is not a change. When both sides changed to different contents, the pair's
//! strategy decides:
//!
//! | strategy | outcome |
//! |---|---|
//! | `source_wins` | the source's content is written to the target |
//! | `target_wins` | the target's content is written to the source |
//! | `last_write_wins` | the side with the later change time wins (a tie goes to the source) |
//! | `merge` | field by field against the base: a field changed on one side only takes that change; a field changed on both sides takes the later side's value; the result is written wherever it differs |
//! | `manual` | nothing is written; the record is flagged for review |

use std::str::FromStr;

use serde_json::{Map, Value};

use super::hash::content_hash;

/// A pair's conflict strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The source is authoritative.
    SourceWins,
    /// The target is authoritative.
    TargetWins,
    /// The most recent change wins.
    LastWriteWins,
    /// Field-level three-way merge.
    Merge,
    /// Flag for human review.
    Manual,
}

impl Strategy {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceWins => "source_wins",
            Self::TargetWins => "target_wins",
            Self::LastWriteWins => "last_write_wins",
            Self::Merge => "merge",
            Self::Manual => "manual",
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "source_wins" => Self::SourceWins,
            "target_wins" => Self::TargetWins,
            "last_write_wins" => Self::LastWriteWins,
            "merge" => Self::Merge,
            "manual" => Self::Manual,
            other => {
                return Err(format!(
                    "unknown strategy {other:?} (source_wins, target_wins, last_write_wins, merge, manual)"
                ));
            }
        })
    }
}

/// One side's current version of the record.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The record (provider fields).
    pub record: Value,
    /// When that side changed it, Unix ms.
    pub updated_at_ms: u64,
}

/// What the engine knows from before.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    /// Last agreed content.
    pub base: Value,
    /// Hash last seen or written on the source.
    pub source_hash: String,
    /// Hash last seen or written on the target.
    pub target_hash: String,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// No side changed since the engine last saw it (repeats and echoes of its own writes).
    Unchanged,
    /// Both sides changed to the same content: nothing to write.
    Converged(Value),
    /// Write `value` to the sides marked.
    Write {
        /// The content to write.
        value: Value,
        /// Write it to the source.
        to_source: bool,
        /// Write it to the target.
        to_target: bool,
    },
    /// Both changed and the strategy is `manual`.
    Conflict,
}

/// The fields that count: the pair's list, else the keys of the base (so fields a provider
/// adds on its side, such as its own id or timestamps, are not mistaken for changes), else
/// everything.
pub fn effective_fields(pair_fields: &[String], known: Option<&Known>) -> Vec<String> {
    if !pair_fields.is_empty() {
        return pair_fields.to_vec();
    }
    match known.map(|k| &k.base) {
        Some(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// `record` restricted to `fields` (all when empty).
pub fn project(record: &Value, fields: &[String]) -> Value {
    match record {
        Value::Object(map) if !fields.is_empty() => Value::Object(
            map.iter()
                .filter(|(k, _)| fields.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Decides what to do with the observed versions (either side may be absent: not observed
/// this time, assumed unchanged).
pub fn reconcile(
    strategy: Strategy,
    pair_fields: &[String],
    known: Option<&Known>,
    source: Option<&Observed>,
    target: Option<&Observed>,
) -> Outcome {
    let fields = effective_fields(pair_fields, known);
    let hash = |o: &Observed| content_hash(&o.record, &fields);
    let changed = |o: Option<&Observed>, last: Option<&String>| match (o, last) {
        (Some(o), Some(last)) => Some(hash(o)) != Some(last.clone()),
        (Some(_), None) => true,
        (None, _) => false,
    };
    let s_changed = changed(source, known.map(|k| &k.source_hash));
    let t_changed = changed(target, known.map(|k| &k.target_hash));
    match (source, target) {
        (Some(s), _) if s_changed && !t_changed => Outcome::Write {
            value: project(&s.record, &fields),
            to_source: false,
            to_target: true,
        },
        (_, Some(t)) if t_changed && !s_changed => Outcome::Write {
            value: project(&t.record, &fields),
            to_source: true,
            to_target: false,
        },
        (Some(s), Some(t)) if s_changed && t_changed => {
            if hash(s) == hash(t) {
                return Outcome::Converged(project(&s.record, &fields));
            }
            let s_val = project(&s.record, &fields);
            let t_val = project(&t.record, &fields);
            let source_later = s.updated_at_ms >= t.updated_at_ms;
            let winner = match strategy {
                Strategy::Manual => return Outcome::Conflict,
                Strategy::SourceWins => s_val,
                Strategy::TargetWins => t_val,
                Strategy::LastWriteWins if source_later => s_val,
                Strategy::LastWriteWins => t_val,
                Strategy::Merge => {
                    let base = known.map(|k| k.base.clone()).unwrap_or(Value::Null);
                    three_way(&base, &s_val, &t_val, source_later)
                }
            };
            let w_hash = content_hash(&winner, &fields);
            Outcome::Write {
                to_source: w_hash != hash(s),
                to_target: w_hash != hash(t),
                value: winner,
            }
        }
        _ => Outcome::Unchanged,
    }
}

/// Field-level three-way merge of two objects against `base` (top-level fields). A field
/// changed on one side only takes that side's value; a field changed on both sides to
/// different values takes the source's when `source_later`, else the target's. A field
/// removed on one side and untouched on the other is removed.
pub fn three_way(base: &Value, source: &Value, target: &Value, source_later: bool) -> Value {
    let empty = Map::new();
    let b = base.as_object().unwrap_or(&empty);
    let s = source.as_object().unwrap_or(&empty);
    let t = target.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(s.keys()).chain(t.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Map::new();
    for k in keys {
        let (bv, sv, tv) = (b.get(k), s.get(k), t.get(k));
        // Equal sides, or only the source changed, or both changed and the source is later:
        // the source's value; otherwise the target's.
        let chosen = if sv == tv || tv == bv || (sv != bv && source_later) {
            sv
        } else {
            tv
        };
        if let Some(v) = chosen {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn known(base: &Value) -> Known {
        Known {
            base: base.clone(),
            source_hash: content_hash(base, &[]),
            target_hash: content_hash(base, &[]),
        }
    }

    fn obs(record: Value, at: u64) -> Observed {
        Observed {
            record,
            updated_at_ms: at,
        }
    }

    /// Both sides change the same record; the table gives each strategy's outcome.
    #[test]
    fn each_strategy_when_both_sides_change() {
        let base = json!({"email": "a@x", "phone": "1", "name": "Ann"});
        let k = known(&base);
        // Source changes email (earlier); target changes email and phone (later).
        let s = obs(json!({"email": "s@x", "phone": "1", "name": "Ann"}), 100);
        let t = obs(json!({"email": "t@x", "phone": "2", "name": "Ann"}), 200);
        let table = [
            (
                Strategy::SourceWins,
                Outcome::Write {
                    value: s.record.clone(),
                    to_source: false,
                    to_target: true,
                },
            ),
            (
                Strategy::TargetWins,
                Outcome::Write {
                    value: t.record.clone(),
                    to_source: true,
                    to_target: false,
                },
            ),
            (
                Strategy::LastWriteWins,
                Outcome::Write {
                    value: t.record.clone(),
                    to_source: true,
                    to_target: false,
                },
            ),
            (
                // email clashes → later side (target); phone only target → "2"; name same.
                Strategy::Merge,
                Outcome::Write {
                    value: json!({"email": "t@x", "phone": "2", "name": "Ann"}),
                    to_source: true,
                    to_target: false,
                },
            ),
            (Strategy::Manual, Outcome::Conflict),
        ];
        for (strategy, want) in table {
            assert_eq!(
                reconcile(strategy, &[], Some(&k), Some(&s), Some(&t)),
                want,
                "{}",
                strategy.as_str()
            );
        }
    }

    #[test]
    fn merge_takes_disjoint_changes_from_both_sides() {
        let base = json!({"email": "a@x", "phone": "1"});
        let s = obs(json!({"email": "s@x", "phone": "1"}), 300);
        let t = obs(json!({"email": "a@x", "phone": "2"}), 100);
        assert_eq!(
            reconcile(
                Strategy::Merge,
                &[],
                Some(&known(&base)),
                Some(&s),
                Some(&t)
            ),
            Outcome::Write {
                value: json!({"email": "s@x", "phone": "2"}),
                to_source: true,
                to_target: true
            }
        );
    }

    #[test]
    fn echoes_and_single_side_changes() {
        let base = json!({"email": "a@x"});
        let k = known(&base);
        // The engine's own write comes back from the target with provider fields added.
        let echo = obs(json!({"email": "a@x", "id": "T1", "updated_at": 5}), 5);
        assert_eq!(
            reconcile(Strategy::Manual, &[], Some(&k), None, Some(&echo)),
            Outcome::Unchanged
        );
        let changed = obs(json!({"email": "b@x", "id": "T1"}), 6);
        assert_eq!(
            reconcile(Strategy::Manual, &[], Some(&k), None, Some(&changed)),
            Outcome::Write {
                value: json!({"email": "b@x"}),
                to_source: true,
                to_target: false
            }
        );
        // First sight of a record: written to the other side whole.
        let first = obs(json!({"email": "c@x", "name": "C"}), 1);
        assert_eq!(
            reconcile(Strategy::SourceWins, &[], None, Some(&first), None),
            Outcome::Write {
                value: first.record.clone(),
                to_source: false,
                to_target: true
            }
        );
        // Both changed to the same content.
        let same = obs(json!({"email": "z@x"}), 1);
        assert_eq!(
            reconcile(Strategy::Manual, &[], Some(&k), Some(&same), Some(&same)),
            Outcome::Converged(json!({"email": "z@x"}))
        );
        assert!("nope".parse::<Strategy>().is_err());
    }
}
