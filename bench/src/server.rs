//! The one `nats-server` both clients talk to: started on a port the OS picks, killed on
//! `Drop` (so a failed run never leaves it behind). [`NatsServer::start_tls`] starts it
//! with TLS required, on a throwaway PKI made with the `openssl` CLI in its temp dir;
//! [`NatsServer::start_jetstream`] with JetStream on, its store in that temp dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

/// Where Debian's package puts the binary; `$NATS_SERVER` overrides it.
const DEBIAN_BINARY: &str = "/usr/sbin/nats-server";

/// A running `nats-server` on `127.0.0.1`.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    dir: PathBuf,
    url: String,
    tls: bool,
}

impl NatsServer {
    /// Starts the server and waits (up to 5 s) for its ports file.
    pub fn start() -> Result<Self> {
        Self::launch(false, false)
    }

    /// The same with JetStream (`-js`), storing under its temp dir (removed on `Drop`).
    #[allow(dead_code)] // only the JetStream benchmark uses it
    pub fn start_jetstream() -> Result<Self> {
        Self::launch(false, true)
    }

    /// The same, with `tls { cert_file, key_file, ca_file, timeout: 2 }`: every client must
    /// upgrade to TLS after the plain INFO. The CA is [`ca_file`](Self::ca_file).
    #[allow(dead_code)] // only the client benchmark runs over TLS
    pub fn start_tls() -> Result<Self> {
        Self::launch(true, false)
    }

    fn launch(tls: bool, jetstream: bool) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("panini-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let binary = std::env::var("NATS_SERVER").unwrap_or_else(|_| DEBIAN_BINARY.into());
        let mut command = Command::new(&binary);
        command
            .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
            .arg(&dir);
        if tls {
            command.arg("-c").arg(tls_config(&dir)?);
        }
        if jetstream {
            command.args(["-js", "-sd"]).arg(dir.join("jetstream"));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {binary}: {e} (apt-get install -y nats-server)"))?;
        let mut server = NatsServer {
            child,
            dir,
            url: String::new(),
            tls,
        };
        server.url = server.wait_for_url()?;
        Ok(server)
    }

    /// The server's process id (to read its CPU time from `/proc`; only `e2e_pub` does).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `nats://127.0.0.1:PORT`, or `tls://127.0.0.1:PORT` for [`start_tls`](Self::start_tls).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA that signed the server's certificate, when it runs TLS.
    #[allow(dead_code)] // only the client benchmark runs over TLS
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.join("ca.pem"))
    }

    /// Reads `{"nats":["nats://127.0.0.1:PORT"]}` from `nats-server_<pid>.ports`.
    fn wait_for_url(&self) -> Result<String> {
        let file = self
            .dir
            .join(format!("nats-server_{}.ports", self.child.id()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let parsed = std::fs::read(&file)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            if let Some(url) = parsed.as_ref().and_then(|v| v["nats"][0].as_str()) {
                let host_port = url.split_once("://").map_or(url, |(_, rest)| rest);
                let scheme = if self.tls { "tls" } else { "nats" };
                return Ok(format!("{scheme}://{host_port}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("nats-server wrote no ports file within 5 s".into())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes the PKI in `dir` and writes the server's config file there; returns its path.
fn tls_config(dir: &Path) -> Result<PathBuf> {
    make_pki(dir)?;
    let file = |name: &str| dir.join(name).display().to_string();
    let config = format!(
        "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  timeout: 2\n}}\n",
        file("server.pem"),
        file("server-key.pem"),
        file("ca.pem"),
    );
    let path = dir.join("tls.conf");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// A CA and a server certificate it signed, EC P-256, valid for a day: `ca.pem`,
/// `server.pem` (for `127.0.0.1` and `localhost`, server auth only) and `server-key.pem`.
/// rustls (both clients' TLS) wants a SAN and the extended key usage; a CN is not enough.
fn make_pki(dir: &Path) -> Result<()> {
    const P256: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )?;
    openssl(
        dir,
        &format!(
            "req -x509 -days 1 -subj /CN=panini-bench-CA -keyout ca-key.pem -out ca.pem \
             -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign {P256}"
        ),
    )?;
    openssl(
        dir,
        &format!("req -subj /CN=localhost -keyout server-key.pem -out server.csr {P256}"),
    )?;
    openssl(
        dir,
        "x509 -req -in server.csr -days 1 -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
         -extfile server.ext -out server.pem",
    )
}

/// Runs `openssl ARGS` (split at whitespace) in `dir`.
fn openssl(dir: &Path, args: &str) -> Result<()> {
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run openssl (needed for --tls): {e}"))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(format!("openssl {}: {why}", args[..2].join(" ")).into());
    }
    Ok(())
}
