//! Reading keys: [`Store::get`], [`Store::entry`] and [`Store::get_revision`], through
//! the stream's direct get when it allows it, else `STREAM.MSG.GET`. A server that
//! cannot answer a direct get (no responders) is asked the other way.

use serde::Serialize;

use super::{check_key, Entry, Store};
use crate::error::{Error, Result};
use crate::jetstream::{ApiError, ErrorCode};

/// What a read asks for.
#[derive(Clone, Copy, Debug)]
enum Which<'a> {
    /// The last message on this subject.
    Last(&'a str),
    /// The message at this sequence.
    Seq(u64),
}

#[derive(Serialize)]
struct SeqRequest {
    seq: u64,
}

impl Store {
    /// The key's value now: `None` if it has none, or if its last revision is a delete or
    /// purge marker.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>> {
        Ok(self.entry(key).await?.filter(|e| !e.is_removal()))
    }

    /// The key's last revision, delete and purge markers included (see
    /// [`Entry::operation`]): `None` if it never had one, or every one was removed.
    pub async fn entry(&self, key: &str) -> Result<Option<Entry>> {
        check_key(key)?;
        let subject = self.subject(key);
        self.read(Which::Last(&subject)).await
    }

    /// The key's revision `revision`, markers included: `None` if that revision is gone or
    /// belongs to another key.
    pub async fn get_revision(&self, key: &str, revision: u64) -> Result<Option<Entry>> {
        check_key(key)?;
        let entry = self.read(Which::Seq(revision)).await?;
        Ok(entry.filter(|e| e.key == key))
    }

    async fn read(&self, which: Which<'_>) -> Result<Option<Entry>> {
        if self.direct {
            match self.direct_get(which).await {
                Err(Error::NoResponders) => {}
                other => return other,
            }
        }
        self.message_get(which).await
    }

    /// `DIRECT.GET.<stream>.<subject>` (empty body) or `DIRECT.GET.<stream>` with a
    /// sequence: the raw message, or a `404` status when there is none.
    async fn direct_get(&self, which: Which<'_>) -> Result<Option<Entry>> {
        let ctx = self.ctx();
        let base = format!("{}.{}", ctx.prefix, self.stream.verb("DIRECT.GET")?);
        let (subject, body) = match which {
            Which::Last(subject) => (format!("{base}.{subject}"), Vec::new()),
            Which::Seq(seq) => (base, serde_json::to_vec(&SeqRequest { seq })?),
        };
        let reply = ctx
            .client
            .request_with(&subject, None, body, ctx.timeout)
            .await?;
        match reply.status {
            None => Entry::from_direct(&self.bucket, &self.prefix, reply).map(Some),
            Some(404) => Ok(None),
            Some(status) => Err(ApiError {
                code: status,
                err_code: ErrorCode(0),
                description: reply.description.unwrap_or_default(),
            }
            .into()),
        }
    }

    /// `STREAM.MSG.GET.<stream>` (the JSON form, answered by the stream leader).
    async fn message_get(&self, which: Which<'_>) -> Result<Option<Entry>> {
        let got = match which {
            Which::Last(subject) => self.stream.get_last_message(subject).await,
            Which::Seq(seq) => self.stream.get_message(seq).await,
        };
        match got {
            Ok(msg) => Ok(Some(Entry::from_stored(&self.bucket, &self.prefix, msg))),
            Err(e) if e.err_code() == Some(ErrorCode::NO_MESSAGE_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
