//! The task behind an [`OrderedMessages`](super::OrderedMessages): it hands over the
//! current consumer's messages while the cursor says none was lost, and replaces the
//! consumer (see [`Position::config`] for where the next one starts) when one was, when
//! the consumer is gone, or after a reconnect.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use smol::channel::Sender;
use smol::future::FutureExt;
use smol::stream::StreamExt;
use smol::Timer;

use super::{delete_later, OrderedState, Plan};
use crate::error::{Error, Result};
use crate::jetstream::consume::{Messages, DEFAULT_CONSUME_EXPIRES};
use crate::jetstream::{
    AckPolicy, Consumer, ConsumerConfig, DeliverPolicy, JetStreamError, Message, Stream,
};
use crate::log::log_at;
use crate::rfc3339;

/// How long the server keeps a consumer nobody pulls from (a reset or a drop deletes it
/// before that when it can).
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(300);
/// How often the task looks for a reconnect while no message comes.
const RECONNECT_CHECK: Duration = Duration::from_millis(250);
/// The first and the longest pause between two attempts to create a consumer.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

const TARGET: &str = "panini::jetstream";

/// Where delivery stands.
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    /// The consumer sequence of the last message of the current consumer.
    consumer_seq: u64,
    /// The stream sequence of the last message handed over (0: none yet).
    stream_seq: u64,
}

/// The task behind an [`OrderedMessages`](super::OrderedMessages).
pub(super) struct Run {
    stream: Stream,
    plan: Plan,
    at: Position,
    /// The client's reconnects before the current consumer was created: one more means
    /// the consumer may be gone with the server it was on.
    reconnects: u64,
    tx: Sender<Result<Message>>,
    shared: Arc<OrderedState>,
}

/// Which consumer is in use and where delivery stands: all the next consumer's start
/// depends on.
#[derive(Clone, Debug)]
struct Position {
    /// Consumers are named `<prefix>_<serial>`.
    prefix: String,
    serial: u64,
    /// The stream sequence just before the first consumer's start.
    start_floor: u64,
    cursor: Cursor,
    /// With `LastPerSubject`: the last value of each subject is still being delivered, so
    /// a new consumer starts the same way (and skips what was handed over) rather than
    /// replaying every message after the cursor.
    catching_up: bool,
}

/// Why a consumer is given up.
enum Next {
    /// Replace it: the reason, for the log.
    Reset(&'static str),
    /// End: with an error for the reader, or none when the reader is gone.
    Stop(Option<Error>),
}

impl Run {
    pub(super) fn new(
        stream: Stream,
        plan: Plan,
        tx: Sender<Result<Message>>,
        shared: Arc<OrderedState>,
    ) -> Run {
        Run {
            stream,
            plan,
            at: Position {
                prefix: random_name(),
                serial: 0,
                start_floor: 0,
                cursor: Cursor::default(),
                catching_up: true,
            },
            reconnects: 0,
            tx,
            shared,
        }
    }

