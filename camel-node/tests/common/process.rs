//! Running `camel-node` as a real process on a random free port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::http;

pub struct NodeProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub token: String,
}

/// The `camel-node` binary built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_camel-node")
}

/// Starts `camel-node --regtest` on `data_dir` with a free port, logging to `log`.
pub fn start(data_dir: &Path, log: &Path, extra: &[&str]) -> NodeProcess {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = Command::new(binary())
        .args(["--regtest", "--api-port", "0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(a) = line.strip_prefix("api listening on ") {
                    break a.trim().parse().unwrap();
                }
            }
            _ => {
                let status = child.wait().unwrap();
                panic!(
                    "node exited ({status}) before listening; log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
    };
    // Keep reading stdout so the node never writes into a closed pipe.
    std::thread::spawn(move || for _ in lines {});
    let token = camel_node::datadir::read_cookie(data_dir).unwrap();
    NodeProcess { child, addr, token }
}

impl NodeProcess {
    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, body) = http(self.addr, "GET", path, None, "").unwrap();
        (status, parse(&body))
    }

    pub fn post(&self, path: &str, auth: bool, body: &str) -> (u16, serde_json::Value) {
        let token = auth.then_some(self.token.as_str());
        let (status, body) = http(self.addr, "POST", path, token, body).unwrap();
        (status, parse(&body))
    }

    /// Sends a signal with `kill(1)` and waits for the exit, at most `timeout`.
    pub fn signal_and_wait(&mut self, signal: &str, timeout: Duration) -> ExitStatus {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} failed");
        self.wait(timeout)
    }

    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("node did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn parse(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}
