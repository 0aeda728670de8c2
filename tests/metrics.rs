//! `/metrics` against a real nats-server: after successful and failing requests, the body
//! passes a strict check of the Prometheus text format (0.0.4), written here line by line,
//! and its counters are what the test did; label values are escaped; endpoints are counted
//! with the Service API off; nothing is served unless asked; durable endpoints (feature
//! `jetstream`) in families of their own.

#![cfg(feature = "http")]

mod common;
#[path = "common/http_client.rs"]
mod http_client;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use common::app::RunningApp;
use common::{run, NatsServer};
use http_client::get;
use panini::{App, Error, Msg};
use serde_json::{json, Value};

/// A sample's labels, in the order written.
type Labels = Vec<(String, String)>;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

// ---------------------------------------------------------------------------------------
// A strict reader of the text format
// ---------------------------------------------------------------------------------------

/// One sample line.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

/// A checked exposition: its families' types, and its samples in order.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the sample `name` with exactly `labels` (in any order).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeSet<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels.iter().cloned().collect::<BTreeSet<_>>() == want)
            .map(|s| s.value)
    }

    /// The value of `name` with `labels`; panics naming it if absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in {self:#?}"))
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not `__`-prefixed (reserved).
fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// A float as Go's `ParseFloat` reads it, in the forms the format uses: `+Inf`, `-Inf`,
/// `NaN`, or `[+-]digits[.digits][(e|E)[+-]digits]`.
fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        _ => {}
    }
    let bad = || Err(format!("bad value {s:?}"));
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['+', '-']).unwrap_or(e))),
        None => (unsigned, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    if !mantissa_ok || exponent.is_some_and(|e| !digits(e)) {
        return bad();
    }
    s.parse().or_else(|_| bad())
}

/// A HELP text: `\\` and `\n` are its only escapes.
fn check_help(text: &str) -> Result<(), String> {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
            return Err("bad escape in HELP".into());
        }
    }
    Ok(())
}

/// `{name="value",...}` at the start of `s`: the labels and the rest of `s`.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    let Some(mut rest) = s.strip_prefix('{') else {
        return Ok((labels, s));
    };
    loop {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("no `=\"` in {rest:?}"))?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name:?} twice"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated value in {after:?}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {after:?}")),
                },
                Some((_, '\n')) => return Err("raw line feed in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        rest = &after[end + 1..];
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        rest = rest
            .strip_prefix(',')
            .ok_or_else(|| format!("expected `,` or `}}` at {rest:?}"))?;
    }
}

/// The family a sample belongs to, given the declared types: the name itself, or a
/// histogram's name without `_bucket`, `_sum` or `_count`.
fn family_of(name: &str, types: &BTreeMap<String, String>) -> Option<String> {
    if types.contains_key(name) {
        return Some(name.to_string());
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        (types.get(base)? == "histogram").then(|| base.to_string())
    })
}

