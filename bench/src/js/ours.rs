//! The JetStream workloads against panini's `jetstream` layer, on smol: `smol::block_on`
//! drives the round on the calling thread; the client's connection task, the ack tasks of
//! `publish_async` and the pull task of `messages()` run on smol's global executor.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Instant;

use futures_lite::{FutureExt, StreamExt};
use panini::client::Client;
use panini::jetstream::kv::KvConfig;
use panini::jetstream::{AckPolicy, ConsumerConfig, Context, StorageType, StreamConfig};
use smol::Timer;

use crate::contender::{Latency, Meter, Throughput};
use crate::js_contender::{
    expect_stored, kv_key, payload, JsContender, KvLatency, Spec, CONSUMER, ROUND_TIMEOUT, WINDOW,
};
use crate::Result;

#[derive(Debug)]
pub struct Ours;

/// The stream of every round: file storage, one replica, the server's defaults otherwise.
fn stream_config(spec: &Spec) -> StreamConfig {
    StreamConfig {
        storage: StorageType::File,
        num_replicas: 1,
        ..StreamConfig::new(spec.stream.as_str(), [spec.subject.as_str()])
    }
}

/// A durable pull consumer with explicit acks, from the first message.
fn consumer_config() -> ConsumerConfig {
    ConsumerConfig::durable(CONSUMER).ack_policy(AckPolicy::Explicit)
}

/// Connects and makes the round's stream.
async fn setup(url: &str, spec: &Spec) -> Result<(Client, Context)> {
    let client = panini::client::connect(url).await?;
    let js = Context::new(client.clone());
    js.create_stream(&stream_config(spec)).await?;
    Ok((client, js))
}

/// Deletes the round's stream and closes the client.
async fn teardown(client: Client, js: &Context, spec: &Spec) -> Result<()> {
    js.delete_stream(&spec.stream).await?;
    client.close().await;
    Ok(())
}

/// `work`, failing after [`ROUND_TIMEOUT`].
async fn bounded<T>(what: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
    let late = async {
        Timer::after(ROUND_TIMEOUT).await;
        Err(format!("ours: {what} not done within {ROUND_TIMEOUT:?}").into())
    };
    work.or(late).await
}

/// `count` publishes through `js` (its window: [`WINDOW`]), at most [`WINDOW`] acks
/// outstanding here too, each ack checked.
async fn publish_windowed(js: &Context, subject: &str, body: &[u8], count: usize) -> Result<()> {
    let mut acks = VecDeque::with_capacity(WINDOW);
    for _ in 0..count {
        if acks.len() == WINDOW {
            if let Some(ack) = acks.pop_front() {
                ack.await?;
            }
        }
        acks.push_back(js.publish_async(subject, body).await?);
    }
    for ack in acks {
        ack.await?;
    }
    Ok(())
}