    pub(super) async fn run(mut self, mut messages: Messages) {
        // Consumers given up in a row before they delivered anything: from the second,
        // a growing pause, so that a consumer lost again and again is not recreated in a
        // tight loop.
        let mut fruitless = 0u32;
        loop {
            let why = match self.drain(&mut messages).await {
                Next::Reset(why) => why,
                Next::Stop(error) => {
                    if let Some(e) = error {
                        let _ = self.tx.send(Err(e)).await;
                    }
                    return;
                }
            };
            self.shared.resets.fetch_add(1, Relaxed);
            log_at!(
                Info,
                TARGET,
                "ordered consumer on {}: {why}; resuming after stream sequence {}",
                self.stream.name,
                self.at.cursor.stream_seq
            );
            if self.at.cursor.consumer_seq == 0 {
                fruitless += 1;
            } else {
                fruitless = 0;
            }
            if fruitless > 1 {
                let pause = RETRY_FIRST.saturating_mul(1 << (fruitless - 2).min(6));
                Timer::after(pause.min(RETRY_MAX)).await;
            }
            messages = match self.recreate().await {
                Ok(m) => m,
                Err(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            };
        }
    }

    /// Hands over the current consumer's messages until it must be replaced.
    async fn drain(&mut self, messages: &mut Messages) -> Next {
        let client = self.stream.ctx.client.clone();
        let reconnects = self.reconnects;
        let mut ticker = Timer::interval(RECONNECT_CHECK);
        loop {
            let next = async { Some(messages.next().await) };
            let tick = async {
                ticker.next().await;
                None
            };
            let msg = match next.or(tick).await {
                None if client.statistics().reconnects != reconnects => {
                    return Next::Reset("the client reconnected")
                }
                None => continue,
                Some(None) => return Next::Reset("the pulls ended"),
                Some(Some(Err(Error::JetStream(JetStreamError::ConsumerDeleted)))) => {
                    return Next::Reset("the consumer is gone")
                }
                Some(Some(Err(e))) => return Next::Stop(Some(e)),
                Some(Some(Ok(msg))) => msg,
            };
            if let Some(next) = self.hand_over(msg).await {
                return next;
            }
        }
    }

    /// Hands `msg` over if it is the next one: nothing if all is well, else why to stop.
    async fn hand_over(&mut self, msg: Message) -> Option<Next> {
        let Ok(info) = msg.info() else {
            return None;
        };
        let (cseq, sseq, pending) = (info.consumer_sequence, info.stream_sequence, info.pending);
        if cseq != self.at.cursor.consumer_seq + 1 {
            return Some(Next::Reset("a message was lost (consumer sequence gap)"));
        }
        self.at.cursor.consumer_seq = cseq;
        if pending == 0 {
            self.at.catching_up = false;
        }
        // Handed over already (a consumer started again on the last values per subject).
        if sseq <= self.at.cursor.stream_seq {
            return None;
        }
        self.at.cursor.stream_seq = sseq;
        match self.tx.send(Ok(msg)).await {
            Ok(()) => None,
            Err(_) => Some(Next::Stop(None)),
        }
    }

    /// Replaces the consumer, retrying while the server cannot take the create.
    async fn recreate(&mut self) -> Result<Messages> {
        if let Some(old) = self.set_current(None) {
            delete_later(old);
        }
        let mut pause = RETRY_FIRST;
        loop {
            match self.create().await {
                Ok(messages) => return Ok(messages),
                Err(e) if worth_retrying(&e) => {
                    log_at!(
                        Warn,
                        TARGET,
                        "ordered consumer on {}: cannot recreate it yet ({e}); retrying in {pause:?}",
                        self.stream.name
                    );
                    Timer::after(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Replaces the consumer the stream deletes when dropped; returns the one before.
    fn set_current(&self, consumer: Option<Consumer>) -> Option<Consumer> {
        let mut current = self
            .shared
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *current, consumer)
    }

    /// Creates the next consumer and starts pulling from it.
    pub(super) async fn create(&mut self) -> Result<Messages> {
        self.at.serial += 1;
        self.reconnects = self.stream.ctx.client.statistics().reconnects;
        let config = self.at.config(&self.plan);
        let consumer = self.stream.create_consumer(&config).await?;
        let info = consumer.cached_info().cloned().unwrap_or_default();
        if self.at.serial == 1 {
            self.at.start_floor = info.delivered.stream_seq;
            self.shared.initial_pending.store(info.num_pending, Relaxed);
        }
        if info.num_pending == 0 {
            self.at.catching_up = false;
        }
        self.at.cursor.consumer_seq = 0;
        // Known before the pulls start, so that a drop deletes it whatever happens next.
        self.set_current(Some(consumer.clone()));
        consumer
            .messages()
            .batch(self.plan.batch)
            .expires(DEFAULT_CONSUME_EXPIRES)
            .heartbeat(self.plan.heartbeat)
            .await
    }
}

impl Position {
    /// The next consumer's configuration: the user's start the first time (and while
    /// catching up on the last values per subject), else from the stream sequence after
    /// the last one handed over.
    fn config(&self, plan: &Plan) -> ConsumerConfig {
        let mut config = ConsumerConfig {
            name: Some(format!("{}_{}", self.prefix, self.serial)),
            ack_policy: AckPolicy::None,
            max_deliver: 1,
            headers_only: plan.headers_only,
            inactive_threshold: INACTIVE_THRESHOLD,
            num_replicas: 1,
            mem_storage: true,
            ..ConsumerConfig::default()
        };
        match plan.filters.as_slice() {
            [] => {}
            [one] => config.filter_subject = Some(one.clone()),
            many => {
                config
                    .other
                    .insert("filter_subjects".into(), many.to_vec().into());
            }
        }
        let resume_from = match self.cursor.stream_seq {
            0 => self.start_floor,
            seq => seq,
        };
        let again = plan.deliver == DeliverPolicy::LastPerSubject && self.catching_up;
        if self.serial == 1 || again {
            config.deliver_policy = plan.deliver;
            if plan.deliver == DeliverPolicy::ByStartSequence {
                config.opt_start_seq = Some(plan.start_sequence.max(1));
            }
            if let (DeliverPolicy::ByStartTime, Some(t)) = (plan.deliver, plan.start_time) {
                config.opt_start_time = Some(rfc3339::format(t));
            }
        } else {
            config.deliver_policy = DeliverPolicy::ByStartSequence;
            config.opt_start_seq = Some(resume_from + 1);
        }
        config
    }
}

fn random_name() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(10)
        .collect()
}

/// Whether creating a consumer may work if tried again later: the server is away,
/// restarting, or short of resources for now.
fn worth_retrying(e: &Error) -> bool {
    match e {
        Error::Timeout
        | Error::ConnectionLost
        | Error::NoResponders
        | Error::Io(_)
        | Error::ReconnectBufferFull => true,
        Error::JetStream(JetStreamError::NotEnabled { .. }) => true,
        Error::JetStream(JetStreamError::Api(api)) => api.code >= 500,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jetstream::DEFAULT_ORDERED_HEARTBEAT;

    fn plan(deliver: DeliverPolicy, filters: &[&str]) -> Plan {
        Plan {
            filters: filters.iter().map(|s| s.to_string()).collect(),
            deliver,
            start_sequence: 7,
            start_time: None,
            headers_only: false,
            heartbeat: DEFAULT_ORDERED_HEARTBEAT,
            batch: 10,
        }
    }

    fn first() -> Position {
        Position {
            prefix: "p".into(),
            serial: 1,
            start_floor: 41,
            cursor: Cursor::default(),
            catching_up: true,
        }
    }

    #[test]
    fn the_first_consumer_starts_where_asked_and_the_next_after_the_cursor() {
        let plan = plan(DeliverPolicy::ByStartSequence, &["s.a"]);
        let mut at = first();
        let config = at.config(&plan);
        assert_eq!(config.name.as_deref(), Some("p_1"));
        assert_eq!(config.ack_policy, AckPolicy::None);
        assert_eq!(config.deliver_policy, DeliverPolicy::ByStartSequence);
        assert_eq!(config.opt_start_seq, Some(7));
        assert_eq!(config.filter_subject.as_deref(), Some("s.a"));
        assert!(config.mem_storage && config.max_deliver == 1);

        at.serial = 2;
        assert_eq!(
            at.config(&plan).opt_start_seq,
            Some(42),
            "nothing delivered yet"
        );
        at.cursor.stream_seq = 50;
        at.serial = 3;
        let after = at.config(&plan);
        assert_eq!(after.name.as_deref(), Some("p_3"));
        assert_eq!(after.deliver_policy, DeliverPolicy::ByStartSequence);
        assert_eq!(after.opt_start_seq, Some(51));
    }

    #[test]
    fn a_start_time_is_sent_in_rfc_3339() {
        let mut plan = plan(DeliverPolicy::ByStartTime, &[]);
        plan.start_time = Some(std::time::UNIX_EPOCH + Duration::from_secs(86_400));
        let config = first().config(&plan);
        assert_eq!(config.deliver_policy, DeliverPolicy::ByStartTime);
        assert_eq!(
            config.opt_start_time.as_deref(),
            Some("1970-01-02T00:00:00.000000000Z")
        );
        assert_eq!(config.filter_subject, None);
    }

    #[test]
    fn last_per_subject_starts_again_while_catching_up() {
        let plan = plan(DeliverPolicy::LastPerSubject, &["s.>"]);
        let mut at = first();
        at.serial = 2;
        at.cursor.stream_seq = 5;
        assert_eq!(
            at.config(&plan).deliver_policy,
            DeliverPolicy::LastPerSubject
        );
        assert_eq!(at.config(&plan).opt_start_seq, None);
        at.catching_up = false;
        assert_eq!(at.config(&plan).opt_start_seq, Some(6));
    }

    #[test]
    fn several_filters_go_in_filter_subjects() {
        let config = first().config(&plan(DeliverPolicy::All, &["a", "b"]));
        assert_eq!(config.filter_subject, None);
        assert_eq!(
            config.other["filter_subjects"],
            serde_json::json!(["a", "b"])
        );
    }
}
