//! Processes the lab starts: [`Proc`], a foreground command whose output is read line by line
//! while it runs, and [`Daemon`], a background server logging to a file that can outlive this
//! process (`cargo xtask lab up`) and be stopped later by PID. Both run in their own process
//! group, so a Ctrl-C at the terminal reaches only the program driving the lab, which then
//! stops them in order. A PID is signalled only while its start time still matches the one
//! recorded at spawn: a recycled PID belongs to someone else.
use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError},
        Arc,
    },
    time::{Duration, Instant},
};

/// A finished foreground process.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// stdout and stderr, interleaved by line as they arrived.
    pub output: String,
}

/// A foreground process with its output captured line by line; killed on drop.
pub struct Proc {
    child: Child,
    start: Option<u64>,
    what: String,
    lines: Receiver<String>,
    seen: Vec<String>,
    abort: Arc<AtomicBool>,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr piped. `abort` cuts waits short when set.
    pub fn spawn(mut cmd: Command, abort: Arc<AtomicBool>) -> std::io::Result<Proc> {
        let what = describe(&cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn()?;
        let (tx, lines) = mpsc::channel();
        let out = child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>);
        let err = child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>);
        for pipe in [out, err].into_iter().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Proc {
            start: start_time(child.id()),
            child,
            what,
            lines,
            seen: Vec::new(),
            abort,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Output so far.
    pub fn output(&mut self) -> String {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }

    /// Waits for an output line containing `needle`; returns it. Errors (with the output so
    /// far) when the process exits first, after `timeout`, or when the lab is aborted.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.abort.load(Ordering::Relaxed) {
                return Err(format!("{}: aborted", self.what));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let out = self.output();
                return Err(format!(
                    "{}: no line with {needle:?} within {timeout:?}; output:\n{out}",
                    self.what
                ));
            }
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "{}: exited without a line with {needle:?}; output:\n{}",
                        self.what,
                        self.seen.join("\n")
                    ));
                }
            }
        }
    }

    /// Waits for the process to exit. Errors (and kills it) after `timeout` or on abort.
    pub fn wait(mut self, timeout: Duration) -> Result<Finished, String> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().map_err(|e| e.to_string())? {
                break s;
            }
            if self.abort.load(Ordering::Relaxed) {
                return Err(format!("{}: aborted", self.what));
            }
            if Instant::now() >= deadline {
                let out = self.output();
                return Err(format!(
                    "{} did not finish within {timeout:?}; output:\n{out}",
                    self.what
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The pipes close at exit; a grandchild holding them must not hang us.
        let drain_until = Instant::now() + Duration::from_secs(2);
        while let Ok(l) = self
            .lines
            .recv_timeout(drain_until.saturating_duration_since(Instant::now()))
        {
            self.seen.push(l);
        }
        Ok(Finished {
            status,
            output: self.seen.join("\n"),
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal_if_ours(self.child.id(), self.start, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// A background process logging to a file, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Daemon {
    pub name: String,
    pub pid: u32,
    /// Start time in clock ticks since boot (/proc/PID/stat field 22), to recognise the PID.
    pub start: u64,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> std::io::Result<Daemon> {
        let out = File::options().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn()?;
        let pid = child.id();
        let start = start_time(pid).ok_or_else(|| {
            std::io::Error::other(format!(
                "{name} (pid {pid}) exited at once; see {}",
                log.display()
            ))
        })?;
        Ok(Daemon {
            name: name.to_string(),
            pid,
            start,
            log: log.to_path_buf(),
            child: Some(child),
        })
    }

    /// A daemon started by an earlier process (a lab brought up by `cargo xtask lab up`).
    pub fn adopt(name: String, pid: u32, start: u64, log: PathBuf) -> Daemon {
        Daemon {
            name,
            pid,
            start,
            log,
            child: None,
        }
    }

    /// Whether the process is still the one started (same PID and start time).
    pub fn alive(&mut self) -> bool {
        if let Some(c) = &mut self.child {
            if !matches!(c.try_wait(), Ok(None)) {
                return false;
            }
        }
        start_time(self.pid) == Some(self.start) && !is_zombie(self.pid)
    }

    /// The tail of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Sends `sig` if the process is still ours.
    pub fn signal(&self, sig: i32) -> bool {
        signal_if_ours(self.pid, Some(self.start), sig)
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL. Returns the exit status when it was our
    /// child.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.alive() {
            self.signal(libc::SIGTERM);
            let deadline = Instant::now() + grace;
            while self.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.alive() {
                self.signal(libc::SIGKILL);
            }
        }
        let child = self.child.as_mut()?;
        child.wait().ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
        // An adopted daemon is not our child: wait until it is really gone.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.child.is_none() && start_time(self.pid) == Some(self.start) {
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Field 22 of /proc/PID/stat (start time in clock ticks), parsed after the command name.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    // rest starts at field 3 (state); start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

fn signal_if_ours(pid: u32, start: Option<u64>, sig: i32) -> bool {
    if start.is_none() || start_time(pid) != start {
        return false;
    }
    // SAFETY: kill has no memory preconditions; the PID was checked to be ours just above.
    unsafe { libc::kill(pid as i32, sig) == 0 }
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
