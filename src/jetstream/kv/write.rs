//! Writing keys: [`Store::put`], [`Store::create`] and [`Store::update`] (publishes
//! with an expected last revision of the key), [`Store::delete`] and [`Store::purge`]
//! (markers). Each returns the revision it wrote.

use super::{check_key, KvError, Operation, Store};
use crate::error::{Error, Result};
use crate::jetstream::{ApiError, PublishOptions};
use crate::message::Headers;

impl Store {
    /// Writes `value` as the key's new revision, whatever was there; returns the revision.
    pub async fn put(&self, key: &str, value: impl AsRef<[u8]>) -> Result<u64> {
        self.write(key, value.as_ref(), &PublishOptions::new())
            .await
    }

    /// Writes `value` only if the key has no value: it never had one, or its last revision
    /// is a delete or purge marker. Otherwise [`KvError::KeyExists`].
    pub async fn create(&self, key: &str, value: impl AsRef<[u8]>) -> Result<u64> {
        let value = value.as_ref();
        let absent = PublishOptions::new().expected_last_subject_sequence(0);
        let refused = match self.write(key, value, &absent).await {
            Err(e) if is_wrong_last(&e) => e,
            other => return other,
        };
        // The key has revisions; a value only if the last one is not a marker.
        let exists = || Error::from(KvError::KeyExists { key: key.into() });
        match self.entry(key).await? {
            Some(last) if last.operation != Operation::Put => {
                let after = PublishOptions::new().expected_last_subject_sequence(last.revision);
                match self.write(key, value, &after).await {
                    Err(e) if is_wrong_last(&e) => Err(exists()),
                    other => other,
                }
            }
            Some(_) => Err(exists()),
            // Purged in between by someone else: report the refusal we got.
            None => Err(refused),
        }
    }

    /// Writes `value` only if the key's last revision is `revision` (0: the key has none),
    /// so that a read-modify-write loses no one else's write. Otherwise
    /// [`KvError::WrongRevision`].
    pub async fn update(&self, key: &str, value: impl AsRef<[u8]>, revision: u64) -> Result<u64> {
        let opts = PublishOptions::new().expected_last_subject_sequence(revision);
        self.write_expecting(key, value.as_ref(), opts, revision)
            .await
    }

    /// Deletes the key: a `DEL` marker becomes its last revision (older ones stay, within
    /// the bucket's history). Returns the marker's revision.
    pub async fn delete(&self, key: &str) -> Result<u64> {
        self.mark(key, "DEL", None).await
    }

    /// Deletes the key only if its last revision is `revision`, else
    /// [`KvError::WrongRevision`].
    pub async fn delete_expecting(&self, key: &str, revision: u64) -> Result<u64> {
        self.mark(key, "DEL", Some(revision)).await
    }

    /// Purges the key: a `PURGE` marker replaces all its revisions. Returns the marker's
    /// revision.
    pub async fn purge(&self, key: &str) -> Result<u64> {
        self.mark(key, "PURGE", None).await
    }

    async fn mark(&self, key: &str, operation: &str, revision: Option<u64>) -> Result<u64> {
        let mut headers = Headers::new();
        headers.insert("KV-Operation", operation);
        if operation == "PURGE" {
            headers.insert("Nats-Rollup", "sub");
        }
        let mut opts = PublishOptions::new().headers(headers);
        let Some(revision) = revision else {
            return self.write(key, b"", &opts).await;
        };
        opts = opts.expected_last_subject_sequence(revision);
        self.write_expecting(key, b"", opts, revision).await
    }

    /// [`write`](Self::write), a refused revision becoming [`KvError::WrongRevision`].
    async fn write_expecting(
        &self,
        key: &str,
        value: &[u8],
        opts: PublishOptions,
        expected: u64,
    ) -> Result<u64> {
        let written = self.write(key, value, &opts).await;
        match written.as_ref().err().and_then(wrong_last) {
            Some(error) => Err(KvError::WrongRevision {
                key: key.into(),
                expected,
                error,
            }
            .into()),
            None => written,
        }
    }

    async fn write(&self, key: &str, value: &[u8], opts: &PublishOptions) -> Result<u64> {
        check_key(key)?;
        let subject = format!("{}{key}", self.put_prefix);
        Ok(self.ctx().publish_with(&subject, value, opts).await?.seq)
    }
}

/// The server's refusal of the expected last revision, if that is what `e` is.
fn wrong_last(e: &Error) -> Option<ApiError> {
    e.api_error()
        .filter(|api| api.is_wrong_last_sequence())
        .cloned()
}

fn is_wrong_last(e: &Error) -> bool {
    wrong_last(e).is_some()
}