/// Checks `body` line by line, strictly (stricter than the format where it allows a
/// choice: no comments but HELP and TYPE, no empty lines, no timestamps, a TYPE for every
/// family, no trailing comma in labels), then the histograms. The exposition, or what
/// is wrong, with its line number.
fn parse(body: &str) -> Result<Exposition, String> {
    if !body.ends_with('\n') {
        return Err("the body does not end with a line feed".into());
    }
    let mut exp = Exposition::default();
    let mut helped = BTreeSet::new();
    // Families whose samples are over (another family came after them).
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeSet::new();
    for (n, line) in body[..body.len() - 1].split('\n').enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        let mut enter = |family: &str, current: &mut Option<String>| {
            if current.as_deref() != Some(family) {
                if closed.contains(family) {
                    return Err(format!("{family} again after another family"));
                }
                if let Some(done) = current.take() {
                    closed.insert(done);
                }
                *current = Some(family.to_string());
            }
            Ok(())
        };
        if line.contains('\r') {
            return Err(at("carriage return".into()));
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').ok_or_else(|| at("no text".into()))?;
            if !is_metric_name(name) || !helped.insert(name.to_string()) {
                return Err(at("bad or repeated HELP name".into()));
            }
            check_help(text).map_err(at)?;
            enter(name, &mut current).map_err(at)?;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| at("no type".into()))?;
            if !is_metric_name(name) || !["counter", "gauge", "histogram"].contains(&kind) {
                return Err(at("bad TYPE".into()));
            }
            if exp.types.contains_key(name) {
                return Err(at("repeated TYPE".into()));
            }
            // A sample before its TYPE failed already: it had no family.
            enter(name, &mut current).map_err(at)?;
            exp.types.insert(name.to_string(), kind.to_string());
        } else if line.starts_with('#') || line.is_empty() {
            return Err(at("not a HELP, TYPE or sample line".into()));
        } else {
            let end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
            let name = &line[..end];
            if !is_metric_name(name) {
                return Err(at("bad metric name".into()));
            }
            let (labels, rest) = parse_labels(&line[end..]).map_err(at)?;
            let value = rest
                .strip_prefix(' ')
                .ok_or_else(|| at("no space before the value".into()))?;
            let value = parse_value(value).map_err(at)?;
            let family = family_of(name, &exp.types)
                .ok_or_else(|| at("a sample of a family without TYPE".into()))?;
            enter(&family, &mut current).map_err(at)?;
            let mut key: Vec<_> = labels.clone();
            key.sort();
            if !series.insert((name.to_string(), key)) {
                return Err(at("duplicate series".into()));
            }
            let kind = exp.types[&family].as_str();
            let is_le = |l: &(String, String)| l.0 == "le";
            match (kind, name.strip_prefix(family.as_str())) {
                ("counter", _) if value < 0.0 || !value.is_finite() => {
                    return Err(at("a counter below 0 or not finite".into()))
                }
                ("histogram", Some("_bucket")) if !labels.iter().any(is_le) => {
                    return Err(at("a bucket without le".into()))
                }
                ("histogram", Some("_sum" | "_count")) if labels.iter().any(is_le) => {
                    return Err(at("le outside a bucket".into()))
                }
                ("histogram", Some("")) => return Err(at("a bare histogram sample".into())),
                _ => {}
            }
            exp.samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
    }
    check_histograms(&exp)?;
    Ok(exp)
}

/// Every histogram series: `le` increasing, counts cumulative (non-decreasing integers),
/// `+Inf` last and equal to `_count`, a `_sum`.
fn check_histograms(exp: &Exposition) -> Result<(), String> {
    for (family, _) in exp.types.iter().filter(|(_, k)| *k == "histogram") {
        let bucket = format!("{family}_bucket");
        let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for s in exp.samples.iter().filter(|s| s.name == bucket) {
            let mut rest = s.labels.clone();
            let le = rest.iter().position(|l| l.0 == "le").expect("checked");
            let le = parse_value(&rest.remove(le).1)?;
            groups.entry(rest).or_default().push((le, s.value));
        }
        for (labels, buckets) in &groups {
            let what = format!("{family} {labels:?}");
            for pair in buckets.windows(2) {
                if pair[0].0.partial_cmp(&pair[1].0) != Some(Ordering::Less) {
                    return Err(format!("{what}: le not increasing"));
                }
                if pair[1].1 < pair[0].1 {
                    return Err(format!("{what}: buckets not cumulative"));
                }
            }
            if buckets.iter().any(|b| b.1.fract() != 0.0 || b.1 < 0.0) {
                return Err(format!("{what}: a bucket count is not a count"));
            }
            let Some(&(f64::INFINITY, inf)) = buckets.last() else {
                return Err(format!("{what}: no le=\"+Inf\" bucket last"));
            };
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let count = exp.value(&format!("{family}_count"), &labels);
            if count != Some(inf) {
                return Err(format!("{what}: _count {count:?} is not +Inf's {inf}"));
            }
            if exp.value(&format!("{family}_sum"), &labels).is_none() {
                return Err(format!("{what}: no _sum"));
            }
        }
    }
    Ok(())
}

