//! Our NATS Service API answers against async-nats's `service` module, on one `nats-server`
//! this program starts: same fields, same JSON types (issue #13).
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --bin micro_compare
//! ```
//!
//! Each side serves one request endpoint `cmp.echo` (version, description and metadata set
//! alike) and gets the same three requests, two that succeed and one that fails
//! (`Nats-Service-Error-Code: 500`). Then `$SRV.PING.<name>`, `$SRV.INFO.<name>` and
//! `$SRV.STATS.<name>` are asked of each, and every response is flattened into its field
//! paths (`endpoints[].num_requests`) with each one's JSON type. A path whose types differ,
//! or that only one side sends, is judged against the jsm.go `io.nats.micro.v1` schemas
//! that `nats micro` validates with:
//!
//! - a required field missing, or a type the schema does not allow, is a **real**
//!   difference;
//! - a difference the schema allows (`metadata` null or `{}`, an optional field one side
//!   omits, a field the schema does not list: it allows extra properties) is a **note**.
//!
//! The values that the same inputs must give alike (type strings, version, description,
//! metadata, endpoint name and subject, the counters and `last_error`) are compared too;
//! differing counters are real differences, other values notes. The program prints
//! markdown tables and both sides' raw JSON, and exits 1 on a real difference.
//!
//! The two sides run one after the other (each alone on `cmp.echo`, so each request
//! reaches exactly one of them).

#[allow(dead_code)]
#[path = "../server.rs"]
mod server;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use async_nats::service::ServiceExt;
use futures::StreamExt;
use panini::{App, AppHandle, Msg};
use serde_json::Value;

/// Errors of a benchmark program: anything, with a message.
pub type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const SUBJECT: &str = "cmp.echo";
const VERSION: &str = "1.0.0";
const DESCRIPTION: &str = "echoes requests; fails on the payload fail";
const METADATA: [(&str, &str); 2] = [("team", "bench"), ("purpose", "micro-compare")];
/// The requests each side gets; the last one fails.
const REQUESTS: [&[u8]; 3] = [b"hello", b"world", b"fail"];
const FAILURE: &str = "asked to fail";
const VERBS: [&str; 3] = ["PING", "INFO", "STATS"];
/// Bound on every wait (a reply, a start, the stats catching up).
const BOUND: Duration = Duration::from_secs(5);

