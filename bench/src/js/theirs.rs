//! The same workloads against async-nats's JetStream, on tokio's multi-thread runtime with
//! its default worker count (one per core), as `#[tokio::main]` gives: `Runtime::block_on`
//! drives the round on the calling thread; the client's connection task, the context's ack
//! handler and the pull consumer's tasks run on the workers.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Instant;

use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer};
use async_nats::jetstream::{self, kv, stream, Context, ContextBuilder};
use async_nats::Client;
use bytes::Bytes;
use futures::StreamExt;
use tokio::runtime::Runtime;

use crate::contender::{Latency, Meter, Throughput};
use crate::js_contender::{
    expect_stored, kv_key, payload, JsContender, KvLatency, Spec, CONSUMER, ROUND_TIMEOUT, WINDOW,
};
use crate::Result;

#[derive(Debug)]
pub struct AsyncNats {
    rt: Runtime,
}

impl AsyncNats {
    pub fn new() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        Ok(AsyncNats { rt })
    }
}

/// The stream of every round: file storage, one replica, the server's defaults otherwise.
fn stream_config(spec: &Spec) -> stream::Config {
    stream::Config {
        name: spec.stream.clone(),
        subjects: vec![spec.subject.clone()],
        storage: stream::StorageType::File,
        num_replicas: 1,
        ..Default::default()
    }
}

/// A durable pull consumer with explicit acks, from the first message.
fn consumer_config() -> pull::Config {
    pull::Config {
        durable_name: Some(CONSUMER.to_string()),
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    }
}

/// Connects and makes the round's stream; the context is `jetstream::new`'s.
async fn setup(url: &str, spec: &Spec) -> Result<(Client, Context, stream::Stream)> {
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client.clone());
    let stream = js.create_stream(stream_config(spec)).await?;
    Ok((client, js, stream))
}

/// Deletes the round's stream and closes the client.
async fn teardown(client: Client, js: &Context, spec: &Spec) -> Result<()> {
    js.delete_stream(&spec.stream).await?;
    client.drain().await?;
    Ok(())
}

/// `work`, failing after [`ROUND_TIMEOUT`].
async fn bounded<T>(what: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(ROUND_TIMEOUT, work)
        .await
        .map_err(|_| format!("async-nats: {what} not done within {ROUND_TIMEOUT:?}"))?
}

/// A context whose own window is [`WINDOW`] acks, waiting (not failing) when it is full:
/// what `publish_async` with `with_max_pending_acks(WINDOW)` is on our side.
fn windowed(client: &Client) -> Context {
    ContextBuilder::new()
        .max_ack_inflight(WINDOW)
        .backpressure_on_inflight(true)
        .build(client.clone())
}

/// `count` publishes through `js`, at most [`WINDOW`] acks outstanding, each ack checked.
async fn publish_windowed(js: &Context, subject: &str, body: &Bytes, count: usize) -> Result<()> {
    let subject = async_nats::Subject::from(subject);
    let mut acks = VecDeque::with_capacity(WINDOW);
    for _ in 0..count {
        if acks.len() == WINDOW {
            if let Some(ack) = acks.pop_front() {
                ack.await?;
            }
        }
        acks.push_back(js.publish(subject.clone(), body.clone()).await?);
    }
    for ack in acks {
        ack.await?;
    }
    Ok(())
}

