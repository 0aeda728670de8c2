//! Who we are to the server beyond user/password and tokens: an NKey seed, JWT credentials
//! (a `.creds` file or its text), or a JWT with a signer of the user's own. Held so that no
//! secret shows in `Debug`; turned into the CONNECT fields (`nkey`, `jwt`, `sig`) with the
//! server's nonce at each handshake, so a rotated creds file is read again on reconnect.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{BoxError, Error, Result};

/// A secret string: its `Debug` shows `***`.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Signs the server's nonce with the user's key (the raw 64-byte Ed25519 signature).
pub(crate) type Signer = Arc<dyn Fn(&[u8]) -> std::result::Result<Vec<u8>, BoxError> + Send + Sync>;

/// One way to authenticate with a key pair.
#[derive(Clone)]
#[cfg_attr(not(feature = "nkeys"), allow(dead_code))]
pub(crate) enum Credential {
    /// An NKey seed (`SU...`).
    Seed(Secret),
    /// A file holding an NKey seed.
    SeedFile(PathBuf),
    /// A `.creds` file: a user JWT and its seed.
    CredsFile(PathBuf),
    /// The text of a `.creds` file.
    Creds(Secret),
    /// A user JWT and a signer of the user's own.
    Jwt(Secret, Signer),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Seed(_) => f.write_str("NKeySeed(***)"),
            Credential::SeedFile(path) => f.debug_tuple("NKeySeedFile").field(path).finish(),
            Credential::CredsFile(path) => f.debug_tuple("CredsFile").field(path).finish(),
            Credential::Creds(_) => f.write_str("Creds(***)"),
            Credential::Jwt(..) => f.write_str("Jwt(***, signer)"),
        }
    }
}

/// The CONNECT fields a credential gives.
#[derive(Debug, Default)]
pub(crate) struct Signed {
    pub(crate) nkey: Option<String>,
    pub(crate) jwt: Option<String>,
    pub(crate) sig: Option<String>,
}

impl Credential {
    /// A seed or creds need the feature `nkeys` (it signs with Ed25519); a JWT with a
    /// signer of the user's own needs nothing.
    pub(crate) fn check_feature(&self) -> Result<()> {
        match self {
            Credential::Jwt(..) => Ok(()),
            _ if cfg!(feature = "nkeys") => Ok(()),
            other => Err(Error::FeatureDisabled {
                feature: "nkeys",
                needed_for: other.what(),
            }),
        }
    }

    fn what(&self) -> String {
        match self {
            Credential::Seed(_) => "an NKey seed".into(),
            Credential::SeedFile(path) => format!("the NKey seed file {path:?}"),
            Credential::CredsFile(path) => format!("the credentials file {path:?}"),
            Credential::Creds(_) => "NATS credentials (a user JWT and its seed)".into(),
            Credential::Jwt(..) => "a JWT".into(),
        }
    }

    /// The CONNECT fields, signing `nonce` (the server's challenge, as sent).
    pub(crate) fn sign_in(&self, nonce: Option<&str>) -> Result<Signed> {
        self.check_feature()?;
        match self {
            Credential::Jwt(jwt, sign) => {
                let sig = match nonce {
                    Some(nonce) => {
                        let sig = sign(nonce.as_bytes()).map_err(|e| {
                            Error::Credentials(format!("the JWT signer failed: {e}"))
                        })?;
                        Some(crate::encoding::base64url(&sig))
                    }
                    // A server that sends no nonce checks no signature (bearer JWTs).
                    None => None,
                };
                Ok(Signed {
                    nkey: None,
                    jwt: Some(jwt.0.clone()),
                    sig,
                })
            }
            #[cfg(feature = "nkeys")]
            _ => self.sign_with_seed(nonce),
            #[cfg(not(feature = "nkeys"))]
            other => Err(Error::FeatureDisabled {
                feature: "nkeys",
                needed_for: other.what(),
            }),
        }
    }

    #[cfg(feature = "nkeys")]
    fn sign_with_seed(&self, nonce: Option<&str>) -> Result<Signed> {
        let read = |path: &PathBuf, what: &str| {
            std::fs::read_to_string(path)
                .map_err(|e| Error::Credentials(format!("cannot read the {what} {path:?}: {e}")))
        };
        let (jwt, seed) = match self {
            Credential::Seed(seed) => (None, seed.0.clone()),
            Credential::SeedFile(path) => (None, read(path, "NKey seed file")?),
            Credential::CredsFile(path) => {
                let creds = crate::creds::parse_creds(&read(path, "credentials file")?)
                    .map_err(|e| in_file(e, path))?;
                (Some(creds.jwt), creds.seed)
            }
            Credential::Creds(text) => {
                let creds = crate::creds::parse_creds(&text.0)?;
                (Some(creds.jwt), creds.seed)
            }
            Credential::Jwt(..) => return Err(Error::Credentials("a JWT signs itself".into())),
        };
        let key = crate::nkeys::KeyPair::from_seed(&seed).map_err(|e| match self {
            Credential::SeedFile(path) | Credential::CredsFile(path) => in_file(e, path),
            _ => e,
        })?;
        let nonce = match (nonce, &jwt) {
            (Some(nonce), _) => nonce,
            (None, Some(_)) => "",
            (None, None) => {
                return Err(Error::Auth(
                    "the server sent no nonce: it does not take NKey authentication".into(),
                ))
            }
        };
        let sig =
            (!nonce.is_empty()).then(|| crate::encoding::base64url(&key.sign(nonce.as_bytes())));
        Ok(Signed {
            nkey: jwt.is_none().then(|| key.public_key()),
            jwt,
            sig,
        })
    }
}

/// Says which file a credentials error is about.
#[cfg(feature = "nkeys")]
fn in_file(e: Error, path: &std::path::Path) -> Error {
    match e {
        Error::Credentials(why) => Error::Credentials(format!("{path:?}: {why}")),
        other => other,
    }
}
