//! `/metrics`: the app's figures in the Prometheus text exposition format (0.0.4), on the
//! app's HTTP server when asked for ([`App::metrics`](crate::App::metrics)). Each scrape
//! gathers the figures, then writes them with plain string formatting.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `panini_info` (always 1) | gauge | `service`, `version`, `instance` (the connection name) |
//! | `panini_start_time_seconds` | gauge | |
//! | `panini_endpoint_requests_total`, `panini_endpoint_errors_total` | counter | `subject`, `queue_group` if any |
//! | `panini_endpoint_processing_seconds` | histogram | the same, and `le` on the buckets |
//! | `panini_durable_messages_total`, `panini_durable_errors_total` (feature `jetstream`, an app with durable endpoints) | counter | `stream`, `consumer` |
//! | `panini_durable_processing_seconds` (the run, before its acknowledgement) | histogram | the same, and `le` |
//! | `panini_nats_{in,out}_{msgs,bytes}_total` | counter | |
//! | `panini_nats_reconnects_total`, `panini_nats_dropped_msgs_total` (slow consumer) | counter | |
//! | `panini_nats_bad_msgs_total`, `panini_nats_lost_publishes_total` | counter | |
//! | `panini_nats_pending_bytes`, `panini_nats_connected` | gauge | |
//!
//! Endpoints with the same subject and queue group (the same subject listened to twice)
//! are one series, their counts added.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::context::AppHandle;
use super::stats::{Snapshot, BUCKETS};
use crate::client::Statistics;
use crate::http::{Http, Response};

/// The media type of the text format, version 0.0.4.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Routes `GET path` (and `HEAD`) to the exposition; `version` is the app's
/// ([`App::version`](crate::App::version)), shown in `panini_info`.
pub(crate) fn add_route(http: &mut Http, path: &str, version: &str) {
    let version: Arc<str> = Arc::from(version);
    http.get(path, move |app: AppHandle| {
        let version = version.clone();
        async move { response(&app, &version) }
    });
}

/// The answer to one scrape.
fn response(app: &AppHandle, version: &str) -> Response {
    let body = render(&Figures::of(app, version));
    Response::new(200)
        .header("Content-Type", CONTENT_TYPE)
        .body(body.into_bytes())
}

/// What one scrape shows, gathered before it is written.
#[derive(Debug, Default)]
struct Figures {
    service: String,
    version: String,
    instance: String,
    /// Seconds since the Unix epoch.
    started: f64,
    endpoints: Vec<Series>,
    #[cfg(feature = "jetstream")]
    durable: Vec<Series>,
    nats: Statistics,
    pending_bytes: usize,
    connected: bool,
}

/// The counts of one series: the endpoints on one subject and queue group, or one durable
/// endpoint; its labels say which.
#[derive(Debug)]
struct Series {
    labels: Vec<(&'static str, String)>,
    counts: Snapshot,
}

impl Series {
    /// The series of the endpoints on `subject` in `queue_group`.
    fn endpoint(subject: String, queue_group: Option<String>, counts: Snapshot) -> Series {
        let mut labels = vec![("subject", subject)];
        labels.extend(queue_group.map(|queue| ("queue_group", queue)));
        Series { labels, counts }
    }

