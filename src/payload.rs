//! Payload conversions, as Panini does them: JSON by default, `String` and bytes raw.
//!
//! | Rust type | out (publish, request, reply) | in (`Msg<T>`, responses) |
//! |---|---|---|
//! | `serde_json::Value` | compact JSON | JSON |
//! | `Json<T>` (`T: Serialize` / `Deserialize`) | compact JSON | JSON into `T` |
//! | `String`, `&str` | raw UTF-8, not quoted | UTF-8 text |
//! | `Vec<u8>`, `&[u8]` | raw | raw |

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// A value that can become a message payload.
pub trait IntoPayload {
    /// The payload bytes.
    fn into_payload(self) -> Result<Vec<u8>>;
}

/// A value that can be read from a message payload.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be decoded from a payload",
    note = "use serde_json::Value (JSON), String (text), Vec<u8> (bytes) or Json<YourType> (typed JSON)"
)]
pub trait FromPayload: Sized {
    /// Decodes the payload.
    fn from_payload(payload: &[u8]) -> Result<Self>;

    /// Decodes an owned payload (text and bytes take it without a copy).
    fn from_payload_owned(payload: Vec<u8>) -> Result<Self> {
        Self::from_payload(&payload)
    }
}

/// Typed JSON: `Json<T>` decodes into and encodes from any serde type.
///
/// ```
/// use panini::{FromPayload, IntoPayload, Json};
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Order { id: u32 }
/// let bytes = Json(Order { id: 7 }).into_payload().unwrap();
/// assert_eq!(bytes, br#"{"id":7}"#);
/// let Json(back) = Json::<Order>::from_payload(&bytes).unwrap();
/// assert_eq!(back, Order { id: 7 });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: std::fmt::Display> std::fmt::Display for Json<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl IntoPayload for serde_json::Value {
    fn into_payload(self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(&self)?)
    }
}

impl IntoPayload for &serde_json::Value {
    fn into_payload(self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }
}

impl<T: Serialize> IntoPayload for Json<T> {
    fn into_payload(self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(&self.0)?)
    }
}

impl IntoPayload for String {
    fn into_payload(self) -> Result<Vec<u8>> {
        Ok(self.into_bytes())
    }
}

impl IntoPayload for &str {
    fn into_payload(self) -> Result<Vec<u8>> {
        Ok(self.as_bytes().to_vec())
    }
}

impl IntoPayload for Vec<u8> {
    fn into_payload(self) -> Result<Vec<u8>> {
        Ok(self)
    }
}

impl IntoPayload for &[u8] {
    fn into_payload(self) -> Result<Vec<u8>> {
        Ok(self.to_vec())
    }
}

impl<const N: usize> IntoPayload for &[u8; N] {
    fn into_payload(self) -> Result<Vec<u8>> {
        Ok(self.to_vec())
    }
}

impl FromPayload for serde_json::Value {
    fn from_payload(payload: &[u8]) -> Result<Self> {
        Ok(serde_json::from_slice(payload)?)
    }
}

impl<T: DeserializeOwned> FromPayload for Json<T> {
    fn from_payload(payload: &[u8]) -> Result<Self> {
        Ok(Json(serde_json::from_slice(payload)?))
    }
}

impl FromPayload for String {
    fn from_payload(payload: &[u8]) -> Result<Self> {
        Self::from_payload_owned(payload.to_vec())
    }

    fn from_payload_owned(payload: Vec<u8>) -> Result<Self> {
        String::from_utf8(payload).map_err(|_| Error::Decode("payload is not UTF-8".into()))
    }
}

impl FromPayload for Vec<u8> {
    fn from_payload(payload: &[u8]) -> Result<Self> {
        Ok(payload.to_vec())
    }

    fn from_payload_owned(payload: Vec<u8>) -> Result<Self> {
        Ok(payload)
    }
}
