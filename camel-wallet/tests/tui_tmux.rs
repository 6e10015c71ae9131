//! The terminal wallet as a user runs it: the real binary in a tmux pane against a regtest
//! network of `camel-worker node` processes with the bundled model. The balance appears, a job
//! is typed into the Jobs form and submitted, its output and two verdicts appear on screen, and
//! `q` quits with exit code 0 and the terminal restored (the shell's line is back).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use camel_testnet::{NodeSpec, Testnet};

const PASS: &str = "tmux pass";

fn wallet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_camel-wallet"))
}

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux (apt install tmux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "w"])
    }

    fn wait_for(&self, what: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(
                start.elapsed() < timeout,
                "{what:?} did not appear on screen in {timeout:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "w"];
        args.extend_from_slice(keys);
        self.run(&args);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

#[test]
fn a_job_submitted_from_the_terminal_wallet_shows_its_output_and_verdicts() {
    let root = std::env::temp_dir().join(format!("camel-tui-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let model = std::env::var_os("CAMEL_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"))
        .join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        model.is_file(),
        "the bundled model is missing: run scripts/test.sh"
    );
    let worker = wallet_bin().with_file_name("camel-worker");
    let spec = NodeSpec {
        model: Some(model),
        cheat: None,
        args: vec!["--stake".into(), "50000".into()],
    };
    let miner = "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r";
    let mut net = Testnet::start(
        &worker,
        &root.join("net"),
        vec![spec.clone(), spec.clone(), spec],
        miner,
    )
    .unwrap();
    let node = net.nodes[0].api.clone();
    let dir = root.join("wallet");
    let init = Command::new(wallet_bin())
        .arg("--wallet-dir")
        .arg(&dir)
        .args(["--node", &node, "--json", "init", "--network", "regtest"])
        .env("CAMEL_WALLET_PASSPHRASE", PASS)
        .output()
        .unwrap();
    assert!(init.status.success());
    let init: serde_json::Value = serde_json::from_slice(&init.stdout).unwrap();
    let addr = init["address"].as_str().unwrap().to_owned();
    net.mine_to(2, &addr).unwrap();
    for i in 0..net.nodes.len() {
        let (_, a) = net.nodes[i].worker.clone().unwrap();
        net.mine_to(2, &a).unwrap();
    }
    net.mine(100).unwrap();
    net.pace(Duration::from_millis(500));

    let t = Tmux {
        socket: format!("camel-tui-{}", std::process::id()),
    };
    let cmd = format!(
        "CAMEL_WALLET_PASSPHRASE='{PASS}' {} --wallet-dir {} --node {node}; echo EXITED:$?; sleep 60",
        wallet_bin().display(),
        dir.display()
    );
    t.run(&[
        "new-session",
        "-d",
        "-s",
        "w",
        "-x",
        "100",
        "-y",
        "32",
        &cmd,
    ]);
    // The first refresh comes within the 5 s tick; r asks at once.
    t.wait_for("CamelidCoin wallet", Duration::from_secs(20));
    t.keys(&["r"]);
    let s = t.wait_for("verified   headers to height", Duration::from_secs(30));
    assert!(s.contains(&addr), "the receive address:\n{s}");
    // The Jobs tab, once a model is served: type a prompt and submit it.
    t.keys(&["3"]);
    let start = Instant::now();
    while !t.screen().contains("New job: model") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no model:\n{}",
            t.screen()
        );
        t.keys(&["r"]);
        std::thread::sleep(Duration::from_millis(500));
    }
    t.keys(&["Enter"]);
    t.keys(&["-l", "Llamas are"]);
    t.keys(&["Enter"]);
    let s = t.wait_for("output:", Duration::from_secs(120));
    let s = if s.matches("verdict by").count() >= 2 {
        s
    } else {
        let start = Instant::now();
        loop {
            let s = t.screen();
            if s.matches("verdict by").count() >= 2 {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "two verdicts:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    assert!(s.contains("valid ("), "{s}");
    t.wait_for("settled", Duration::from_secs(120));
    // q quits: exit code 0, and the shell's own screen is back.
    t.keys(&["q"]);
    let s = t.wait_for("EXITED:", Duration::from_secs(20));
    assert!(s.contains("EXITED:0"), "{s}");
    assert!(
        !s.contains("CamelidCoin wallet"),
        "the alternate screen was left:\n{s}"
    );
    net.stop_pace();
    for n in &mut net.nodes {
        n.stop(Duration::from_secs(20));
    }
    let _ = std::fs::remove_dir_all(&root);
}