#[test]
fn the_reader_refuses_what_the_format_does_not_allow() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n";
    assert!(parse(good).is_ok(), "{:?}", parse(good));
    let h = "# TYPE h histogram\n";
    let bad = [
        "a_total 1\n",                                             // no TYPE
        "# TYPE a_total counter\n# TYPE a_total counter\n",        // TYPE twice
        "# TYPE a_total counter\na_total 1",                       // no final line feed
        "# TYPE a_total counter\na_total{x=\"a\\t\"} 1\n",         // bad escape
        "# TYPE a_total counter\na_total{x=\"a\",} 1\n",           // trailing comma
        "# TYPE a_total counter\na_total{1x=\"a\"} 1\n",           // bad label name
        "# TYPE a_total counter\na_total{x=\"a\",x=\"b\"} 1\n",    // label twice
        "# TYPE a_total counter\na_total 1,5\n",                   // bad value
        "# TYPE a_total counter\na_total 1 1700000000\n",          // timestamp
        "# TYPE a_total counter\na_total 1\na_total 2\n",          // duplicate series
        "# TYPE a_total counter\na_total -1\n",                    // negative counter
        "# TYPE 1a counter\n",                                     // bad name
        "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x=\"\"} 2\n", // family split
        "# HELP a_total A \\t.\n# TYPE a_total counter\n",         // bad HELP escape
        "# TYPE a gauge\n\na 1\n",                                 // empty line
        "# a comment\n",                                           // comment
    ];
    for body in bad {
        assert!(parse(body).is_err(), "accepted {body:?}");
    }
    let histograms = [
        // not cumulative
        "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        // +Inf is not _count
        "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        // no +Inf
        "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        // no _sum
        "h_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        // le not increasing
        "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
    ];
    for body in histograms {
        let body = format!("{h}{body}");
        assert!(parse(&body).is_err(), "accepted {body:?}");
    }
    let fine =
        format!("{h}h_bucket{{le=\"1\"}} 1\nh_bucket{{le=\"+Inf\"}} 2\nh_sum 0.5\nh_count 2\n");
    assert!(parse(&fine).is_ok(), "{:?}", parse(&fine));
}

// ---------------------------------------------------------------------------------------
// The app's /metrics
// ---------------------------------------------------------------------------------------

/// A service dividing numbers (failing on a zero divisor), and an echo in a queue group.
fn calculator(app: App) -> App {
    let mut app = app;
    app.http().port(0);
    app.listen("calc.div", |msg: Msg<Value>| async move {
        match (msg.data["a"].as_f64(), msg.data["b"].as_f64()) {
            (Some(a), Some(b)) if b != 0.0 => Ok(json!(a / b)),
            _ => Err("division by zero".to_string()),
        }
    });
    app.listen("calc.echo", |s: String| async move { s })
        .queue("echoes");
    app
}

#[test]
fn metrics_count_requests_and_errors_in_a_valid_exposition() {
    let server = NatsServer::start();
    run(async {
        let app = calculator(App::new("calc").version("1.2.3").metrics("/metrics"));
        let app = RunningApp::start(app, &server).await;
        let h = app.handle();
        for (a, b) in [(6, 3), (1, 2)] {
            let ok = h.request("calc.div", json!({"a": a, "b": b})).await;
            assert!(ok.is_ok(), "{ok:?}");
        }
        let failed = h.request("calc.div", json!({"a": 1, "b": 0})).await;
        assert!(
            matches!(failed, Err(Error::Service { code: 500, .. })),
            "{failed:?}"
        );

        let resp = get(app.http_addr(), "/metrics").await;
        assert_eq!(resp.status, 200, "{resp:?}");
        assert_eq!(resp.header("content-type"), Some(CONTENT_TYPE));
        let exp = parse(resp.text()).unwrap_or_else(|e| panic!("{e}\n{}", resp.text()));

        let div = [("subject", "calc.div")];
        assert_eq!(exp.get("panini_endpoint_requests_total", &div), 3.0);
        assert_eq!(exp.get("panini_endpoint_errors_total", &div), 1.0);
        assert_eq!(
            exp.get("panini_endpoint_processing_seconds_count", &div),
            3.0
        );
        let inf = [("subject", "calc.div"), ("le", "+Inf")];
        assert_eq!(
            exp.get("panini_endpoint_processing_seconds_bucket", &inf),
            3.0
        );
        assert!(exp.get("panini_endpoint_processing_seconds_sum", &div) > 0.0);
        let echo = [("subject", "calc.echo"), ("queue_group", "echoes")];
        assert_eq!(exp.get("panini_endpoint_requests_total", &echo), 0.0);
        let info = [
            ("service", "calc"),
            ("version", "1.2.3"),
            ("instance", h.client_name()),
        ];
        assert_eq!(exp.get("panini_info", &info), 1.0);

        // The client's figures: at least the three requests in and their replies out.
        for name in ["panini_nats_in_msgs_total", "panini_nats_out_msgs_total"] {
            assert!(exp.get(name, &[]) >= 3.0, "{name}");
        }
        for name in ["panini_nats_in_bytes_total", "panini_nats_out_bytes_total"] {
            assert!(exp.get(name, &[]) > 0.0, "{name}");
        }
        for name in [
            "panini_nats_reconnects_total",
            "panini_nats_dropped_msgs_total",
        ] {
            assert_eq!(exp.get(name, &[]), 0.0, "{name}");
        }
        assert_eq!(exp.get("panini_nats_connected", &[]), 1.0);
        assert!(exp.value("panini_nats_pending_bytes", &[]).is_some());
        let types = &exp.types;
        assert_eq!(types["panini_endpoint_processing_seconds"], "histogram");
        assert_eq!(types["panini_endpoint_requests_total"], "counter");
        app.stop().await.unwrap();
    });
}