impl JsContender for AsyncNats {
    fn name(&self) -> &'static str {
        "async-nats"
    }

    fn prepare(&self, url: &str, spec: &Spec) -> Result<()> {
        self.rt.block_on(async {
            let (client, _js, stream) = setup(url, spec).await?;
            stream.create_consumer(consumer_config()).await?;
            client.drain().await?;
            Ok(())
        })
    }

    fn publish_sync(&self, url: &str, spec: &Spec, count: usize) -> Result<Latency> {
        self.rt.block_on(async {
            let (client, js, mut stream) = setup(url, spec).await?;
            let subject = async_nats::Subject::from(spec.subject.as_str());
            let body = Bytes::from(payload());
            js.publish(subject.clone(), body.clone()).await?.await?; // warm-up
            let mut samples = Vec::with_capacity(count);
            let meter = Meter::start();
            for _ in 0..count {
                let sent = Instant::now();
                js.publish(subject.clone(), body.clone()).await?.await?;
                samples.push(sent.elapsed());
            }
            let figure = Latency::from_samples(samples, &meter);
            let stored = stream.info().await?.state.messages;
            expect_stored("async-nats", stored, count + 1)?;
            teardown(client, &js, spec).await?;
            Ok(figure)
        })
    }

    fn publish_window(&self, url: &str, spec: &Spec, count: usize) -> Result<Throughput> {
        self.rt.block_on(async {
            let (client, _, mut stream) = setup(url, spec).await?;
            let js = windowed(&client);
            let body = Bytes::from(payload());
            js.publish(spec.subject.clone(), body.clone())
                .await?
                .await?; // warm-up
            let meter = Meter::start();
            let publishing = publish_windowed(&js, &spec.subject, &body, count);
            bounded("windowed publish", publishing).await?;
            let figure = Throughput::of(count, &meter);
            let stored = stream.info().await?.state.messages;
            expect_stored("async-nats", stored, count + 1)?;
            teardown(client, &js, spec).await?;
            Ok(figure)
        })
    }

    fn consume(&self, url: &str, spec: &Spec, count: usize) -> Result<Throughput> {
        self.rt.block_on(async {
            let (client, js, mut stream) = setup(url, spec).await?;
            let body = Bytes::from(payload());
            publish_windowed(&windowed(&client), &spec.subject, &body, count).await?;
            expect_stored("async-nats", stream.info().await?.state.messages, count)?;
            let mut consumer = stream.create_consumer(consumer_config()).await?;
            let meter = Meter::start();
            let consuming = async {
                let mut messages = consumer.messages().await?;
                for _ in 0..count {
                    let msg = messages
                        .next()
                        .await
                        .ok_or("async-nats: messages() ended")??;
                    msg.ack().await?;
                }
                drop(messages);
                all_acked(&mut consumer, count).await
            };
            bounded("consume", consuming).await?;
            let figure = Throughput::of(count, &meter);
            teardown(client, &js, spec).await?;
            Ok(figure)
        })
    }

    fn prepare_kv(&self, url: &str, spec: &Spec) -> Result<()> {
        self.rt.block_on(async {
            let client = async_nats::connect(url).await?;
            create_bucket(&jetstream::new(client.clone()), &spec.bucket()).await?;
            client.drain().await?;
            Ok(())
        })
    }

    fn kv(&self, url: &str, spec: &Spec, count: usize) -> Result<KvLatency> {
        self.rt.block_on(async {
            let client = async_nats::connect(url).await?;
            let js = jetstream::new(client.clone());
            let bucket = spec.bucket();
            let store = create_bucket(&js, &bucket).await?;
            let body = Bytes::from(payload());
            store.put(kv_key(0), body.clone()).await?; // warm-up
            let meter = Meter::start();
            let mut samples = Vec::with_capacity(count);
            for i in 0..count {
                let key = kv_key(i);
                let sent = Instant::now();
                store.put(key, body.clone()).await?;
                samples.push(sent.elapsed());
            }
            let put = Latency::from_samples(samples, &meter);
            let meter = Meter::start();
            let mut samples = Vec::with_capacity(count);
            for i in 0..count {
                let key = kv_key(i);
                let sent = Instant::now();
                let value = store.get(key.as_str()).await?;
                samples.push(sent.elapsed());
                if value.as_deref() != Some(&body[..]) {
                    return Err(format!("async-nats: wrong value for {key}").into());
                }
            }
            let get = Latency::from_samples(samples, &meter);
            js.delete_key_value(&bucket).await?;
            client.drain().await?;
            Ok(KvLatency::of(put, get))
        })
    }
}

/// A bucket of history 1, file storage, one replica. Not `create_key_value`: in 0.51 it
/// asks for the account's info first and cannot read nats-server 2.9's reply (which has
/// no `reserved_memory`/`reserved_storage`; "data did not match any variant of untagged
/// enum Response"), so this makes the stream `create_key_value` would make (its
/// `kv_to_stream_config`, which uses nothing of the account here) and opens it with
/// `get_key_value`, as a client on a newer server would get it.
async fn create_bucket(js: &Context, bucket: &str) -> Result<kv::Store> {
    js.create_stream(stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(String::new()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        storage: stream::StorageType::File,
        num_replicas: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await?;
    Ok(js.get_key_value(bucket).await?)
}

/// Asks the consumer's state until the server has recorded every ack of `count`
/// messages, none redelivered.
async fn all_acked(consumer: &mut Consumer<pull::Config>, count: usize) -> Result<()> {
    loop {
        let info = consumer.info().await?;
        if info.num_redelivered > 0 {
            return Err(format!("async-nats: {} redelivered", info.num_redelivered).into());
        }
        if info.ack_floor.stream_sequence >= count as u64 && info.num_ack_pending == 0 {
            return Ok(());
        }
        // Acks are plain publishes: the server may not have processed the last ones yet;
        // ask again (each ask is a round trip).
    }
}
