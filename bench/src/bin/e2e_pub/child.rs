//! A role's child process: this binary run again with `--pub` or `--sub`, optionally
//! under a wrapper (a profiler). It speaks in lines: `ready` (the subscriber, once the
//! server has its SUB) and `done ...` on stdout; it reads `end` on stdin. Killed and
//! reaped on drop unless it was seen to finish.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::role::Done;
use crate::Result;

/// How long a bare child may take to say its next line.
const LINE_TIMEOUT: Duration = Duration::from_secs(120);
/// The same under a wrapper: callgrind runs the code some fifty times slower.
const WRAPPED_LINE_TIMEOUT: Duration = Duration::from_secs(1800);

/// A running role child, with its stdout read line by line on a thread of its own.
#[derive(Debug)]
pub struct RoleChild {
    /// The arguments, for error messages.
    args: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    timeout: Duration,
    finished: bool,
}

impl RoleChild {
    /// Starts `current_exe args...`, or `wrap... current_exe args...` when `wrap` is not
    /// blank.
    pub fn spawn(args: &[&str], wrap: &str) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let mut words = wrap.split_whitespace();
        let mut command = match words.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(words).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(RoleChild {
            args: args.join(" "),
            stdin: child.stdin.take(),
            child,
            lines,
            timeout: match wrap.trim() {
                "" => LINE_TIMEOUT,
                _ => WRAPPED_LINE_TIMEOUT,
            },
            finished: false,
        })
    }

    /// Waits for `ready`.
    pub fn ready(&mut self) -> Result<()> {
        match self.line()? {
            l if l == "ready" => Ok(()),
            other => Err(format!("{}: expected ready, got {other:?}", self.args).into()),
        }
    }

    /// Waits for the `done` line.
    pub fn done(&mut self) -> Result<Done> {
        Done::parse(&self.line()?).map_err(|e| format!("{}: {e}", self.args).into())
    }

    /// Writes one line to the child's stdin; a child that already left is no error.
    pub fn tell(&mut self, line: &str) {
        if let Some(stdin) = &mut self.stdin {
            let _ = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
        }
    }

    /// Closes its stdin and waits for it to exit on its own (a profiler wrapping it then
    /// writes its output); fails if it exited with an error.
    pub fn finish(mut self) -> Result<()> {
        self.stdin = None;
        let status = self.child.wait()?;
        self.finished = true;
        match status.success() {
            true => Ok(()),
            false => Err(format!("{}: exited with {status}", self.args).into()),
        }
    }

    /// The next line on its stdout, within the timeout.
    fn line(&mut self) -> Result<String> {
        self.lines.recv_timeout(self.timeout).map_err(|e| {
            format!(
                "{}: no line within {:?} ({e}): lost messages or a crash?",
                self.args, self.timeout
            )
            .into()
        })
    }
}

impl Drop for RoleChild {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
