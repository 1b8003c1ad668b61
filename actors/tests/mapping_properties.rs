//! Property tests: templates print and re-parse to the same meaning; money arithmetic
//! through `ADD` / `MULTIPLY` / `ROUND` equals exact decimal arithmetic; every date format
//! round-trips through coercion.

use std::str::FromStr;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};
use sluice_actors::mapping::coerce::date::{DateFormat, parse_instant};
use sluice_actors::mapping::template::Template;

fn ctx() -> Value {
    json!({"input": {"name": "Ada", "qty": 3, "price": "19.99", "tags": ["a", "b"], "none": null,
                     "odd key": {"x": 1}},
           "steps": {"s": {"output": {"items": [{"sku": "S1"}], "total": "404.95"}}}})
}

/// Source text of one expression, built from a small grammar.
fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("input.name".to_owned()),
        Just("input.qty".to_owned()),
        Just("input.price".to_owned()),
        Just("input['odd key'].x".to_owned()),
        Just("steps.s.output.items[0].sku".to_owned()),
        Just("input.none".to_owned()),
        Just("missing.path".to_owned()),
        Just("$.input.tags[*]".to_owned()),
        Just("$.steps.s.output.total".to_owned()),
        (-1000i64..1000).prop_map(|n| n.to_string()),
        "[a-zA-Z0-9 ,'\"{}\\\\]{0,8}"
            .prop_map(|s| { format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")) }),
        Just("true".to_owned()),
        Just("null".to_owned()),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| format!("UPPER({a})")),
            inner.clone().prop_map(|a| format!("TRIM({a})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("CONCAT({a},{b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("COALESCE({a}, {b})")),
        ]
    })
}

fn template() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-z {}:.-]{1,6}".prop_map(|t| t.replace("{{", "{ {")),
            expr().prop_map(|e| format!("{{{{ {e} }}}}")),
        ],
        0..4,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn templates_print_and_reparse_to_the_same_meaning(src in template()) {
        // Some generated strings are not templates (text ending in `{` before `{{`); those
        // must be refused, never mis-parsed.
        let Ok(t) = Template::parse(&src) else { return Ok(()) };
        let printed = t.to_string();
        let again = Template::parse(&printed).expect("printed source parses");
        prop_assert_eq!(again.to_string(), printed.clone(), "printing is a fixpoint");
        // Same value, or the same kind of error (positions move with spacing).
        match (again.render(&ctx()), t.render(&ctx())) {
            (Ok(x), Ok(y)) => prop_assert_eq!(x, y, "{} vs {}", src, printed),
            (Err(x), Err(y)) => prop_assert_eq!(
                std::mem::discriminant(&x),
                std::mem::discriminant(&y),
                "{} vs {}",
                src,
                printed
            ),
            (x, y) => prop_assert!(false, "{src} vs {printed}: {x:?} / {y:?}"),
        }
    }

    #[test]
    fn money_arithmetic_is_exact(
        a in -10_000_000i64..10_000_000, a_scale in 0u32..4,
        q in 0i64..1000,
        b in -10_000_000i64..10_000_000, b_scale in 0u32..4,
        places in 0u32..4,
    ) {
        let a = Decimal::new(a, a_scale);
        let b = Decimal::new(b, b_scale);
        let q = Decimal::from(q);
        let src = format!("{{{{ ROUND(ADD(MULTIPLY('{a}', {q}), '{b}'), {places}) }}}}");
        let got = Template::parse(&src).expect("parse").render(&json!({})).expect("render");
        let mut want = (a * q + b).round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero);
        want.rescale(places);
        prop_assert_eq!(got, json!(want.to_string()));
        let got = Template::parse(&format!("{{{{ ADD('{a}', '{b}') }}}}")).expect("parse").render(&json!({})).expect("render");
        prop_assert_eq!(Decimal::from_str(got.as_str().expect("string")).expect("decimal"), a + b);
    }

    #[test]
    fn every_date_format_round_trips(
        seconds in -2_208_988_800i64..4_102_444_800, // 1900-01-01 .. 2100-01-01
        millis in 0i64..1000,
        nanos in 0i64..1_000_000,
    ) {
        for format in DateFormat::ALL {
            let ts = match format {
                DateFormat::MonthDayYear | DateFormat::DayMonthYear | DateFormat::YearMonthDay => {
                    Timestamp::from_second(seconds - seconds.rem_euclid(86_400)).expect("ts")
                }
                DateFormat::UnixSeconds => Timestamp::from_second(seconds).expect("ts"),
                DateFormat::UnixMillis | DateFormat::MsJson => {
                    Timestamp::from_millisecond(seconds * 1000 + millis).expect("ts")
                }
                DateFormat::Rfc3339 => Timestamp::from_nanosecond(
                    i128::from(seconds) * 1_000_000_000 + i128::from(millis * 1_000_000 + nanos),
                )
                .expect("ts"),
            };
            let written = format.render(ts);
            let back = parse_instant(&written, Some(format), &TimeZone::UTC).expect("parse back");
            prop_assert_eq!(back, ts, "{} {}", format.name(), written);
        }
    }
}
