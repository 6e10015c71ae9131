//! The command line: `complete --json` output verified by `verify`, and its exit codes.

mod common;

use std::process::Command;

fn worker() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_camel-worker"));
    c.env("CAMEL_MODEL", common::model_path());
    c
}

#[test]
fn complete_then_verify() {
    let out = worker()
        .args([
            "complete",
            "--prompt",
            "The capital of France is",
            "--max-tokens",
            "12",
            "--threads",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<u64> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert!(!ids.is_empty() && ids.len() <= 12);
    assert!(v["text"].as_str().unwrap().contains("Paris"), "{v}");
    let ids_s = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");

    let verify_max = |ids: &str, max: &str, extra: &[&str]| {
        let mut c = worker();
        c.args([
            "verify",
            "--prompt",
            "The capital of France is",
            "--max-tokens",
            max,
            "--threads",
            "2",
        ]);
        c.args(["--output-ids", ids]).args(extra);
        c.output().unwrap()
    };
    let verify = |ids: &str, extra: &[&str]| verify_max(ids, "12", extra);
    let ok = verify(&ids_s, &["--full", "--json"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(j["verdict"], "valid");
    assert_eq!(j["checked"].as_u64().unwrap(), ids.len() as u64);

    // A tampered first token: invalid, exit 1, the failing position named.
    let mut bad = ids.clone();
    bad[0] = if bad[0] == 1000 { 1001 } else { 1000 };
    let bad_s = bad.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let out = verify(&bad_s, &["--k", "2", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["verdict"], "invalid");
    assert_eq!(j["failures"][0]["position"], 0);

    // Errors: exit 2 with a message.
    let out = verify_max(&ids_s, "0", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max tokens is zero"));
    let out = worker()
        .args(["complete", "--prompt", "x", "--model", "/nonexistent.gguf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}