fn main() {
    if std::env::var_os("PANINI_LOG").is_none() {
        std::env::set_var("PANINI_LOG", "off"); // the failing request logs an error
    }
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

/// Runs both sides and prints the comparison; `Ok(false)` on a real difference.
fn run() -> Result<bool> {
    let server = server::NatsServer::start()?;
    let url = server.url().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ours = rt.block_on(with_panini(&url))?;
    let theirs = rt.block_on(with_async_nats(&url))?;
    println!("nats-server 2.9.10 at {url}; async-nats 0.51.0 `service` against panini\n");
    let mut clean = true;
    for (verb, (a, b)) in VERBS.iter().zip(ours.iter().zip(&theirs)) {
        clean &= report(verb, a, b);
    }
    println!("### Raw responses\n");
    for (verb, (a, b)) in VERBS.iter().zip(ours.iter().zip(&theirs)) {
        println!("{verb} panini:     {a}\n{verb} async-nats: {b}\n");
    }
    println!(
        "{}",
        if clean {
            "no real difference"
        } else {
            "REAL DIFFERENCES: see the tables"
        }
    );
    Ok(clean)
}

// ---------------------------------------------------------------------------------------
// The two sides

/// Runs the panini App in a thread of its own until the requests and queries are done.
async fn with_panini(url: &str) -> Result<[Value; 3]> {
    let mut app = App::new("cmp_panini")
        .servers([url])
        .banner(false)
        .version(VERSION)
        .description(DESCRIPTION);
    for (k, v) in METADATA {
        app = app.metadata(k, v);
    }
    app.listen(SUBJECT, |msg: Msg<Vec<u8>>| async move {
        if msg.data == b"fail" {
            Err(FAILURE.to_string())
        } else {
            Ok(msg.data)
        }
    });
    // Tasks start once the start is complete: endpoints and `$SRV` subscribed and flushed.
    let (ready_tx, ready) = smol::channel::bounded::<()>(1);
    app.task(move |_: AppHandle| {
        let _ = ready_tx.try_send(());
        std::future::ready(())
    });
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let running = std::thread::spawn(move || {
        smol::block_on(app.run_until(async move {
            let _ = stopped.recv().await;
        }))
    });
    within("the panini app to start", ready.recv()).await??;
    let answers = exercise_and_query(url, "cmp_panini").await;
    stop.close();
    let ended = tokio::task::spawn_blocking(move || running.join());
    match within("the panini app to stop", ended).await?? {
        Ok(outcome) => outcome?,
        Err(_) => return Err("the panini app panicked".into()),
    }
    answers
}

/// Runs an async-nats `service` on this runtime until the requests and queries are done.
async fn with_async_nats(url: &str) -> Result<[Value; 3]> {
    let client = async_nats::connect(url).await?;
    let metadata: HashMap<String, String> = METADATA
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let service = client
        .service_builder()
        .description(DESCRIPTION)
        .metadata(metadata)
        .start("cmp_async_nats", VERSION)
        .await?;
    let mut endpoint = service.endpoint(SUBJECT).await?;
    let serving = tokio::spawn(async move {
        while let Some(request) = endpoint.next().await {
            let payload = request.message.payload.clone();
            let answer = if payload.as_ref() == b"fail" {
                Err(async_nats::service::error::Error {
                    status: FAILURE.to_string(),
                    code: 500,
                })
            } else {
                Ok(payload)
            };
            let _ = request.respond(answer).await;
        }
    });
    // `flush` only writes the socket: a request nobody serves, answered by the server
    // after the SUBs sent before it, shows they are in place.
    let _ = within("the SUBs", client.request("cmp.nobody", "".into())).await?;
    let answers = exercise_and_query(url, "cmp_async_nats").await;
    serving.abort();
    service.stop().await?;
    answers
}

/// Sends `REQUESTS` to `SUBJECT` (checking each reply), then asks `$SRV.<verb>.<name>` for
/// each verb; STATS is asked again until it has counted all the requests (async-nats
/// counts a request after sending its reply).
async fn exercise_and_query(url: &str, name: &str) -> Result<[Value; 3]> {
    let client = async_nats::connect(url).await?;
    for payload in REQUESTS {
        let reply = within("an echo reply", client.request(SUBJECT, payload.into())).await??;
        let code = reply
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Service-Error-Code"))
            .map(|c| c.as_str().to_string());
        let ok = match code.as_deref() {
            None => reply.payload.as_ref() == payload,
            Some(code) => payload == b"fail" && code == "500",
        };
        if !ok {
            return Err(format!("{name}: unexpected reply to {payload:?}: {reply:?}").into());
        }
    }
    let ask = |verb: &str| {
        let (client, subject) = (client.clone(), format!("$SRV.{verb}.{name}"));
        async move {
            let msg = within(&subject, client.request(subject.clone(), "{}".into())).await??;
            Ok::<Value, Box<dyn std::error::Error + Send + Sync>>(serde_json::from_slice(
                &msg.payload,
            )?)
        }
    };
    let (ping, info) = (ask("PING").await?, ask("INFO").await?);
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let stats = ask("STATS").await?;
        let counted = stats["endpoints"]
            .as_array()
            .and_then(|eps| eps.iter().find(|ep| ep["subject"] == SUBJECT))
            .and_then(|ep| ep["num_requests"].as_u64());
        if counted == Some(REQUESTS.len() as u64) {
            return Ok([ping, info, stats]);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{name}: STATS never counted the requests: {stats}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `future`, or an error naming `what` after `BOUND`.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(BOUND, future)
        .await
        .map_err(|_| format!("no {what} within {BOUND:?}").into())
}

// ---------------------------------------------------------------------------------------
// The comparison

/// Field path → the JSON types seen there (arrays' items are `[]`).
type Shape = BTreeMap<String, BTreeSet<&'static str>>;

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn flatten(v: &Value, path: &str, out: &mut Shape) {
    if !path.is_empty() {
        out.entry(path.to_string())
            .or_default()
            .insert(json_type(v));
    }
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match v {
        Value::Object(fields) => fields.iter().for_each(|(k, v)| flatten(v, &join(k), out)),
        Value::Array(items) => items
            .iter()
            .for_each(|v| flatten(v, &format!("{path}[]"), out)),
        _ => {}
    }
}

/// What the jsm.go schema says of a field: required or not, and its allowed types.
struct Rule {
    required: bool,
    types: &'static [&'static str],
}

/// The jsm.go `io.nats.micro.v1` schema's rule for `path` in a `verb` response (`None`:
/// the schema does not list it; it allows extra properties).
fn rule(verb: &str, path: &str) -> Option<Rule> {
    const STR: &[&str] = &["string"];
    const INT: &[&str] = &["integer"];
    const META: &[&str] = &["object", "null"];
    let r = |required, types| Some(Rule { required, types });
    if path.starts_with("metadata.") || path.starts_with("endpoints[].metadata.") {
        return r(false, STR); // additionalProperties: string
    }
    match (verb, path) {
        (_, "type" | "name" | "id" | "version") => r(true, STR),
        (_, "metadata") => r(false, META),
        ("INFO", "description") => r(true, STR),
        ("INFO", "endpoints") => r(false, &["array"]),
        ("STATS", "started") => r(true, STR),
        ("STATS", "endpoints") => r(true, &["array"]),
        ("INFO" | "STATS", "endpoints[]") => r(false, &["object"]),
        ("INFO" | "STATS", "endpoints[].name" | "endpoints[].subject") => r(true, STR),
        ("INFO", "endpoints[].metadata") => r(false, META),
        // Since ADR-32's configurable queue groups (2023-09); older schema copies omit it.
        ("INFO" | "STATS", "endpoints[].queue_group") => r(false, STR),
        ("STATS", "endpoints[].last_error") => r(true, STR),
        (
            "STATS",
            "endpoints[].num_requests"
            | "endpoints[].num_errors"
            | "endpoints[].processing_time"
            | "endpoints[].average_processing_time",
        ) => r(true, INT),
        ("STATS", "endpoints[].data") => r(false, &["object"]),
        _ => None,
    }
}

/// The verdict on one path: whether the difference is real, and why.
fn judge(verb: &str, path: &str, ours: Option<&str>, theirs: Option<&str>) -> (bool, String) {
    let rule = rule(verb, path);
    let allowed = |t: &str| rule.as_ref().is_none_or(|r| r.types.contains(&t));
    match (ours, theirs) {
        (Some(a), Some(b)) if a == b && allowed(a) => (false, "same".into()),
        (Some(a), Some(b)) if a == b => (true, format!("both {a}: the schema wants another type")),
        (Some(a), Some(b)) if allowed(a) && allowed(b) && rule.is_some() => {
            (false, "note: the schema allows both".into())
        }
        (Some(_), Some(_)) => (true, "types differ".into()),
        (Some(t), None) | (None, Some(t)) => {
            let who = if ours.is_some() {
                "async-nats"
            } else {
                "panini"
            };
            match rule {
                Some(r) if r.required => (true, format!("required; {who} omits it")),
                _ if !allowed(t) => (true, format!("{t}: the schema wants another type")),
                Some(_) => (
                    false,
                    format!("note: optional in the schema; {who} omits it"),
                ),
                None => (
                    false,
                    format!("note: not in the schema (extra fields allowed); {who} omits it"),
                ),
            }
        }
        (None, None) => (false, "same".into()),
    }
}

/// Prints the field table and the value table of one verb; `false` on a real difference.
fn report(verb: &str, ours: &Value, theirs: &Value) -> bool {
    let (mut a, mut b) = (Shape::new(), Shape::new());
    flatten(ours, "", &mut a);
    flatten(theirs, "", &mut b);
    let paths: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    println!("### $SRV.{verb}.<name>: fields\n");
    println!("| field | panini | async-nats | verdict |\n|---|---|---|---|");
    let mut clean = true;
    let types =
        |s: Option<&BTreeSet<&str>>| s.map(|t| t.iter().copied().collect::<Vec<_>>().join("|"));
    for path in paths {
        let (ta, tb) = (types(a.get(path)), types(b.get(path)));
        let (real, why) = judge(verb, path, ta.as_deref(), tb.as_deref());
        clean &= !real;
        let mark = if real { "**REAL**: " } else { "" };
        let show = |t: Option<String>| t.unwrap_or_else(|| "(absent)".into());
        println!("| `{path}` | {} | {} | {mark}{why} |", show(ta), show(tb));
    }
    clean &= report_values(verb, ours, theirs);
    println!();
    clean
}

/// The values the same inputs must give alike; differing counters are real differences.
fn report_values(verb: &str, ours: &Value, theirs: &Value) -> bool {
    let endpoint = |v: &Value| {
        v["endpoints"]
            .as_array()
            .and_then(|eps| eps.iter().find(|ep| ep["subject"] == SUBJECT).cloned())
            .unwrap_or(Value::Null)
    };
    let (ea, eb) = (endpoint(ours), endpoint(theirs));
    let mut rows: Vec<(String, Option<&Value>, Option<&Value>, bool)> = Vec::new();
    for key in ["type", "version", "description", "metadata"] {
        if ours.get(key).is_some() || theirs.get(key).is_some() {
            rows.push((key.into(), ours.get(key), theirs.get(key), false));
        }
    }
    if verb != "PING" {
        for key in ["name", "subject"] {
            rows.push((
                format!("endpoints[{SUBJECT}].{key}"),
                ea.get(key),
                eb.get(key),
                false,
            ));
        }
    }
    if verb == "STATS" {
        for (key, counter) in [
            ("num_requests", true),
            ("num_errors", true),
            ("last_error", false),
        ] {
            rows.push((
                format!("endpoints[{SUBJECT}].{key}"),
                ea.get(key),
                eb.get(key),
                counter,
            ));
        }
    }
    println!("\n| value | panini | async-nats | verdict |\n|---|---|---|---|");
    let mut clean = true;
    for (what, a, b, counter) in rows {
        let verdict = match (a == b, counter) {
            (true, _) => "same",
            (false, true) => {
                clean = false;
                "**REAL**: counters differ"
            }
            (false, false) => "note: differs",
        };
        let show = |v: Option<&Value>| v.map_or("(absent)".into(), |v| format!("`{v}`"));
        println!("| `{what}` | {} | {} | {verdict} |", show(a), show(b));
    }
    clean
}
