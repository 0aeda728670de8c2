//! Record and replay (Panini's "emulator"): a [`Recorder`] middleware writes what an app's
//! endpoints receive and answer, and what its handlers send, to a JSONL file; a [`Replay`]
//! drives an app under test with that recording and reports where its replies and sends
//! differ from the recorded ones ([`ReplayReport`]).
//!
//! ```no_run
//! use panini::record::{Recorder, Replay};
//! use panini::{App, AppHandle, Msg};
//! use serde_json::{json, Value};
//!
//! fn build_app() -> App {
//!     let mut app = App::new("orders");
//!     app.listen("orders.place", |msg: Msg<Value>, app: AppHandle| async move {
//!         app.publish("orders.placed", json!({"id": msg.data["id"], "at": "..."})).await?;
//!         Ok::<_, panini::Error>(json!({"ok": true}))
//!     });
//!     app
//! }
//!
//! // the service, recording what it does
//! fn main() -> std::io::Result<()> {
//!     let mut app = build_app();
//!     Recorder::to_file("orders.jsonl")?.attach(&mut app);
//!     app.start()
//! }
//!
//! // a test of its next version: the recording replayed against it
//! async fn replay_test(client: &panini::client::Client) -> Result<(), panini::record::RecordError> {
//!     let mut replay = Replay::from_file("orders.jsonl")?.ignore("/at");
//!     let mut app = build_app();
//!     replay.attach(&mut app);
//!     // ... start `app` against the test's NATS server, which `client` is connected to
//!     replay.run(client).await?.assert_matches();
//!     Ok(())
//! }
//! ```
//!
//! # The file
//! One JSON object a line, told apart by `"dir"` ([`Line`]). `t_ms` counts milliseconds
//! from the start of the recording (given in the first line as Unix milliseconds). A
//! payload is a JSON string when it is UTF-8, else `{"b64":"..."}`; headers are
//! `[name, value]` pairs. Each message an endpoint handles gets a `seq`, from 1; its
//! `reply` line and the `out` lines of the sends its handler made carry the same `seq`.
//!
//! ```text
//! {"dir":"meta","version":1,"unix_ms":1700000000000}
//! {"dir":"in","seq":1,"t_ms":3.2,"subject":"orders.place","reply":true,"payload":"{\"id\":7}"}
//! {"dir":"out","seq":1,"t_ms":3.4,"kind":"publish","subject":"orders.placed","payload":"{\"id\":7,\"at\":\"...\"}"}
//! {"dir":"reply","seq":1,"t_ms":3.6,"elapsed_ms":0.4,"payload":"{\"ok\":true}"}
//! {"dir":"in","seq":2,"t_ms":9.0,"subject":"blobs.put","reply":false,"payload":{"b64":"/wA="}}
//! ```
//!
//! A `reply` line is written for requests only, with `"payload":null` when the handler
//! answered nothing; a request `out` line has its `response` (or `error`). A send is
//! linked to its message when the handler's own future makes it (`await`ed in the
//! handler, or in a future it awaits); a send from a task, a hook, a sync handler or a
//! task the handler spawned has `"seq":null`. A `gap` line counts lines lost when the
//! writer fell behind.
//!
//! # Layers inside `record` (each file uses only those above it)
//! 1. `error` ([`RecordError`]) and `line` ([`Line`], the payload encoding);
//! 2. `writer`: the thread that writes the file, with a queue bounded in bytes;
//! 3. `recorder`: the middleware ([`Recorder`]) and the mark that links sends to messages;
//! 4. `compare` (payload comparison, [`ReplayReport`], [`Mismatch`]) and `recording`
//!    ([`Recording`]: a file read, and grouped by message);
//! 5. `replay`: [`Replay`] and its probe.

mod compare;
mod error;
mod line;
mod recorder;
mod recording;
mod replay;
mod writer;

pub use compare::{Mismatch, ReplayReport};
pub use error::RecordError;
pub use line::{Body, Gap, Line, Meta, Payload, Received, Replied, Sent, SentKind, FORMAT_VERSION};
pub use recorder::Recorder;
pub use recording::Recording;
pub use replay::Replay;
