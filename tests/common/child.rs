//! A child process whose stdout lines arrive on a channel, waited on with a bound and
//! killed on `Drop`: the apps of `tests/processes.rs` and the Python apps of
//! `tests/interop.rs`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a child has to print an expected line or to exit.
pub const CHILD_WAIT: Duration = Duration::from_secs(30);

/// A running child process.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// The lines seen so far that no `expect_line` matched, for failure messages.
    pub seen: Vec<String>,
}

impl Proc {
    /// Spawns `cmd` with stdout piped (stderr inherited, stdin closed).
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a stdout line that `want` accepts, and returns it.
    pub fn expect_line(&mut self, want: impl Fn(&str) -> bool) -> String {
        loop {
            match self.lines.recv_timeout(CHILD_WAIT) {
                Ok(line) if want(&line) => return line,
                Ok(line) => self.seen.push(line),
                Err(e) => panic!("no such line ({e}); saw {:#?}", self.seen),
            }
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits (bounded) for the exit code.
    pub fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + CHILD_WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the child") {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every line not yet matched: the ones `expect_line` skipped, then the rest of the
    /// output until stdout closes (bounded; call it once the process exited).
    pub fn remaining_lines(&mut self) -> Vec<String> {
        let mut lines = std::mem::take(&mut self.seen);
        loop {
            match self.lines.recv_timeout(CHILD_WAIT) {
                Ok(line) => lines.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return lines,
                Err(e) => panic!("stdout still open ({e}) after {lines:#?}"),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
