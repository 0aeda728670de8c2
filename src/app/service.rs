//! The NATS Service API (ADR-32, "micro"): every app answers `$SRV.PING`, `$SRV.INFO` and
//! `$SRV.STATS` (bare, by service name, and by name and instance id) with the
//! `io.nats.micro.v1` JSON shapes, so `nats micro ls / info / stats / ping` find it and its
//! endpoints. On by default ([`App::service_api`](crate::App::service_api)); the endpoint
//! loops count each run (see `stats`).
//!
//! What it reports: the service's name (the app's, with any character outside
//! `[A-Za-z0-9_-]` made `_`), a 22-character instance id, its SemVer version
//! ([`App::version`](crate::App::version), default `0.0.0`), description and metadata,
//! and one endpoint per subject of each `listen` endpoint (and of each added at run time):
//! its name (the subject with `.`, `*` and `>` made `-`), subject, queue group, and for
//! STATS its messages handled, errors, processing time (total and average, ns) and last
//! error (`"<code>:<description>"`). Every message an endpoint handles counts, requests and
//! events alike; an error is a run that ended in an error reply (a handler's `Err` or panic,
//! a payload that did not decode).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use smol::stream::StreamExt;

use super::context::{app_async, AppHandle};
use super::runtime::{CountedEndpoint, RunningEndpoint};
use crate::client::Subscription;
use crate::error::Result;
use crate::log::log_at;
use crate::message::Message;

/// The Service API's settings, from the builder.
#[derive(Clone, Debug)]
pub(crate) struct ServiceConfig {
    pub(crate) on: bool,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) metadata: BTreeMap<String, String>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            on: true,
            version: "0.0.0".into(),
            description: String::new(),
            metadata: BTreeMap::new(),
        }
    }
}

/// Who this instance is, as the Service API reports it.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) config: ServiceConfig,
}

impl Identity {
    /// The identity of an app named `service_name`, with a fresh instance id.
    pub(crate) fn new(service_name: &str, config: ServiceConfig) -> Identity {
        let name = service_name_of(service_name);
        if name != service_name {
            log_at!(
                Warn,
                "panini",
                "the Service API names this service {name:?}: {service_name:?} has characters \
                 outside [A-Za-z0-9_-]"
            );
        }
        Identity {
            name,
            id: instance_id(),
            config,
        }
    }
}

/// Checks a version is SemVer (`MAJOR.MINOR.PATCH`, an optional `-pre.release` and
/// `+build`, no leading zeros in numbers), as `nats micro` requires.
pub(crate) fn check_version(version: &str) -> std::result::Result<(), String> {
    let bad = || {
        Err(format!(
            "{version:?} is not a SemVer version (such as 1.2.3)"
        ))
    };
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let number = |n: &str| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'))
    };
    let ident =
        |i: &str| !i.is_empty() && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| number(p)) {
        return bad();
    }
    if let Some(pre) = pre {
        let ok = pre
            .split('.')
            .all(|p| ident(p) && (!p.bytes().all(|b| b.is_ascii_digit()) || number(p)));
        if !ok {
            return bad();
        }
    }
    if let Some(build) = build {
        if !build.split('.').all(ident) {
            return bad();
        }
    }
    Ok(())
}

/// The Service API's name for a service: `[A-Za-z0-9_-]` kept, anything else `_`.
fn service_name_of(name: &str) -> String {
    let kept: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if kept.is_empty() {
        "panini".into()
    } else {
        kept
    }
}

/// An endpoint's name from its subject: `orders.new` is `orders-new`, `orders.*` is
/// `orders--` (`nats micro` refuses names outside `[A-Za-z0-9_-]`).
pub(crate) fn endpoint_name(subject: &str) -> String {
    subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A random instance id: 22 characters of `[0-9A-Za-z]`, as NUIDs are.
fn instance_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..22)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// Subscribes to the discovery subjects and answers them until the stop; the three loops
/// are recorded as endpoints (the stop drains them with the others).
pub(crate) async fn start(app: &AppHandle, identity: Arc<Identity>) -> Result<()> {
    let subjects = [
        "$SRV.*".to_string(),
        format!("$SRV.*.{}", identity.name),
        format!("$SRV.*.{}.{}", identity.name, identity.id),
    ];
    for subject in subjects {
        let sub = app.inner.client.subscribe(&subject).await?;
        let sid = sub.sid();
        let task = app.spawn(app_async(answer(app.clone(), sub, identity.clone())));
        let running = RunningEndpoint {
            sid: Some(sid),
            task,
        };
        app.runtime().add_endpoint(subject, running);
    }
    Ok(())
}

