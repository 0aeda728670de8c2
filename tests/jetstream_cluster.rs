//! JetStream on a 3-node cluster on loopback (issue #12): an R3 file stream takes 10,000
//! acknowledged publishes while its leader is killed, then an App's durable endpoint
//! (`listen_stream`) consumes them all with that node still down, and the node, restarted,
//! catches up. Zero
//! acknowledged messages may be lost; a publish that failed (timeout, 503 / no responders,
//! connection lost) is retried with the same `Nats-Msg-Id`, so the stream keeps one copy
//! of each. Duplicates are counted on both sides: acks that say `duplicate`, and ids
//! delivered more than once. Also: `messages()` (the client layer under the endpoint)
//! resumes soon after the consumer's leader is killed; and
//! the [`JsCluster`] helper itself (it forms, a killed node restarted on its store catches
//! up).
//!
//! `PANINI_JS_CLUSTER_MESSAGES` changes the number of messages (default 10,000);
//! `scripts/js-cluster-soak` runs these tests in a loop.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::app::RunningApp;
use common::jetstream::{connect_all, JsCluster};
use common::within;
use panini::jetstream::{
    AckPolicy, ConsumerConfig, ConsumerInfo, Context, JetStreamError, PubAck, PublishOptions,
    StorageType, StreamConfig, StreamInfo,
};
use panini::rt::StreamExt;
use panini::{App, Error, Message, State};

/// API calls (stream info, consumer create…) wait this long.
const API_TIMEOUT: Duration = Duration::from_secs(5);
/// One publish attempt waits this long for its ack before it is retried.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// A message not acked within this (all attempts) fails the test. A stream's new leader is
/// elected 4-9 s after the old one died (the server's raft election timeout), twice that
/// when a round fails (16 s seen).
const PUBLISH_BOUND: Duration = Duration::from_secs(40);
/// Pause before retrying a publish refused at once (503, no responders): the stream has no
/// leader yet, asking again at once only spins.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Publishes in flight at once (each worker waits for its ack before its next message).
const WORKERS: usize = 64;
/// The consume side gives up after this long without a message.
const IDLE_BOUND: Duration = Duration::from_secs(45);
/// The durable consumer redelivers a message not acked within this.
const ACK_WAIT: Duration = Duration::from_secs(5);
/// Once every id has come, the consume side checks the consumer after this long without a
/// message.
const SETTLE_IDLE: Duration = Duration::from_millis(500);
/// ...and stops checking after this long (redeliveries come after [`ACK_WAIT`]).
const SETTLE_BOUND: Duration = Duration::from_secs(15);
/// How many messages the durable endpoint's handlers take at once.
const IN_FLIGHT: usize = 256;
/// Pause between two looks at the consumer's state while it settles (the server pushes no
/// event for it).
const SETTLE_POLL: Duration = Duration::from_millis(100);
/// Bound on each test.
const TEST_BOUND: Duration = Duration::from_secs(90);

const STREAM: &str = "ORDERS";
const DURABLE: &str = "audit";