    /// Its labels, as the exposition writes them.
    fn labels(&self) -> Vec<(&'static str, &str)> {
        self.labels.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

impl Figures {
    fn of(app: &AppHandle, version: &str) -> Figures {
        let client = app.client();
        let runtime = app.runtime();
        let mut endpoints: Vec<Series> = Vec::new();
        for ep in runtime.counted() {
            let series = Series::endpoint(ep.subject, ep.queue_group, ep.stats.snapshot());
            match endpoints.iter_mut().find(|s| s.labels == series.labels) {
                Some(same) => add(&mut same.counts, &series.counts),
                None => endpoints.push(series),
            }
        }
        Figures {
            service: app.service_name().to_string(),
            version: version.to_string(),
            instance: app.client_name().to_string(),
            started: runtime
                .started
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            endpoints,
            #[cfg(feature = "jetstream")]
            durable: runtime
                .counted_durable()
                .into_iter()
                .map(|d| Series {
                    labels: vec![("stream", d.stream), ("consumer", d.consumer)],
                    counts: d.stats.snapshot(),
                })
                .collect(),
            nats: client.statistics(),
            pending_bytes: client.pending_bytes(),
            connected: client.is_connected(),
        }
    }
}

/// Adds the counts of `more` to `into`.
fn add(into: &mut Snapshot, more: &Snapshot) {
    into.requests += more.requests;
    into.errors += more.errors;
    into.processing_ns += more.processing_ns;
    for (a, b) in into.cumulative.iter_mut().zip(&more.cumulative) {
        *a += b;
    }
}

/// The exposition of `f`.
fn render(f: &Figures) -> String {
    let mut out = Text::default();
    out.family(
        "panini_info",
        "gauge",
        "The service, its version and this instance (its NATS connection name); always 1.",
    );
    let info = [
        ("service", f.service.as_str()),
        ("version", f.version.as_str()),
        ("instance", f.instance.as_str()),
    ];
    out.sample("panini_info", &info, 1);
    out.family(
        "panini_start_time_seconds",
        "gauge",
        "When the app started, in seconds since the Unix epoch.",
    );
    out.sample("panini_start_time_seconds", &[], f.started);
    families(&mut out, &ENDPOINT, &f.endpoints);
    // Durable endpoints' families only in an app that has some.
    #[cfg(feature = "jetstream")]
    if !f.durable.is_empty() {
        families(&mut out, &DURABLE, &f.durable);
    }
    nats(&mut out, f);
    out.0
}

/// The names and HELP texts of the three families of one kind of endpoint.
struct Families {
    runs: (&'static str, &'static str),
    errors: (&'static str, &'static str),
    processing: (&'static str, &'static str),
}

/// The families of `listen` endpoints.
const ENDPOINT: Families = Families {
    runs: (
        "panini_endpoint_requests_total",
        "Messages the endpoint handled, requests and events alike.",
    ),
    errors: (
        "panini_endpoint_errors_total",
        "Runs of the endpoint that ended in an error reply.",
    ),
    processing: (
        "panini_endpoint_processing_seconds",
        "Time the endpoint took to handle a message.",
    ),
};

/// The families of durable (`listen_stream`) endpoints.
#[cfg(feature = "jetstream")]
const DURABLE: Families = Families {
    runs: (
        "panini_durable_messages_total",
        "Messages the durable endpoint handled (each delivery counts).",
    ),
    errors: (
        "panini_durable_errors_total",
        "Runs of the durable endpoint that failed (then terminated or redelivered).",
    ),
    processing: (
        "panini_durable_processing_seconds",
        "Time the durable endpoint took to handle a message, before its acknowledgement.",
    ),
};

/// The three families of one kind of endpoint, a series per endpoint.
fn families(out: &mut Text, names: &Families, series: &[Series]) {
    let (runs, help) = names.runs;
    counters(out, series, runs, help, |s| s.requests);
    let (errors, help) = names.errors;
    counters(out, series, errors, help, |s| s.errors);
    let (name, help) = names.processing;
    out.family(name, "histogram", help);
    let les: Vec<String> = BUCKETS.iter().map(f64::to_string).collect();
    for s in series {
        let (labels, c) = (s.labels(), &s.counts);
        let mut with_le = labels.clone();
        with_le.push(("le", ""));
        let last = with_le.len() - 1;
        let bucket = format!("{name}_bucket");
        for (le, count) in les.iter().zip(&c.cumulative) {
            with_le[last].1 = le;
            out.sample(&bucket, &with_le, count);
        }
        // A snapshot taken while runs are counted may see a bucket before the total.
        let count = c
            .cumulative
            .last()
            .map_or(c.requests, |&n| n.max(c.requests));
        with_le[last].1 = "+Inf";
        out.sample(&bucket, &with_le, count);
        let seconds = c.processing_ns as f64 / 1e9;
        out.sample(&format!("{name}_sum"), &labels, seconds);
        out.sample(&format!("{name}_count"), &labels, count);
    }
}

/// A counter family with one sample per endpoint series.
fn counters(
    out: &mut Text,
    series: &[Series],
    name: &str,
    help: &str,
    value: impl Fn(&Snapshot) -> u64,
) {
    out.family(name, "counter", help);
    for s in series {
        out.sample(name, &s.labels(), value(&s.counts));
    }
}

/// The NATS connection's families.
fn nats(out: &mut Text, f: &Figures) {
    let n = &f.nats;
    let counters = [
        ("in_msgs", "Messages received from NATS.", n.in_msgs),
        ("out_msgs", "Messages published to NATS.", n.out_msgs),
        (
            "in_bytes",
            "Payload bytes received from NATS, headers included.",
            n.in_bytes,
        ),
        (
            "out_bytes",
            "Payload bytes published to NATS, headers included.",
            n.out_bytes,
        ),
        ("reconnects", "Successful reconnects to NATS.", n.reconnects),
        (
            "dropped_msgs",
            "Messages dropped because a subscription was a slow consumer.",
            n.dropped_msgs,
        ),
        (
            "bad_msgs",
            "Messages not delivered because they were malformed.",
            n.bad_msgs,
        ),
        (
            "lost_publishes",
            "Publishes accepted and never sent (the connection closed first).",
            n.lost_publishes,
        ),
    ];
    for (short, help, value) in counters {
        let name = format!("panini_nats_{short}_total");
        out.family(&name, "counter", help);
        out.sample(&name, &[], value);
    }
    let name = "panini_nats_pending_bytes";
    out.family(name, "gauge", "Bytes waiting to be written to NATS.");
    out.sample(name, &[], f.pending_bytes);
    let name = "panini_nats_connected";
    out.family(name, "gauge", "1 while connected to NATS, else 0.");
    out.sample(name, &[], u8::from(f.connected));
}

/// The exposition being written. Every name and HELP text is ours (valid names, no `\`
/// or line feed); only label values come from outside, and they are escaped.
#[derive(Default)]
struct Text(String);

impl Text {
    /// `# HELP` and `# TYPE` of a family, written once, before its samples.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// One sample: `name{label="value",...} value`.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                self.0.push_str(label);
                self.0.push_str("=\"");
                escape_label_value(v, &mut self.0);
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value as the text format writes it: `\` as `\\`, `"` as `\"`, a line feed as
/// `\n`.
fn escape_label_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: u64, errors: u64, ns: u64, cumulative: Vec<u64>) -> Snapshot {
        Snapshot {
            requests,
            errors,
            processing_ns: ns,
            cumulative,
            last_error: String::new(),
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_label_value("a\"b\\c\nd", &mut out);
        assert_eq!(out, r#"a\"b\\c\nd"#);
    }

    #[test]
    fn an_endpoint_is_written_as_counters_and_a_histogram() {
        let mut cumulative = vec![0; BUCKETS.len()];
        cumulative[3..].fill(2);
        let f = Figures {
            service: "calc".into(),
            version: "1.0.0".into(),
            instance: "calc-1".into(),
            endpoints: vec![Series::endpoint(
                "calc.add".into(),
                Some("q".into()),
                counts(3, 1, 1_500_000, cumulative),
            )],
            ..Figures::default()
        };
        let text = render(&f);
        for line in [
            r#"panini_info{service="calc",version="1.0.0",instance="calc-1"} 1"#,
            r#"panini_endpoint_requests_total{subject="calc.add",queue_group="q"} 3"#,
            r#"panini_endpoint_errors_total{subject="calc.add",queue_group="q"} 1"#,
            r#"panini_endpoint_processing_seconds_bucket{subject="calc.add",queue_group="q",le="0.0005"} 0"#,
            r#"panini_endpoint_processing_seconds_bucket{subject="calc.add",queue_group="q",le="0.001"} 2"#,
            r#"panini_endpoint_processing_seconds_bucket{subject="calc.add",queue_group="q",le="10"} 2"#,
            r#"panini_endpoint_processing_seconds_bucket{subject="calc.add",queue_group="q",le="+Inf"} 3"#,
            r#"panini_endpoint_processing_seconds_sum{subject="calc.add",queue_group="q"} 0.0015"#,
            r#"panini_endpoint_processing_seconds_count{subject="calc.add",queue_group="q"} 3"#,
            "# TYPE panini_endpoint_processing_seconds histogram",
            "panini_nats_connected 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn counts_of_one_subject_and_queue_are_added() {
        let mut a = counts(1, 0, 10, vec![1; BUCKETS.len()]);
        add(&mut a, &counts(2, 1, 5, vec![2; BUCKETS.len()]));
        assert_eq!((a.requests, a.errors, a.processing_ns), (3, 1, 15));
        assert!(a.cumulative.iter().all(|&n| n == 3));
    }
}
