//! Who we are to the server beyond user/password and tokens: an NKey seed, JWT credentials
//! (a `.creds` file or its text), or a JWT with a signer of the user's own. Held so that no
//! secret shows in `Debug`; turned into the CONNECT fields (`nkey`, `jwt`, `sig`) with the
//! server's nonce at each handshake, so a rotated creds file is read again on reconnect.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[cfg(feature = "nkeys")]
use crate::error::FileError;
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
            Credential::SeedFile(path) => write!(f, "NKeySeedFile({})", shown(path)),
            Credential::CredsFile(path) => write!(f, "CredsFile({})", shown(path)),
            Credential::Creds(_) => f.write_str("Creds(***)"),
            Credential::Jwt(..) => f.write_str("Jwt(***, signer)"),
        }
    }
}

/// The CONNECT fields a credential gives (its `Debug` shows which are set, not what).
#[derive(Default)]
pub(crate) struct Signed {
    pub(crate) nkey: Option<String>,
    pub(crate) jwt: Option<String>,
    pub(crate) sig: Option<String>,
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("nkey", &self.nkey)
            .field("jwt", &self.jwt.as_ref().map(|_| "***"))
            .field("sig", &self.sig.as_ref().map(|_| "***"))
            .finish()
    }
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
            Credential::SeedFile(path) => format!("the NKey seed file {}", shown(path)),
            Credential::CredsFile(path) => format!("the credentials file {}", shown(path)),
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
                        let sig = sign(nonce.as_bytes())
                            .map_err(|e| Error::Credentials(Box::new(SignerError(e))))?;
                        Some(crate::encoding::base64url(&sig))
                    }
                    // No nonce, nothing to sign (the server checks no signature then).
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
        let read = |path: &PathBuf, what: &'static str| {
            std::fs::read_to_string(path).map_err(|e| file_error("cannot read", what, path, e))
        };
        let (jwt, seed) = match self {
            Credential::Seed(seed) => (None, seed.0.clone()),
            Credential::SeedFile(path) => (None, read(path, SEED_FILE)?),
            Credential::CredsFile(path) => {
                let creds = crate::creds::parse_creds(&read(path, CREDS_FILE)?)
                    .map_err(|e| in_file(e, CREDS_FILE, path))?;
                (Some(creds.jwt), creds.seed)
            }
            Credential::Creds(text) => {
                let creds = crate::creds::parse_creds(&text.0)?;
                (Some(creds.jwt), creds.seed)
            }
            Credential::Jwt(..) => return Err(Error::Credentials("a JWT signs itself".into())),
        };
        let key = crate::nkeys::KeyPair::from_seed(&seed).map_err(|e| match self {
            Credential::SeedFile(path) => in_file(e, SEED_FILE, path),
            Credential::CredsFile(path) => in_file(e, CREDS_FILE, path),
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

#[cfg(feature = "nkeys")]
const SEED_FILE: &str = "NKey seed file";
#[cfg(feature = "nkeys")]
const CREDS_FILE: &str = "credentials file";

/// A credentials error about the file at `path` (shown only if it looks like a path),
/// caused by `source`.
#[cfg(feature = "nkeys")]
fn file_error(
    doing: &'static str,
    what: &'static str,
    path: &Path,
    source: impl Into<BoxError>,
) -> Error {
    Error::Credentials(Box::new(FileError::new(doing, what, shown(path), source)))
}

/// Says which file a credentials error is about: its cause becomes the source.
#[cfg(feature = "nkeys")]
fn in_file(e: Error, what: &'static str, path: &Path) -> Error {
    match e {
        Error::Credentials(why) => file_error("cannot use", what, path, why),
        other => other,
    }
}

/// A file path as errors and `Debug` may show it: quoted, unless it looks like the secret
/// itself given where the path belongs (`NATS_NKEY=SU...`, or a creds file's text in
/// `NATS_CREDS`), which is then not shown.
fn shown(path: &Path) -> String {
    let text = path.to_string_lossy();
    let trimmed = text.trim();
    let seed_like = trimmed.len() >= 50
        && trimmed.starts_with('S')
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if seed_like || text.contains(['\n', '\r']) || text.contains("BEGIN") || text.contains("eyJ") {
        "(not shown: it looks like a seed or credentials, not a file path)".into()
    } else {
        format!("{path:?}")
    }
}

/// The user's JWT signer refused the nonce; its error is the source. Inside
/// [`Error::Credentials`].
#[derive(Debug)]
struct SignerError(BoxError);

impl fmt::Display for SignerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the JWT signer failed: {}", self.0)
    }
}

