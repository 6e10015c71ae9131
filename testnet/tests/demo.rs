//! `camel-testnet demo` as a user runs it, against `camel-worker` processes with the bundled
//! model: `--json` reports the honest job settled and verified by two other workers, the
//! cheating job slashed, balances moved exactly as the protocol says and every coin accounted
//! for; the temporary network is gone afterwards. An interrupted demo stops its nodes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_camel-testnet"))
}

fn model_dir() -> PathBuf {
    std::env::var_os("CAMEL_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("models")
        })
}

/// `camel-worker` processes whose command line names `root`.
fn workers_under(root: &str) -> usize {
    let out = Command::new("pgrep")
        .args(["-f", root])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn demo_settles_the_honest_job_and_slashes_the_cheater() {
    // 1. Interrupted once the workers are up: exit 130, no node left, nothing left on disk.
    let mut child = Command::new(bin())
        .args(["demo", "--json"])
        .env("CAMEL_MODEL_DIR", model_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let root = std::env::temp_dir().join(format!("camel-demo-{}", child.id()));
    let root_s = root.display().to_string();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "the demo stopped early:\n{seen}"
        );
        seen.push_str(&line);
        if line.contains("ok: start three workers") {
            break;
        }
    }
    assert_eq!(workers_under(&root_s), 3, "{seen}");
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert_eq!(workers_under(&root_s), 0, "nodes left running after Ctrl-C");
    assert!(!root.exists(), "{} left behind", root.display());

    // 2. The whole demo.
    let start = Instant::now();
    let child = Command::new(bin())
        .args(["demo", "--json", "--max-tokens", "12"])
        .env("CAMEL_MODEL_DIR", model_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let root = std::env::temp_dir().join(format!("camel-demo-{}", child.id()));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(s["ok"], true, "{s:#}");
    assert!(
        s["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|st| st["ok"] == true),
        "{s:#}"
    );
    let honest = &s["honest"];
    assert_eq!(honest["outcome"], "settled", "{s:#}");
    let text = honest["text"].as_str().unwrap();
    assert!(!text.trim().is_empty());
    // The narration shows the output the wallet decrypted.
    assert!(stderr.contains(text.trim()), "{stderr}");
    let verdicts = honest["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 2, "{s:#}");
    for v in verdicts {
        assert_eq!(v["valid"], true);
        assert_ne!(
            v["verifier"], honest["worker"],
            "the worker verified itself"
        );
        assert_eq!(
            v["checked"], honest["tokens"],
            "a full check covers every position"
        );
    }
    assert_eq!(honest["client_change"], honest["client_expected"]);
    assert_eq!(honest["client_change"], -(50_000 + 2 * 2_000));
    assert_eq!(honest["worker_change"], 50_000 - 3 * 2_000);
    let cheat = &s["cheat"];
    assert_eq!(cheat["outcome"], "slashed", "{s:#}");
    assert!(cheat["slash_txid"].as_str().is_some_and(|t| t.len() == 64));
    assert!(cheat["why"].as_str().unwrap().contains("position"), "{s:#}");
    assert!(
        cheat["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["valid"] == false),
        "{s:#}"
    );
    assert_eq!(cheat["worker_change"], -(100_000 + 2 * 2_000));
    assert_eq!(cheat["client_change"], 100_000 - 3 * 2_000);
    assert_eq!(s["supply_ok"], true);
    // Cleaned up: no node left, no data left.
    assert_eq!(workers_under(&root.display().to_string()), 0);
    assert!(!root.exists(), "{} left behind", root.display());
    eprintln!("demo took {:.0} s", start.elapsed().as_secs_f64());
}