impl JsContender for Ours {
    fn name(&self) -> &'static str {
        "ours"
    }

    fn prepare(&self, url: &str, spec: &Spec) -> Result<()> {
        smol::block_on(async {
            let (client, js) = setup(url, spec).await?;
            let stream = js.stream(spec.stream.as_str());
            stream.create_consumer(&consumer_config()).await?;
            client.close().await;
            Ok(())
        })
    }

    fn publish_sync(&self, url: &str, spec: &Spec, count: usize) -> Result<Latency> {
        smol::block_on(async {
            let (client, js) = setup(url, spec).await?;
            let body = payload();
            js.publish(&spec.subject, &body).await?; // warm-up
            let mut samples = Vec::with_capacity(count);
            let meter = Meter::start();
            for _ in 0..count {
                let sent = Instant::now();
                js.publish(&spec.subject, &body).await?;
                samples.push(sent.elapsed());
            }
            let figure = Latency::from_samples(samples, &meter);
            let stored = js.stream(spec.stream.as_str()).info().await?.state.messages;
            expect_stored("ours", stored, count + 1)?;
            teardown(client, &js, spec).await?;
            Ok(figure)
        })
    }

    fn publish_window(&self, url: &str, spec: &Spec, count: usize) -> Result<Throughput> {
        smol::block_on(async {
            let (client, js) = setup(url, spec).await?;
            let js = js.with_max_pending_acks(WINDOW);
            let body = payload();
            js.publish(&spec.subject, &body).await?; // warm-up
            let meter = Meter::start();
            let publishing = publish_windowed(&js, &spec.subject, &body, count);
            bounded("windowed publish", publishing).await?;
            let figure = Throughput::of(count, &meter);
            let stored = js.stream(spec.stream.as_str()).info().await?.state.messages;
            expect_stored("ours", stored, count + 1)?;
            teardown(client, &js, spec).await?;
            Ok(figure)
        })
    }

    fn consume(&self, url: &str, spec: &Spec, count: usize) -> Result<Throughput> {
        smol::block_on(async {
            let (client, js) = setup(url, spec).await?;
            let filling = js.clone().with_max_pending_acks(WINDOW);
            publish_windowed(&filling, &spec.subject, &payload(), count).await?;
            let stream = js.stream(spec.stream.as_str());
            expect_stored("ours", stream.info().await?.state.messages, count)?;
            let consumer = stream.create_consumer(&consumer_config()).await?;
            let meter = Meter::start();
            let consuming = async {
                let mut messages = consumer.messages().await?;
                for _ in 0..count {
                    let msg = messages.next().await.ok_or("ours: messages() ended")??;
                    msg.ack().await?;
                }
                drop(messages);
                all_acked(&consumer, count).await
            };
            bounded("consume", consuming).await?;
            let figure = Throughput::of(count, &meter);
            teardown(client, &js, spec).await?;
            Ok(figure)
        })
    }

    fn prepare_kv(&self, url: &str, spec: &Spec) -> Result<()> {
        smol::block_on(async {
            let client = panini::client::connect(url).await?;
            Context::new(client.clone())
                .create_key_value(&kv_config(spec))
                .await?;
            client.close().await;
            Ok(())
        })
    }

    fn kv(&self, url: &str, spec: &Spec, count: usize) -> Result<KvLatency> {
        smol::block_on(async {
            let client = panini::client::connect(url).await?;
            let js = Context::new(client.clone());
            let store = js.create_key_value(&kv_config(spec)).await?;
            let body = payload();
            store.put(&kv_key(0), &body).await?; // warm-up
            let meter = Meter::start();
            let mut samples = Vec::with_capacity(count);
            for i in 0..count {
                let key = kv_key(i);
                let sent = Instant::now();
                store.put(&key, &body).await?;
                samples.push(sent.elapsed());
            }
            let put = Latency::from_samples(samples, &meter);
            let meter = Meter::start();
            let mut samples = Vec::with_capacity(count);
            for i in 0..count {
                let key = kv_key(i);
                let sent = Instant::now();
                let entry = store.get(&key).await?;
                samples.push(sent.elapsed());
                if entry.map(|e| e.value) != Some(body.clone()) {
                    return Err(format!("ours: wrong value for {key}").into());
                }
            }
            let get = Latency::from_samples(samples, &meter);
            js.delete_key_value(&spec.bucket()).await?;
            client.close().await;
            Ok(KvLatency::of(put, get))
        })
    }
}

/// A bucket of history 1, file storage, one replica (`KvConfig`'s defaults, spelt out).
fn kv_config(spec: &Spec) -> KvConfig {
    KvConfig {
        history: 1,
        storage: StorageType::File,
        replicas: 1,
        ..KvConfig::new(spec.bucket())
    }
}

/// Asks the consumer's state until the server has recorded every ack of `count`
/// messages, none redelivered.
async fn all_acked(consumer: &panini::jetstream::Consumer, count: usize) -> Result<()> {
    loop {
        let info = consumer.info().await?;
        if info.num_redelivered > 0 {
            return Err(format!("ours: {} redelivered", info.num_redelivered).into());
        }
        if info.ack_floor.stream_seq >= count as u64 && info.num_ack_pending == 0 {
            return Ok(());
        }
        // Acks are plain publishes: the server may not have processed the last ones yet;
        // ask again (each ask is a round trip).
    }
}