impl std::error::Error for SignerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_jwt_signer_is_the_source_of_the_credentials_error() {
        use std::error::Error as _;
        #[derive(Debug)]
        struct Refused;
        impl fmt::Display for Refused {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the key store is locked")
            }
        }
        impl std::error::Error for Refused {}
        let signer: Signer = Arc::new(|_: &[u8]| Err(Refused.into()));
        let cred = Credential::Jwt(Secret("eyJx.eyJy.zz".into()), signer);
        let err = cred.sign_in(Some("nonce")).unwrap_err();
        assert!(matches!(err, Error::Credentials(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "credentials: the JWT signer failed: the key store is locked"
        );
        let signer = err.source().expect("the signer's failure");
        let cause = signer.source().expect("the signer's own error");
        assert!(cause.downcast_ref::<Refused>().is_some(), "{cause:?}");
    }

    const SEED: &str = "SUACH75SWCM5D2JMJM6EKLR2WDARVGZT4QC6LX3AGHSWOMVAKERABBBRWM";

    #[test]
    fn a_secret_given_where_a_path_belongs_is_never_shown() {
        let creds = format!("-----BEGIN NATS USER JWT-----\neyJx.eyJy.zz\n{SEED}\n");
        for given in [SEED.to_string(), format!("{SEED}\n"), creds] {
            for cred in [
                Credential::SeedFile(given.clone().into()),
                Credential::CredsFile(given.clone().into()),
            ] {
                let debug = format!("{cred:?}");
                assert!(!debug.contains("SUACH75"), "{debug}");
                let err = cred.sign_in(Some("nonce")).unwrap_err().to_string();
                assert!(!err.contains("SUACH75") && !err.contains("eyJ"), "{err}");
            }
        }
        let path = Credential::SeedFile("/etc/nats/user.nk".into());
        assert_eq!(format!("{path:?}"), r#"NKeySeedFile("/etc/nats/user.nk")"#);
    }

    /// A path no test creates.
    #[cfg(feature = "nkeys")]
    fn missing(name: &str) -> PathBuf {
        let dir = format!("panini-missing-{}", std::process::id());
        std::env::temp_dir().join(dir).join(name)
    }

    #[cfg(feature = "nkeys")]
    #[test]
    fn a_missing_creds_or_seed_file_keeps_the_io_error_as_the_source() {
        use std::error::Error as _;
        let path = missing("user.creds");
        for (cred, what) in [
            (Credential::CredsFile(path.clone()), "credentials file"),
            (Credential::SeedFile(path.clone()), "NKey seed file"),
        ] {
            let err = cred.sign_in(Some("nonce")).unwrap_err();
            assert!(matches!(err, Error::Credentials(_)), "{err:?}");
            let file = err.source().expect("the file error");
            let io = file
                .source()
                .and_then(|e| e.downcast_ref::<std::io::Error>());
            assert_eq!(
                io.map(std::io::Error::kind),
                Some(std::io::ErrorKind::NotFound),
                "{err:?}"
            );
            let text = err.to_string();
            let start = format!("credentials: cannot read the {what} {path:?}: ");
            assert!(text.starts_with(&start), "{text}");
        }
    }

    #[cfg(feature = "nkeys")]
    #[test]
    fn a_bad_creds_file_names_the_file_and_keeps_the_cause() {
        use std::error::Error as _;
        let dir = missing("");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.creds");
        std::fs::write(&path, "").unwrap();
        let err = Credential::CredsFile(path.clone())
            .sign_in(Some("nonce"))
            .unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        let text = err.to_string();
        let start = format!("credentials: cannot use the credentials file {path:?}: ");
        assert!(text.starts_with(&start), "{text}");
        let cause = err.source().and_then(|file| file.source());
        assert!(
            cause.is_some_and(|c| text.ends_with(&c.to_string())),
            "{err:?}"
        );
    }

    #[test]
    fn debug_shows_the_kind_of_credential_never_its_value() {
        let signer: Signer = Arc::new(|_: &[u8]| Ok(vec![0; 64]));
        for cred in [
            Credential::Seed(Secret(SEED.into())),
            Credential::Creds(Secret(SEED.into())),
            Credential::Jwt(Secret("eyJhbGc.eyJzdWI.sig".into()), signer),
        ] {
            let debug = format!("{cred:?}");
            assert!(
                !debug.contains("SUACH75") && !debug.contains("eyJ"),
                "{debug}"
            );
        }
        let signed = Signed {
            nkey: Some("UAB".into()),
            jwt: Some("eyJhbGc.x.y".into()),
            sig: Some("c2ln".into()),
        };
        let debug = format!("{signed:?}");
        assert!(!debug.contains("eyJ") && !debug.contains("c2ln"), "{debug}");
    }
}