/// How many messages the main test publishes.
fn message_count() -> usize {
    std::env::var("PANINI_JS_CLUSTER_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

fn r3_stream(name: &str, subjects: &str) -> StreamConfig {
    StreamConfig {
        num_replicas: 3,
        storage: StorageType::File,
        ..StreamConfig::new(name, [subjects])
    }
}

/// The id of message `i`, also its payload.
fn msg_id(i: usize) -> String {
    format!("m-{i:06}")
}

/// What the publishers saw.
#[derive(Debug, Default)]
struct Published {
    /// Each acked id and the stream sequence its ack named.
    acked: HashMap<String, u64>,
    /// Acks that said `duplicate`: an earlier attempt had been stored after all.
    duplicate_acks: u64,
    /// Failed attempts, by reason.
    retries: BTreeMap<&'static str, u64>,
    /// The longest time one message took from its first attempt to its ack.
    longest: Duration,
}

/// Why a publish attempt failed, if retrying it with the same id may work.
fn retry_reason(e: &Error) -> Option<&'static str> {
    match e {
        Error::Timeout => Some("timeout"),
        Error::ConnectionLost => Some("connection lost"),
        Error::ReconnectBufferFull => Some("reconnect buffer full"),
        // A 503 no-responders status: no stream leader to take it right now.
        Error::JetStream(JetStreamError::NoStream { .. }) => Some("no responders"),
        Error::JetStream(JetStreamError::Api(api)) if api.code == 503 => Some("503"),
        _ => None,
    }
}

/// Publishes `id` to `subject` until it is acked, retrying with the same `Nats-Msg-Id`
/// (so the stream stores it once) for at most [`PUBLISH_BOUND`]; counts the failed
/// attempts in `retries`.
async fn publish_until_acked(
    js: &Context,
    subject: &str,
    id: &str,
    retries: &mut BTreeMap<&'static str, u64>,
) -> PubAck {
    let opts = PublishOptions::new().msg_id(id).timeout(ACK_TIMEOUT);
    let deadline = Instant::now() + PUBLISH_BOUND;
    loop {
        let err = match js.publish_with(subject, id, &opts).await {
            Ok(ack) => return ack,
            Err(e) => e,
        };
        let reason = retry_reason(&err);
        match reason {
            Some(reason) if Instant::now() < deadline => *retries.entry(reason).or_default() += 1,
            _ => panic!("publishing {id}: {err:?} (retryable: {reason:?})"),
        }
        if matches!(reason, Some("no responders" | "503")) {
            smol::Timer::after(RETRY_PAUSE).await;
        }
    }
}

/// What the publish workers share.
struct Progress {
    /// The next message index to take.
    next: AtomicUsize,
    /// Acks in so far.
    acks: AtomicUsize,
    /// Signalled once `kill_at` acks are in.
    kill_at: usize,
    reached: smol::channel::Sender<()>,
    published: Mutex<Published>,
}

/// Publishes messages `0..n` (id = payload = [`msg_id`]) from [`WORKERS`] concurrent
/// workers, each retrying its message until acked; sends on `reached` once `kill_at` acks
/// are in.
async fn publish_all(
    js: Context,
    n: usize,
    kill_at: usize,
    reached: smol::channel::Sender<()>,
) -> Published {
    let progress = Arc::new(Progress {
        next: AtomicUsize::new(0),
        acks: AtomicUsize::new(0),
        kill_at,
        reached,
        published: Mutex::new(Published::default()),
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| smol::spawn(publish_worker(js.clone(), n, progress.clone())))
        .collect();
    for worker in workers {
        worker.await;
    }
    let progress = Arc::try_unwrap(progress).unwrap_or_else(|_| panic!("workers are done"));
    progress.published.into_inner().unwrap()
}

/// One publish worker: takes the next index below `n` and publishes it until acked, until
/// none is left.
async fn publish_worker(js: Context, n: usize, progress: Arc<Progress>) {
    let mut retries = BTreeMap::new();
    loop {
        let i = progress.next.fetch_add(1, Relaxed);
        if i >= n {
            break;
        }
        let id = msg_id(i);
        let subject = format!("orders.{}", i % 16);
        let started = Instant::now();
        let ack = publish_until_acked(&js, &subject, &id, &mut retries).await;
        let took = started.elapsed();
        let mut p = progress.published.lock().unwrap();
        p.acked.insert(id, ack.seq);
        p.duplicate_acks += u64::from(ack.duplicate);
        p.longest = p.longest.max(took);
        drop(p);
        if progress.acks.fetch_add(1, Relaxed) + 1 == progress.kill_at {
            let _ = progress.reached.try_send(());
        }
    }
    let mut p = progress.published.lock().unwrap();
    for (reason, count) in retries {
        *p.retries.entry(reason).or_default() += count;
    }
}

/// What the consume side saw.
#[derive(Debug, Default)]
struct Consumed {
    /// Each id consumed, and how often it came.
    seen: HashMap<String, u32>,
    /// The stream sequence each id came from (known on the client layer only: the App's
    /// handler gets no ack subject).
    seqs: HashMap<String, u64>,
    /// Deliveries in all.
    deliveries: u64,
    /// The consumer's state when the consume stopped.
    last_info: Option<ConsumerInfo>,
    /// Times the consume missed two idle heartbeats in a row (and pulled afresh).
    missed_heartbeats: u64,
    /// The longest wait for a message before every id had come.
    longest_gap: Duration,
}

impl Consumed {
    /// Counts one delivery (of the client layer) and acks it.
    async fn record(&mut self, msg: panini::jetstream::Message) {
        let seq = msg.info().expect("JetStream metadata").stream_sequence;
        let id = self.count(&msg);
        let first = *self.seqs.entry(id).or_insert(seq);
        assert_eq!(first, seq, "one id, two stream sequences");
        msg.ack().await.expect("acking");
    }

    /// Counts one delivery of `msg` (its id in the `Nats-Msg-Id` header and the payload);
    /// returns the id.
    fn count(&mut self, msg: &Message) -> String {
        let id = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .expect("a Nats-Msg-Id header")
            .to_string();
        assert_eq!(msg.payload, id.as_bytes(), "payload of {id}");
        self.deliveries += 1;
        *self.seen.entry(id.clone()).or_default() += 1;
        id
    }

    /// Ids delivered more than once.
    fn twice(&self) -> usize {
        self.seen.values().filter(|&&c| c > 1).count()
    }
}

/// A point where the consume side stops and waits (for the test to kill a node).
struct Pause {
    /// After this many distinct ids.
    at: usize,
    /// Told when it is reached.
    reached: smol::channel::Sender<()>,
    /// Waited on before going on.
    resume: smol::channel::Receiver<()>,
}

/// A [`Pause`] at `at`, and the test's ends of it.
fn pause_at(
    at: usize,
) -> (
    Pause,
    smol::channel::Receiver<()>,
    smol::channel::Sender<()>,
) {
    let (reached, reached_rx) = smol::channel::bounded(1);
    let (resume_tx, resume) = smol::channel::bounded(1);
    let pause = Pause {
        at,
        reached,
        resume,
    };
    (pause, reached_rx, resume_tx)
}

/// The consume side, in one place: reads the durable pull consumer `durable` of `stream`,
/// acking each message, until `expected` distinct ids have come (or none came for
/// [`IDLE_BOUND`]) and then until the consumer has nothing pending or unacked (messages
/// whose acks died with a consumer leader come again after the ack wait; at most
/// [`SETTLE_BOUND`]); stops once at `pause`, if any, until told to go on. On the client
/// layer's continuous `messages()`, which the resume test is about; the main test consumes
/// through the App ([`consume_with_app`]).
async fn consume_all(
    js: Context,
    stream: &str,
    durable: &str,
    expected: usize,
    mut pause: Option<Pause>,
) -> Consumed {
    let consumer = js.consumer(stream, durable);
    // Its state, asked with the usual timeout whatever the consuming context's.
    let state = js
        .clone()
        .with_timeout(API_TIMEOUT)
        .consumer(stream, durable);
    let mut messages = consumer
        .messages()
        .batch(500)
        .expires(Duration::from_secs(5))
        .heartbeat(Duration::from_secs(1))
        .await
        .expect("starting the consume");
    let mut consumed = Consumed::default();
    let mut settle_by = None;
    loop {
        let all_seen = consumed.seen.len() >= expected;
        let idle = if all_seen { SETTLE_IDLE } else { IDLE_BOUND };
        let waiting = Instant::now();
        let next = next_within(&mut messages, idle).await;
        if !all_seen {
            consumed.longest_gap = consumed.longest_gap.max(waiting.elapsed());
        }
        match next {
            Some(next) => consumed.record(next.expect("the consume failed")).await,
            None if !all_seen => {
                consumed.last_info = state.info().await.ok();
                break;
            }
            None => {
                let info = state.info().await.ok();
                let settled = info
                    .as_ref()
                    .is_some_and(|i| i.num_pending == 0 && i.num_ack_pending == 0);
                consumed.last_info = info;
                let deadline = *settle_by.get_or_insert_with(|| Instant::now() + SETTLE_BOUND);
                if settled || Instant::now() >= deadline {
                    break;
                }
            }
        }
        if let Some(pause) = pause.take_if(|p| p.at == consumed.seen.len()) {
            pause.reached.send(()).await.expect("the test ended");
            pause.resume.recv().await.expect("the test ended");
        }
    }
    consumed.missed_heartbeats = messages.missed_heartbeats();
    consumed
}

/// The consume side through an App's durable endpoint (issue #12): an App connected to every
/// node (node `first`, a running one, first) whose `listen_stream` handler hands each
/// message to the test (acked once the handler returns), until `expected` distinct ids have
/// come (or none came for [`IDLE_BOUND`]) and then until the consumer has nothing pending
/// or unacked (at most [`SETTLE_BOUND`]); then the App stops.
async fn consume_with_app(
    cluster: &JsCluster,
    first: usize,
    js: &Context,
    expected: usize,
) -> Consumed {
    let (tx, deliveries) = smol::channel::unbounded::<Message>();
    let mut app = App::new("audit").servers(urls_from(cluster, first));
    app.state(tx);
    app.listen_stream(
        STREAM,
        DURABLE,
        |msg: Message, State(tx): State<smol::channel::Sender<Message>>| async move {
            // The test side checks and counts it; the receiver outlives the app.
            let _ = tx.send(msg).await;
        },
    )
    .max_in_flight(IN_FLIGHT)
    .ack_wait(ACK_WAIT);
    // The app's start creates (updates) the consumer: the meta leader takes the request
    // and the consumer's leader answers it. After a node's death either may have been that
    // node, so wait for both to be elected, or the start waits out an election (once past
    // the app's start bound: CI saw it, stop 17).
    cluster.wait_ready(js).await;
    cluster.wait_for_consumer(js, STREAM, DURABLE, 1).await;
    let app = RunningApp::start_configured(app, cluster.node(first)).await;
    let state = js.consumer(STREAM, DURABLE);
    let mut consumed = Consumed::default();
    let mut settle_by = None;
    loop {
        let all_seen = consumed.seen.len() >= expected;
        let idle = if all_seen { SETTLE_IDLE } else { IDLE_BOUND };
        let waiting = Instant::now();
        let next = recv_within(&deliveries, idle).await;
        if !all_seen {
            consumed.longest_gap = consumed.longest_gap.max(waiting.elapsed());
        }
        match next {
            Some(msg) => {
                consumed.count(&msg);
            }
            None if !all_seen => {
                consumed.last_info = state.info().await.ok();
                break;
            }
            None => {
                let info = state.info().await.ok();
                let settled = info
                    .as_ref()
                    .is_some_and(|i| i.num_pending == 0 && i.num_ack_pending == 0);
                consumed.last_info = info;
                let deadline = *settle_by.get_or_insert_with(|| Instant::now() + SETTLE_BOUND);
                if settled || Instant::now() >= deadline {
                    break;
                }
                smol::Timer::after(SETTLE_POLL).await;
            }
        }
    }
    app.stop().await.expect("stopping the app");
    while let Ok(msg) = deliveries.try_recv() {
        consumed.count(&msg);
    }
    consumed
}

/// The next message the App's handler handed over, or `None` if none comes within `bound`.
async fn recv_within(
    deliveries: &smol::channel::Receiver<Message>,
    bound: Duration,
) -> Option<Message> {
    use smol::future::FutureExt;
    let next = async { deliveries.recv().await.ok() };
    next.or(async {
        smol::Timer::after(bound).await;
        None
    })
    .await
}

/// The next item of `messages`, or `None` if none comes within `bound`.
async fn next_within(
    messages: &mut panini::jetstream::Messages,
    bound: Duration,
) -> Option<panini::Result<panini::jetstream::Message>> {
    use smol::future::FutureExt;
    let next = async { messages.next().await };
    next.or(async {
        smol::Timer::after(bound).await;
        None
    })
    .await
}

/// What each running node's `/jsz` says of consumer `durable` of `stream` (for failures).
async fn consumer_views(cluster: &JsCluster, stream: &str, durable: &str) -> String {
    let mut views = String::new();
    for i in (0..cluster.len()).filter(|&i| cluster.is_alive(i)) {
        let jsz = cluster
            .jsz(i, "?accounts=true&streams=true&consumers=true")
            .await;
        let found = jsz["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["stream_detail"].as_array())
            .flatten()
            .filter(|s| s["name"] == stream)
            .filter_map(|s| s["consumer_detail"].as_array())
            .flatten()
            .find(|c| c["name"] == durable)
            .cloned();
        views += &format!("\n{}: {found:?}", JsCluster::name(i));
    }
    views
}

/// The cluster's URLs, node `first`'s first (the client connects to it).
fn urls_from(cluster: &JsCluster, first: usize) -> Vec<String> {
    let mut urls = cluster.urls();
    urls.swap(0, first);
    urls
}

/// The index of the node leading a stream or consumer.
fn leader_index(cluster: &JsCluster, info: Option<&panini::jetstream::ClusterInfo>) -> usize {
    let leader = info.and_then(|c| c.leader.as_deref());
    leader
        .and_then(|l| cluster.index_of(l))
        .unwrap_or_else(|| panic!("no leader: {info:?}"))
}

/// The R3 stream and its durable consumer, on a cluster ready for JetStream: a context of a
/// client on every node (kept alive with its client), and the stream's info.
async fn orders_on(cluster: &JsCluster) -> (panini::client::Client, Context, StreamInfo) {
    let (client, js) = connect_all(&cluster.urls(), API_TIMEOUT).await;
    cluster.wait_ready(&js).await;
    js.create_stream(&r3_stream(STREAM, "orders.>"))
        .await
        .unwrap();
    let info = cluster.wait_for_stream(&js, STREAM, 2).await;
    let durable = ConsumerConfig {
        ack_wait: ACK_WAIT,
        ..ConsumerConfig::durable(DURABLE).ack_policy(AckPolicy::Explicit)
    };
    js.create_consumer(STREAM, &durable).await.unwrap();
    (client, js, info)
}

/// Every id acked once, each with its own sequence, and the stream holds exactly `n`
/// messages (no retry stored twice).
async fn check_stored(cluster: &JsCluster, js: &Context, published: &Published, n: usize) {
    assert_eq!(published.acked.len(), n);
    let seqs: HashSet<u64> = published.acked.values().copied().collect();
    assert_eq!(seqs.len(), n, "two ids acked with one sequence");
    let info = cluster.wait_for_stream(js, STREAM, 1).await;
    assert_eq!(info.state.messages, n as u64, "{:?}", info.state);
    assert_eq!(info.state.last_seq, n as u64, "{:?}", info.state);
}

/// Every acked id consumed, from the sequence its ack named, and nothing left pending or
/// unacked.
async fn check_consumed(cluster: &JsCluster, published: &Published, consumed: &Consumed) {
    let lost: Vec<&String> = published
        .acked
        .keys()
        .filter(|id| !consumed.seen.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acked ids never consumed, e.g. {:?}; the consumer: {:?}; missed heartbeats: {}\n\
         the nodes' views of the consumer: {}",
        lost.len(),
        &lost[..lost.len().min(10)],
        consumed.last_info,
        consumed.missed_heartbeats,
        consumer_views(cluster, STREAM, DURABLE).await,
    );
    for (id, seq) in &consumed.seqs {
        assert_eq!(published.acked.get(id), Some(seq), "{id}: another sequence");
    }
    let last = consumed.last_info.as_ref().expect("the consumer's state");
    assert_eq!((last.num_pending, last.num_ack_pending), (0, 0), "{last:?}");
}

/// Publishes `n` messages through a client on the stream leader and kills that leader at
/// 30%; consumes them all through an App's durable endpoint with the node still down; then
/// restarts it and checks that its copy of the stream catches up.
#[test]
fn no_acked_message_is_lost_when_the_stream_leader_is_killed() {
    let n = message_count();
    let mut cluster = JsCluster::start(3);
    let started = Instant::now();
    smol::block_on(within(TEST_BOUND, "the cluster test", async {
        let (_admin, js, info) = orders_on(&cluster).await;
        let ready = started.elapsed();

        // Publish through the stream leader; kill it once 30% are acked.
        let victim = leader_index(&cluster, info.cluster.as_ref());
        let (client, pub_js) = connect_all(&urls_from(&cluster, victim), API_TIMEOUT).await;
        assert_eq!(client.server_info().server_name, JsCluster::name(victim));
        let (reached_tx, reached) = smol::channel::bounded(1);
        let publishing = Instant::now();
        let publisher = smol::spawn(publish_all(pub_js.clone(), n, n * 3 / 10, reached_tx));
        reached.recv().await.expect("the publishers ended early");
        cluster.kill(victim);
        let killed_after = publishing.elapsed();
        let published = publisher.await;
        let publish_time = publishing.elapsed();
        check_stored(&cluster, &js, &published, n).await;

        // Consume everything, the node still down, through an App's durable endpoint.
        drop((client, pub_js));
        let consuming = Instant::now();
        let live = (victim + 1) % cluster.len();
        let consumed = consume_with_app(&cluster, live, &js, n).await;
        let consume_time = consuming.elapsed();
        check_consumed(&cluster, &published, &consumed).await;

        // The killed node comes back on its store and catches up.
        let restarting = Instant::now();
        cluster.restart(victim);
        cluster.wait_for_stream(&js, STREAM, 2).await;
        // One write more, so the restarted follower learns that the last message is
        // committed (see `wait_for_copy`).
        let mut marker_retries = BTreeMap::new();
        publish_until_acked(&js, "orders.marker", "marker", &mut marker_retries).await;
        cluster.wait_for_copy(victim, STREAM, n as u64).await;
        let catch_up = restarting.elapsed();

        let twice = consumed.twice();
        eprintln!(
            "cluster test: {n} messages; ready in {ready:?}; published in {publish_time:?} \
             (stream leader n{victim} killed after {killed_after:?}); retries {:?}; \
             duplicate acks {}; longest publish {:?}; consumed by the durable endpoint in \
             {consume_time:?}: {} deliveries, {twice} ids more than once; n{victim} caught up \
             in {catch_up:?}; total {:?}",
            published.retries,
            published.duplicate_acks,
            published.longest,
            consumed.deliveries,
            started.elapsed()
        );
    }));
}

#[test]
fn the_cluster_forms_and_a_killed_node_catches_up_on_restart() {
    let mut cluster = JsCluster::start(3);
    smol::block_on(within(Duration::from_secs(60), "the helper test", async {
        let (_client, js) = connect_all(&cluster.urls(), API_TIMEOUT).await;
        let meta = cluster.wait_ready(&js).await;
        js.create_stream(&r3_stream("HELPER", "helper.>"))
            .await
            .unwrap();
        let info = cluster.wait_for_stream(&js, "HELPER", 2).await;
        assert_eq!(info.cluster.unwrap().replicas.len(), 2);
        let mut retries = BTreeMap::new();
        for i in 0..100 {
            publish_until_acked(&js, "helper.a", &msg_id(i), &mut retries).await;
        }

        // The meta leader dies: another is elected; publishes go on.
        let victim = cluster.index_of(&meta).expect("a node's name");
        cluster.kill(victim);
        let next = cluster.wait_for_meta_leader().await;
        assert_ne!(next, meta);
        for i in 100..200 {
            publish_until_acked(&js, "helper.a", &msg_id(i), &mut retries).await;
        }

        // Back on the same ports and store: it rejoins and its copy catches up.
        cluster.restart(victim);
        let agreed = cluster.wait_for_meta_leader().await;
        assert!(cluster.index_of(&agreed).is_some());
        cluster.wait_for_stream(&js, "HELPER", 2).await;
        publish_until_acked(&js, "helper.a", "marker", &mut retries).await;
        cluster.wait_for_copy(victim, "HELPER", 200).await;
        eprintln!("helper test: retries while the meta leader was down: {retries:?}");
    }));
}

/// `messages()` resumes soon after the consumer's leader dies. While a new leader is being
/// elected nobody answers the consumer's API either, so the check of the consumer that
/// the stream makes after missed heartbeats waits out the whole API timeout: it must not
/// hold up the fresh pulls meanwhile.
#[test]
fn messages_resume_soon_after_the_consumer_leader_dies() {
    // Long enough that a pull held up by the check shows: a leader is elected 4-9 s after
    // the last one's death (the server's raft election timeout; twice that if a round
    // fails), and the next pull goes within two heartbeats.
    const SLOW_API: Duration = Duration::from_secs(40);
    const RESUMED_WITHIN: Duration = Duration::from_secs(25);
    let n = 2_000;
    let mut cluster = JsCluster::start(3);
    smol::block_on(within(TEST_BOUND, "the resume test", async {
        let (_admin, js, _) = orders_on(&cluster).await;
        let (never_tx, _never) = smol::channel::bounded(1);
        let published = publish_all(js.clone(), n, n + 1, never_tx).await;
        assert_eq!(published.acked.len(), n);

        // A client on another node than the consumer's leader: no reconnect, only the
        // leader change.
        let info = cluster.wait_for_consumer(&js, STREAM, DURABLE, 2).await;
        let leader = leader_index(&cluster, info.cluster.as_ref());
        let other = (leader + 1) % cluster.len();
        let (_client, sub_js) = connect_all(&urls_from(&cluster, other), SLOW_API).await;
        let (pause, reached, resume) = pause_at(n / 4);
        let consumer = smol::spawn(consume_all(sub_js, STREAM, DURABLE, n, Some(pause)));
        reached.recv().await.expect("the consume ended early");
        cluster.kill(leader);
        resume.send(()).await.unwrap();
        let consumed = consumer.await;
        assert_eq!(
            consumed.seen.len(),
            n,
            "the consumer: {:?}; missed heartbeats: {}\nthe nodes' views: {}",
            consumed.last_info,
            consumed.missed_heartbeats,
            consumer_views(&cluster, STREAM, DURABLE).await
        );
        assert!(
            consumed.longest_gap < RESUMED_WITHIN,
            "no message for {:?} after the consumer leader died ({} missed heartbeats)",
            consumed.longest_gap,
            consumed.missed_heartbeats
        );
        eprintln!(
            "resume test: longest wait for a message {:?}, {} missed heartbeats",
            consumed.longest_gap, consumed.missed_heartbeats
        );
    }));
}
