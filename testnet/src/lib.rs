//! A local CamelidCoin network on loopback: `camel-worker node` processes on regtest, joined
//! through the first one, each with its own data directory, logs and API. The end-to-end tests
//! and `camel-testnet demo` drive it.
//!
//! Blocks come on demand ([`Testnet::mine`]) or from a pacer ([`Testnet::pace`]) that mines one
//! block at a fixed interval on the first node: regtest's proof of work is trivial, so the
//! network's clock is whatever the scenario sets.
//!
//! Modules:
//! - [`demo`]: `camel-testnet demo`, the scenario end to end (an honest job verified by peers,
//!   a cheating worker slashed), narrated and checked, with its [`demo::Summary`].
//! - [`load`]: `camel-testnet load`, many jobs at once followed to their final states, the
//!   coins counted, and the throughput against bare generation.
//!
//! `src/main.rs` is the `camel-testnet` command line (`demo`, `load`, `up`, `down`, `mine`).

pub mod demo;
pub mod load;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use camel_wallet::node::NodeClient;

/// Every node process this process started and has not stopped: a signal handler stops them
/// ([`stop_all`]) when the network's owner cannot (it is interrupted mid-step).
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Marks this process as interrupted: its owner is stopping the nodes and will exit, so a
/// scenario failing because its nodes went away is not worth reporting.
pub fn set_interrupted() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn forget(pid: u32) {
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| *p != pid);
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Stops every node process this process started: SIGTERM, then SIGKILL after `grace`.
pub fn stop_all(grace: Duration) {
    let pids = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).clone();
    stop_pids(&pids, grace);
}