#[test]
fn label_values_are_escaped_and_endpoints_counted_without_the_service_api() {
    let server = NatsServer::start();
    run(async {
        // The Service API off, so the version is not checked as SemVer.
        let name = r#"odd"name\x"#;
        let version = "1.0\nbeta \"b\"";
        let app = App::new(name)
            .service_api(false)
            .version(version)
            .metrics("/metrics");
        let app = RunningApp::start(calculator(app), &server).await;
        let h = app.handle();
        let ok = h.request("calc.div", json!({"a": 1, "b": 1})).await;
        assert!(ok.is_ok(), "{ok:?}");

        let resp = get(app.http_addr(), "/metrics").await;
        assert_eq!(resp.status, 200, "{resp:?}");
        let text = resp.text();
        assert!(
            text.contains(r#"panini_info{service="odd\"name\\x",version="1.0\nbeta \"b\"","#),
            "{text}"
        );
        let exp = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let info = [
            ("service", name),
            ("version", version),
            ("instance", h.client_name()),
        ];
        assert_eq!(exp.get("panini_info", &info), 1.0);
        let div = [("subject", "calc.div")];
        assert_eq!(exp.get("panini_endpoint_requests_total", &div), 1.0);
        app.stop().await.unwrap();
    });
}

#[test]
fn metrics_are_not_served_unless_asked() {
    let server = NatsServer::start();
    run(async {
        let mut app = calculator(App::new("calc"));
        app.http().get("/health", || async { "ok" });
        let app = RunningApp::start(app, &server).await;
        assert_eq!(get(app.http_addr(), "/health").await.status, 200);
        assert_eq!(get(app.http_addr(), "/metrics").await.status, 404);
        app.stop().await.unwrap();
    });
}

/// A durable endpoint's runs are in `/metrics`, in families of their own by stream and
/// consumer: two messages handled, one that cannot decode (terminated, an error, not
/// redelivered), so three runs and one error; and not in the Service API's `$SRV.STATS`
/// (which lists what can be requested). Without the counting, the samples are missing.
#[cfg(feature = "jetstream")]
#[test]
fn durable_endpoints_are_counted_in_families_of_their_own() {
    use common::jetstream::JsServer;
    use panini::jetstream::StreamConfig;
    use panini::Json;
    use std::time::Duration;

    #[derive(serde::Deserialize)]
    struct Order {
        id: u64,
    }

    let js = JsServer::start();
    run(async {
        let mut app = App::new("billing").metrics("/metrics");
        app.declare_stream(StreamConfig {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        });
        app.listen_stream("ORDERS", "audit", |msg: Msg<Json<Order>>| async move {
            assert!(msg.data.0.id > 0);
        });
        let app = RunningApp::start(app, js.server()).await;
        let h = app.handle();
        h.publish_js("orders.created", json!({"id": 1}))
            .await
            .unwrap();
        h.publish_js("orders.created", "not json").await.unwrap();
        h.publish_js("orders.created", json!({"id": 2}))
            .await
            .unwrap();

        let durable = [("stream", "ORDERS"), ("consumer", "audit")];
        let exp = common::within(Duration::from_secs(10), "three runs counted", async {
            loop {
                let resp = get(app.http_addr(), "/metrics").await;
                assert_eq!(resp.status, 200, "{resp:?}");
                let exp = parse(resp.text()).unwrap_or_else(|e| panic!("{e}\n{}", resp.text()));
                if exp.value("panini_durable_messages_total", &durable) == Some(3.0) {
                    return exp;
                }
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert_eq!(exp.get("panini_durable_errors_total", &durable), 1.0);
        assert_eq!(
            exp.get("panini_durable_processing_seconds_count", &durable),
            3.0
        );
        let inf = [("stream", "ORDERS"), ("consumer", "audit"), ("le", "+Inf")];
        assert_eq!(
            exp.get("panini_durable_processing_seconds_bucket", &inf),
            3.0
        );
        assert_eq!(exp.types["panini_durable_processing_seconds"], "histogram");
        assert_eq!(exp.types["panini_durable_messages_total"], "counter");

        let stats: Value = h.request("$SRV.STATS.billing", json!({})).await.unwrap();
        assert_eq!(
            stats["endpoints"].as_array().map(Vec::len),
            Some(0),
            "{stats}"
        );
        app.stop().await.unwrap();
    });
}
