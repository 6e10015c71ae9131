//! `camel-testnet load`: 50 jobs submitted at once to 3 honest `camel-worker` processes with
//! the bundled model all settle (none lost, none refunded), and every coin the chain minted is
//! back in someone's balance once the stakes' windows close.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

fn model_dir() -> PathBuf {
    std::env::var_os("CAMEL_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("models")
        })
}

#[test]
fn fifty_jobs_at_once_all_settle_and_no_coin_is_lost() {
    let out = Command::new(env!("CARGO_BIN_EXE_camel-testnet"))
        .args([
            "load",
            "--jobs",
            "50",
            "--workers",
            "3",
            "--max-tokens",
            "8",
        ])
        .arg("--json")
        .env("CAMEL_MODEL_DIR", model_dir())
        .output()
        .expect("camel-testnet load");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{stderr}"));
    assert!(out.status.success(), "exit {:?}:\n{stderr}", out.status);
    assert_eq!(r["jobs"], 50);
    assert_eq!(r["errors"], 0, "{stderr}");
    assert_eq!(
        r["settled"], 50,
        "every job of honest workers settles: {stderr}"
    );
    let ends = r["ends"].as_array().unwrap();
    let ids: HashSet<&str> = ends.iter().map(|e| e["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 50, "fifty distinct jobs");
    for e in ends {
        assert_eq!(e["outcome"], "settled", "{e}");
        assert!(e["tokens"].as_u64().unwrap() >= 1, "{e}");
        assert!(e["delivered_s"].as_f64().is_some(), "{e}");
    }
    assert_eq!(r["supply_ok"], true, "{stderr}");
    assert_eq!(r["minted"], r["held"]);
    assert!(r["minted"].as_u64().unwrap() > 0);
}
