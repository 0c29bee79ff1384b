//! Runs the real `l2watch` binary inside a namespace and reads its JSON log lines.
use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
    sync::mpsc::{channel, Receiver},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{l2watch_bin, netns::Netns};

/// A running agent; killed (by its own PID) on drop if it is still running.
pub struct Agent {
    child: Child,
    lines: Receiver<Value>,
    /// Every log line seen so far, for failure messages.
    pub seen: Vec<Value>,
}

impl Agent {
    /// Starts `l2watch --log-format json ARGS...` in `ns`, with every kernel event and the
    /// per-interface counters logged (debug), which the tests read.
    pub fn start(ns: &Netns, args: &[&str]) -> Agent {
        Agent::start_with_log(
            ns,
            args,
            "info,l2watch::event=debug,l2watch::counters=debug",
        )
    }

    /// `l2watch run` on `iface` in `ns`, serving on 127.0.0.1:`port`, without a database,
    /// with `config` when given; returns once it is ready.
    pub fn serving(
        ns: &Netns,
        iface: &str,
        port: u16,
        config: Option<&std::path::Path>,
        ready_within: Duration,
    ) -> Agent {
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["run", "--iface", iface, "--listen", &listen, "--no-db"];
        let cfg = config.map(|c| c.to_str().expect("utf-8 path").to_string());
        if let Some(c) = &cfg {
            args.extend(["--config", c.as_str()]);
        }
        let mut agent = Agent::start_with_log(ns, &args, "info");
        agent.wait_for("ready", ready_within, |v| v["message"] == "ready");
        agent
    }

    /// Starts the agent with the given `--log-level`.
    pub fn start_with_log(ns: &Netns, args: &[&str], log_level: &str) -> Agent {
        let mut cmd = ns.command(l2watch_bin().to_str().expect("utf-8 path"));
        cmd.args(["--log-format", "json", "--log-level", log_level])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start l2watch");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "raw": line }));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Agent {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits until a log line satisfies `pred`; panics with the log so far on timeout.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "timed out after {timeout:?} waiting for {what}; log so far:\n{}",
                    self.log()
                ),
            }
        }
    }

    /// Waits until `n` log lines satisfy `pred`; returns them.
    pub fn wait_for_n(
        &mut self,
        what: &str,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let hits: Vec<Value> = self.seen.iter().filter(|v| pred(v)).cloned().collect();
            if hits.len() >= n {
                return hits;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => self.seen.push(v),
                Err(_) => panic!(
                    "timed out after {timeout:?} waiting for {n} x {what} (saw {}); log so far:\n{}",
                    hits.len(),
                    self.log()
                ),
            }
        }
    }

    /// Drains lines that arrived so far without waiting.
    pub fn drain(&mut self) {
        while let Ok(v) = self.lines.try_recv() {
            self.seen.push(v);
        }
    }

    pub fn log(&self) -> String {
        self.seen
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the agent with SIGKILL (no chance to flush) and reaps it.
    pub fn kill9(&mut self) {
        // SAFETY: signalling the child we spawned, by its PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
        self.drain();
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit code.
    pub fn stop(&mut self, timeout: Duration) -> Option<i32> {
        // SAFETY: signalling the child we spawned, by its PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Collect the last lines (shutdown messages).
                std::thread::sleep(Duration::from_millis(100));
                self.drain();
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "l2watch did not exit within {timeout:?} of SIGTERM; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