/// Answers the requests of one discovery subscription.
async fn answer(app: AppHandle, mut sub: Subscription, identity: Arc<Identity>) {
    while let Some(msg) = sub.next().await {
        let Some(reply) = &msg.reply else {
            continue; // a publish without a reply subject: nothing to answer
        };
        let Some(body) = response(&app, &identity, &msg) else {
            continue; // a verb we do not know (the old SCHEMA, ...)
        };
        if let Err(e) = app.inner.client.publish(reply, body).await {
            log_at!(Warn, "panini", "cannot answer {}: {e}", msg.subject);
        }
    }
}

/// The JSON answer to a discovery request, by its verb.
fn response(app: &AppHandle, identity: &Identity, msg: &Message) -> Option<Vec<u8>> {
    let verb = msg.subject.split('.').nth(1)?;
    let base = Base {
        name: &identity.name,
        id: &identity.id,
        version: &identity.config.version,
        metadata: &identity.config.metadata,
    };
    let endpoints = app.runtime().counted();
    let json = match verb {
        "PING" => serde_json::to_vec(&Ping {
            kind: "io.nats.micro.v1.ping_response",
            base,
        }),
        "INFO" => serde_json::to_vec(&Info {
            kind: "io.nats.micro.v1.info_response",
            base,
            description: &identity.config.description,
            endpoints: endpoints.iter().map(EndpointInfo::of).collect(),
        }),
        "STATS" => serde_json::to_vec(&Stats {
            kind: "io.nats.micro.v1.stats_response",
            base,
            started: crate::rfc3339::format(app.runtime().started),
            endpoints: endpoints.iter().map(EndpointStatsJson::of).collect(),
        }),
        _ => return None,
    };
    json.ok()
}

/// The fields every response has.
#[derive(Serialize)]
struct Base<'a> {
    name: &'a str,
    id: &'a str,
    version: &'a str,
    metadata: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Ping<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    base: Base<'a>,
}

#[derive(Serialize)]
struct Info<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    base: Base<'a>,
    description: &'a str,
    endpoints: Vec<EndpointInfo>,
}

#[derive(Serialize)]
struct EndpointInfo {
    name: String,
    subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_group: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
}

impl EndpointInfo {
    fn of(ep: &CountedEndpoint) -> EndpointInfo {
        EndpointInfo {
            name: endpoint_name(&ep.subject),
            subject: ep.subject.clone(),
            queue_group: ep.queue_group.clone(),
            metadata: None,
        }
    }
}

#[derive(Serialize)]
struct Stats<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    base: Base<'a>,
    started: String,
    endpoints: Vec<EndpointStatsJson>,
}

#[derive(Serialize)]
struct EndpointStatsJson {
    name: String,
    subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_group: Option<String>,
    num_requests: u64,
    num_errors: u64,
    last_error: String,
    processing_time: u64,
    average_processing_time: u64,
}

impl EndpointStatsJson {
    fn of(ep: &CountedEndpoint) -> EndpointStatsJson {
        let s = ep.stats.snapshot();
        EndpointStatsJson {
            name: endpoint_name(&ep.subject),
            subject: ep.subject.clone(),
            queue_group: ep.queue_group.clone(),
            num_requests: s.requests,
            num_errors: s.errors,
            last_error: s.last_error,
            processing_time: s.processing_ns,
            average_processing_time: s.processing_ns.checked_div(s.requests).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_checked_as_semver() {
        for ok in [
            "0.0.0",
            "1.2.3",
            "10.20.30",
            "1.0.0-alpha.1",
            "1.0.0+build.7",
            "1.0.0-rc-1+x",
        ] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "1", "1.2", "01.2.3", "1.2.3-", "1.2.3-01", "v1.2.3", "1.2.3+", "1.2.x",
        ] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_keep_to_the_schema_pattern() {
        assert_eq!(endpoint_name("orders.new"), "orders-new");
        assert_eq!(endpoint_name("orders.*.>"), "orders----");
        assert_eq!(service_name_of("listener_app"), "listener_app");
        assert_eq!(service_name_of("my app.v2"), "my_app_v2");
        let id = instance_id();
        assert_eq!(id.len(), 22);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
