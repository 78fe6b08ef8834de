//! Client processes of the end-to-end tests: waiting for them and reporting what
//! each said.

use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// Hard limit for one client process.
pub const PEER_LIMIT: Duration = Duration::from_secs(120);

/// A running client process, killed on drop; its output goes to `out`.
pub struct Running {
    label: String,
    child: Child,
    out: PathBuf,
}

impl Running {
    /// A started process labelled `label` writing to `out`.
    pub fn new(label: String, child: Child, out: PathBuf) -> Running {
        Running { label, child, out }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits for every client (killing those past `PEER_LIMIT`); panics with all their
/// output if any failed (a client passes when it exits 0 and says E2E-PEER PASS).
pub fn finish(mut running: Vec<Running>) {
    let deadline = Instant::now() + PEER_LIMIT;
    let mut results: Vec<Option<Result<ExitStatus, String>>> = running.iter().map(|_| None).collect();
    while results.iter().any(Option::is_none) {
        for (r, res) in running.iter_mut().zip(results.iter_mut()) {
            if res.is_some() {
                continue;
            }
            match r.child.try_wait() {
                Ok(Some(status)) => *res = Some(Ok(status)),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    *res = Some(Err(format!("killed after {PEER_LIMIT:?}")));
                }
                Ok(None) => {}
                Err(e) => *res = Some(Err(format!("wait failed: {e}"))),
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    let mut report = String::new();
    let mut failed = Vec::new();
    for (r, res) in running.iter().zip(results) {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&r.out) {
            let _ = f.read_to_string(&mut text);
        }
        let res = res.expect("every result is set");
        let passed = matches!(&res, Ok(s) if s.success()) && text.contains("E2E-PEER PASS");
        if !passed {
            failed.push(format!(
                "{} ({})",
                r.label,
                res.map_or_else(|e| e, |s| s.to_string())
            ));
        }
        let _ = writeln!(report, "----- {} -----\n{}", r.label, text.trim_end());
    }
    // Shown by the test harness on failure, or with --nocapture.
    println!("{report}");
    assert!(
        failed.is_empty(),
        "e2e client(s) failed: {}\n{report}",
        failed.join(", ")
    );
}
