//! The wallet's command line against a regtest network of `camel-worker node` processes with
//! the bundled model, every answer read through `--json`: init, a wrong passphrase, mining to
//! the wallet's address, balance, fresh addresses, a payment out with its exact cost, then a job
//! submitted with `--wait` and run to settlement by a worker and two verifiers.
//!
//! `camel-worker` is the binary the workspace builds beside this one (`cargo test --workspace`
//! builds both).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use camel_core::params::Params;
use camel_testnet::{NodeSpec, Testnet};
use serde_json::Value;

const PASS: &str = "llama pasture";

fn wallet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_camel-wallet"))
}

fn worker_bin() -> PathBuf {
    let p = wallet_bin().with_file_name(format!("camel-worker{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.is_file(),
        "{} is missing: build it first (`cargo build -p camel-worker`, or run scripts/test.sh)",
        p.display()
    );
    p
}

fn model_path() -> PathBuf {
    let dir = std::env::var_os("CAMEL_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
    let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "the bundled model is missing at {}; run `scripts/fetch-model.sh \"$CAMEL_MODEL_DIR\"` or scripts/test.sh",
        p.display()
    );
    p
}

struct Wallet {
    dir: PathBuf,
    node: String,
}

impl Wallet {
    fn run(&self, pass: &str, args: &[&str]) -> Output {
        Command::new(wallet_bin())
            .arg("--wallet-dir")
            .arg(&self.dir)
            .args(["--node", &self.node, "--json"])
            .args(args)
            .env("CAMEL_WALLET_PASSPHRASE", pass)
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed and returns its JSON.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(PASS, args);
        assert!(
            out.status.success(),
            "camel-wallet {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "camel-wallet {args:?}: stdout is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn spendable(&self) -> u64 {
        self.json(&["balance"])["spendable_base"].as_u64().unwrap()
    }

    /// Waits until the spendable balance is `want` (the node's address index trails the tip).
    fn await_spendable(&self, want: u64, what: &str) {
        let start = Instant::now();
        loop {
            let b = self.spendable();
            if b == want {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{what}: spendable {b}, expected {want}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
fn wallet_cli_end_to_end() {
    let root = std::env::temp_dir().join(format!("camel-wallet-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let model = model_path();
    let spec = NodeSpec {
        model: Some(model),
        cheat: None,
        args: vec![
            "--stake".into(),
            "100000".into(),
            "--fee".into(),
            "2000".into(),
        ],
    };
    // A far address for the miner: none of the wallet's.
    let miner = "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r";
    let mut net = Testnet::start(
        &worker_bin(),
        &root.join("net"),
        vec![spec.clone(), spec.clone(), spec],
        miner,
    )
    .unwrap();
    let w = Wallet {
        dir: root.join("wallet"),
        node: net.nodes[0].api.clone(),
    };

    // init: a 12-word phrase, a first address of the regtest network.
    let init = w.json(&["init", "--network", "regtest"]);
    let phrase = init["mnemonic"].as_str().unwrap();
    assert_eq!(phrase.split(' ').count(), 12);
    let first = init["address"].as_str().unwrap().to_owned();
    assert_eq!(init["path"], "m/44'/1'/0'/0/0");
    // A second init over it is refused, the keystore holds no plain secret, and a wrong
    // passphrase opens nothing.
    assert_eq!(
        w.run(PASS, &["init", "--network", "regtest"]).status.code(),
        Some(4)
    );
    let ks = std::fs::read_to_string(w.dir.join("keystore.json")).unwrap();
    assert!(!ks.contains(phrase));
    let wrong = w.run("not it", &["balance"]);
    assert_eq!(
        wrong.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    assert!(wrong.stdout.is_empty(), "errors go to stderr only");

    // Fresh addresses, never the same twice.
    let a1 = w.json(&["address"])["address"].as_str().unwrap().to_owned();
    let a2 = w.json(&["address"])["address"].as_str().unwrap().to_owned();
    assert!(a1 != a2 && a1 != first && a2 != first);

    // Coins: three coinbases to the first address, one to the second, then maturity.
    net.mine_to(3, &first).unwrap();
    net.mine_to(1, &a1).unwrap();
    for i in 0..net.nodes.len() {
        let (_, addr) = net.nodes[i].worker.clone().unwrap();
        net.mine_to(2, &addr).unwrap();
    }
    let p = Params::regtest();
    let minted: u64 = (1..=4).map(|h| p.block_subsidy(h).to_base()).sum();
    let b = w.json(&["balance"]);
    assert_eq!(
        b["spendable_base"].as_u64().unwrap() + b["immature_base"].as_u64().unwrap(),
        minted,
        "{b}"
    );
    net.mine(100).unwrap();
    w.await_spendable(minted, "after maturity");

    // Pay an address outside the wallet: the balance falls by the amount and the fee exactly.
    let dry = w.json(&[
        "send",
        "--to",
        miner,
        "--amount-base",
        "1000000",
        "--dry-run",
    ]);
    assert_eq!(dry["broadcast"], false);
    assert_eq!(w.spendable(), minted, "a dry run spends nothing");
    let sent = w.json(&["send", "--to", miner, "--amount-base", "1000000", "--yes"]);
    let fee = sent["fee_base"].as_u64().unwrap();
    assert!(fee > 0 && fee <= 100_000, "{sent}");
    // Without --yes and without a terminal it asks nothing and spends nothing.
    let unconfirmed = w.run(PASS, &["send", "--to", miner, "--amount-base", "5"]);
    assert_eq!(unconfirmed.status.code(), Some(2));
    // An address of another network, and a fee over the ceiling, are refused.
    let main_addr = "1EHNa6Q4Jz2uvNExL497mE43ikXhwF6kZm";
    assert_eq!(
        w.run(
            PASS,
            &["send", "--to", main_addr, "--amount-base", "5", "--yes"]
        )
        .status
        .code(),
        Some(1)
    );
    assert_eq!(
        w.run(
            PASS,
            &[
                "send",
                "--to",
                miner,
                "--amount-base",
                "5",
                "--fee-per-byte",
                "1000",
                "--yes"
            ]
        )
        .status
        .code(),
        Some(5)
    );
    net.mine(1).unwrap();
    w.await_spendable(minted - 1_000_000 - fee, "after the payment");

    // A job, submitted and followed to settlement.
    net.pace(Duration::from_millis(600));
    let start = Instant::now();
    let workers = loop {
        let list = w.json(&["job", "workers"]);
        if list.as_array().unwrap().len() >= 3 {
            break list;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "workers did not announce: {list}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let model_id = workers[0]["models"][0].as_str().unwrap().to_owned();
    let worker0 = net.nodes[0].worker.clone().unwrap().0;
    let before = w.spendable();
    let job = w.json(&[
        "job",
        "submit",
        "--model",
        &model_id,
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "12",
        "--reward-base",
        "50000",
        "--min-stake-base",
        "100000",
        "--fee-base",
        "2000",
        "--worker",
        &worker0,
        "--wait",
        "--yes",
    ]);
    assert_eq!(job["state"], "settled", "{job}");
    assert!(!job["text"].as_str().unwrap().is_empty());
    let tokens = job["tokens"].as_array().unwrap().len();
    assert!((1..=12).contains(&tokens), "{job}");
    let verdicts = job["verdicts"].as_array().unwrap();
    assert!(verdicts.len() >= 2, "{job}");
    for v in verdicts {
        assert_eq!(v["valid"], true, "{v}");
        assert_ne!(
            v["verifier"],
            worker0.as_str(),
            "the worker verified itself"
        );
        assert_eq!(
            v["checked"].as_u64().unwrap() as usize,
            tokens,
            "a full check"
        );
    }
    let id = job["job_id"].as_str().unwrap().to_owned();
    let status = w.json(&["job", "status", &id]);
    assert!(
        ["paid", "settled"].contains(&status["state"].as_str().unwrap()),
        "{status}"
    );
    // The job cost the reward and two fees (escrow, payment), paid from the wallet's coins.
    w.await_spendable(before - 50_000 - 2 * 2000, "after the job");
    let listed = w.json(&["job", "list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["job_id"] == id.as_str()),
        "{listed}"
    );
    net.stop_pace();

    // Restore from the phrase into another directory: the scan finds every coin.
    let out = Command::new(wallet_bin())
        .arg("--wallet-dir")
        .arg(root.join("restored"))
        .args([
            "--node",
            &w.node,
            "--json",
            "restore",
            "--network",
            "regtest",
        ])
        .env("CAMEL_WALLET_PASSPHRASE", PASS)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{phrase}\n").as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        restored["balance"]["spendable_base"].as_u64().unwrap(),
        w.spendable(),
        "{restored}"
    );
    drop(net);
    let _ = std::fs::remove_dir_all(&root);
}