/// Stops the processes `pids`: SIGTERM, then SIGKILL to those alive after `grace`.
pub fn stop_pids(pids: &[u32], grace: Duration) {
    for &p in pids {
        signal(p, "-TERM");
    }
    let start = Instant::now();
    while start.elapsed() < grace && pids.iter().any(|&p| alive(p)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for &p in pids {
        if alive(p) {
            signal(p, "-KILL");
        }
    }
}

/// How one node of the network runs.
#[derive(Debug, Clone, Default)]
pub struct NodeSpec {
    /// Serve this model (a worker); `None`: a plain node (`--no-model`).
    pub model: Option<PathBuf>,
    /// `--cheat` mode, for cheating-worker scenarios.
    pub cheat: Option<String>,
    /// Extra flags for `camel-worker node`.
    pub args: Vec<String>,
}

/// A running node process.
#[derive(Debug)]
pub struct NodeProc {
    pub spec: NodeSpec,
    pub dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    pub api: String,
    pub p2p: String,
    pub token: String,
    /// The worker's key (hex) and address, for a node serving a model.
    pub worker: Option<(String, String)>,
}

impl NodeProc {
    pub fn client(&self) -> NodeClient {
        NodeClient::new(&self.api, Some(self.token.clone()))
    }

    /// Kills the process at once (SIGKILL): no chance to shut down.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            forget(c.id());
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process with SIGTERM and waits (then SIGKILL after `grace`).
    pub fn stop(&mut self, grace: Duration) {
        if let Some(mut c) = self.child.take() {
            forget(c.id());
            signal(c.id(), "-TERM");
            let start = Instant::now();
            while start.elapsed() < grace {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The network.
#[derive(Debug)]
pub struct Testnet {
    pub bin: PathBuf,
    pub root: PathBuf,
    pub nodes: Vec<NodeProc>,
    /// Address the pacer's and [`Testnet::mine`]'s blocks pay.
    pub miner_address: String,
    pacer: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

fn wait_file(
    path: &Path,
    timeout: Duration,
    child: &mut Child,
    log: &Path,
) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.trim().is_empty()
        {
            return Ok(s);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: String = tail
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            bail!(
                "the node exited ({status}) before writing {}:\n{tail}",
                path.display()
            );
        }
        if start.elapsed() > timeout {
            bail!(
                "the node did not write {} within {timeout:?}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Testnet {
    /// Starts `specs.len()` nodes under `root` (which must not hold another network's nodes
    /// running), each joining the first; waits until every node has a peer.
    pub fn start(
        bin: &Path,
        root: &Path,
        specs: Vec<NodeSpec>,
        miner_address: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)?;
        let mut net = Self {
            bin: bin.to_path_buf(),
            root: root.to_path_buf(),
            nodes: Vec::new(),
            miner_address: miner_address.to_owned(),
            pacer: None,
        };
        for (i, spec) in specs.into_iter().enumerate() {
            let node = net.spawn(i, spec)?;
            net.nodes.push(node);
        }
        net.wait_connected(Duration::from_secs(60))?;
        Ok(net)
    }

    fn spawn(&self, i: usize, spec: NodeSpec) -> anyhow::Result<NodeProc> {
        let dir = self.root.join(format!("node{i}"));
        std::fs::create_dir_all(&dir)?;
        for f in ["api.addr", "p2p.addr"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let log = self.root.join(format!("node{i}.log"));
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "node",
            "--regtest",
            "--api-port",
            "0",
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
            "--threads",
            "1",
            "--data-dir",
        ])
        .arg(&dir);
        if let Some(first) = self.nodes.first().filter(|_| i > 0) {
            cmd.args(["--bootstrap", &first.p2p]);
        }
        match &spec.model {
            Some(m) => {
                cmd.arg("--model").arg(m);
            }
            None => {
                cmd.arg("--no-model");
            }
        }
        if let Some(c) = &spec.cheat {
            cmd.args(["--cheat", c]);
        }
        cmd.args(&spec.args);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = cmd
            .env(
                "RUST_LOG",
                std::env::var("CAMEL_TESTNET_LOG")
                    .unwrap_or_else(|_| "info,llama_cpp_2=off".into()),
            )
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id());
        let mut node = NodeProc {
            spec,
            dir: dir.clone(),
            log: log.clone(),
            child: Some(child),
            api: String::new(),
            p2p: String::new(),
            token: String::new(),
            worker: None,
        };
        // From here on, a failure drops `node`, which kills the process.
        let Some(child) = node.child.as_mut() else {
            bail!("the node process is gone");
        };
        let api = wait_file(&dir.join("api.addr"), Duration::from_secs(120), child, &log)?;
        let p2p = wait_file(&dir.join("p2p.addr"), Duration::from_secs(30), child, &log)?;
        let token = std::fs::read_to_string(dir.join(".cookie")).context("the node's cookie")?;
        if node.spec.model.is_some() {
            let w: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("worker.json"))?)?;
            node.worker = Some((
                w["worker"].as_str().unwrap_or_default().to_owned(),
                w["address"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        node.p2p = p2p
            .lines()
            .find(|l| l.contains("127.0.0.1"))
            .or_else(|| p2p.lines().next())
            .unwrap_or_default()
            .trim()
            .to_owned();
        node.api = format!("http://{}", api.trim());
        node.token = token.trim().to_owned();
        Ok(node)
    }

    /// Starts one more node, joining the first, and waits until it has a peer.
    pub fn add(&mut self, spec: NodeSpec) -> anyhow::Result<usize> {
        let i = self.nodes.len();
        let node = self.spawn(i, spec)?;
        self.nodes.push(node);
        self.wait_connected(Duration::from_secs(60))?;
        Ok(i)
    }

    /// Kills node `i` with SIGKILL and starts it again on the same data directory.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let spec = self.nodes[i].spec.clone();
        self.nodes[i].kill();
        let node = self.spawn(i, spec)?;
        self.nodes[i] = node;
        Ok(())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    }

    /// Waits until every node has at least one peer.
    pub fn wait_connected(&self, timeout: Duration) -> anyhow::Result<()> {
        let rt = Self::runtime();
        let start = Instant::now();
        for n in &self.nodes {
            loop {
                let v: serde_json::Value =
                    rt.block_on(async { reqwest_get(&format!("{}/peers", n.api)).await })?;
                if v["peers"].as_array().is_some_and(|p| !p.is_empty()) || self.nodes.len() == 1 {
                    break;
                }
                if start.elapsed() > timeout {
                    bail!("node {} found no peer within {timeout:?}", n.api);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// Mines `n` blocks on the first node to `address` and waits until every node has them.
    pub fn mine_to(&self, n: u32, address: &str) -> anyhow::Result<u32> {
        let rt = Self::runtime();
        let height = rt.block_on(self.nodes[0].client().generate(n, address))?;
        self.wait_height(height, Duration::from_secs(60))?;
        Ok(height)
    }

    pub fn mine(&self, n: u32) -> anyhow::Result<u32> {
        self.mine_to(n, &self.miner_address.clone())
    }

    /// Waits until every running node's tip is at least `height`.
    pub fn wait_height(&self, height: u32, timeout: Duration) -> anyhow::Result<()> {
        let rt = Self::runtime();
        let start = Instant::now();
        for n in &self.nodes {
            if n.child.is_none() {
                continue;
            }
            loop {
                let h = rt.block_on(n.client().height()).unwrap_or(0);
                if h >= height {
                    break;
                }
                if start.elapsed() > timeout {
                    bail!("node {} is at {h}, not {height}, after {timeout:?}", n.api);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Mines one block on the first node every `interval` until [`Testnet::stop_pace`].
    pub fn pace(&mut self, interval: Duration) {
        self.stop_pace();
        let stop = Arc::new(AtomicBool::new(false));
        let client = self.nodes[0].client();
        let address = self.miner_address.clone();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let rt = Self::runtime();
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(interval);
                let _ = rt.block_on(client.generate(1, &address));
            }
        });
        self.pacer = Some((stop, handle));
    }

    pub fn stop_pace(&mut self) {
        if let Some((stop, h)) = self.pacer.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        self.stop_pace();
    }
}

async fn reqwest_get(url: &str) -> anyhow::Result<serde_json::Value> {
    let body = camel_wallet::node::get_json(url).await?;
    Ok(body)
}
