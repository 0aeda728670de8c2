//! The one `nats-server` both clients talk to: started on a port the OS picks, killed on
//! `Drop` (so a failed run never leaves it behind).

use std::path::PathBuf;
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
}

impl NatsServer {
    /// Starts the server and waits (up to 5 s) for its ports file.
    pub fn start() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("panini-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let binary = std::env::var("NATS_SERVER").unwrap_or_else(|_| DEBIAN_BINARY.into());
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {binary}: {e} (apt-get install -y nats-server)"))?;
        let mut server = NatsServer {
            child,
            dir,
            url: String::new(),
        };
        server.url = server.wait_for_url()?;
        Ok(server)
    }

    /// The server's process id (to read its CPU time from `/proc`; only `e2e_pub` does).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
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
                return Ok(url.to_string());
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
