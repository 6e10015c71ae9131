//! `camel-wallet serve`, the OpenAI-compatible endpoint, against a regtest network of
//! `camel-worker node` processes with the bundled model: the key is required, models are
//! listed, a completion is a job paid once (a retry with the same idempotency key pays
//! nothing more, balances prove it), verified by two peers, and a streamed chat completion
//! ends with its usage chunk and `[DONE]`; a request the wallet cannot pay gets 402 before
//! any coin moves.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use camel_testnet::{NodeSpec, Testnet};
use serde_json::{Value, json};

const PASS: &str = "gateway pass";
const KEY: &str = "test-key-0123456789";

/// Drives the gateway with the `openai` package; prints what it saw as JSON.
const PY_CLIENT: &str = r#"
import json, os
from openai import OpenAI
c = OpenAI(base_url=os.environ["BASE"], api_key=os.environ["KEY"], max_retries=2)
model = os.environ["MODEL"]
models = [m.id for m in c.models.list()]
r = c.completions.create(model=model, prompt="Llamas are", max_tokens=5, temperature=0)
chunks, usage, text = 0, 0, ""
for ch in c.chat.completions.create(model=model, messages=[{"role": "user", "content": "Name a color."}],
                                    max_tokens=4, temperature=0, stream=True,
                                    stream_options={"include_usage": True}):
    chunks += 1
    if ch.choices and ch.choices[0].delta.content:
        text += ch.choices[0].delta.content
    if ch.usage:
        usage = ch.usage.completion_tokens
print(json.dumps({"models": models, "completion": r.choices[0].text,
                  "job": r.model_extra["camel"]["job_id"], "chunks": chunks, "usage": usage,
                  "chat": text}))
"#;

fn wallet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_camel-wallet"))
}

fn model_path() -> PathBuf {
    let dir = std::env::var_os("CAMEL_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"));
    let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "the bundled model is missing at {}; run scripts/test.sh",
        p.display()
    );
    p
}

fn wallet(dir: &std::path::Path, node: &str, args: &[&str]) -> Value {
    let out = Command::new(wallet_bin())
        .arg("--wallet-dir")
        .arg(dir)
        .args(["--node", node, "--json"])
        .args(args)
        .env("CAMEL_WALLET_PASSPHRASE", PASS)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn spendable(dir: &std::path::Path, node: &str) -> u64 {
    wallet(dir, node, &["balance"])["spendable_base"]
        .as_u64()
        .unwrap()
}

#[test]
fn openai_requests_are_paid_once_and_verified() {
    let root = std::env::temp_dir().join(format!("camel-gateway-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let worker =
        wallet_bin().with_file_name(format!("camel-worker{}", std::env::consts::EXE_SUFFIX));
    let spec = NodeSpec {
        model: Some(model_path()),
        cheat: None,
        args: vec!["--stake".into(), "100000".into()],
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
    let init = wallet(&dir, &node, &["init", "--network", "regtest"]);
    let addr = init["address"].as_str().unwrap().to_owned();
    net.mine_to(3, &addr).unwrap();
    for i in 0..net.nodes.len() {
        let (_, a) = net.nodes[i].worker.clone().unwrap();
        net.mine_to(2, &a).unwrap();
    }
    net.mine(100).unwrap();
    net.pace(Duration::from_millis(500));

    let mut serve = Command::new(wallet_bin())
        .arg("--wallet-dir")
        .arg(&dir)
        .args([
            "--node",
            &node,
            "--json",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--price-per-token-base", "1000"])
        .env("CAMEL_WALLET_PASSPHRASE", PASS)
        .env("CAMEL_GATEWAY_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(serve.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base: Value = serde_json::from_str(&line).unwrap();
    let base = base["listening"].as_str().unwrap().to_owned();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    rt.block_on(async {
        // The key is required, and errors have OpenAI's shape.
        let r = http.get(format!("{base}/models")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "invalid_api_key", "{e}");

        // Models: the one the workers serve, once they have announced it.
        let start = Instant::now();
        let model = loop {
            let m: Value = http
                .get(format!("{base}/models"))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(id) = m["data"][0]["id"].as_str() {
                assert_eq!(m["object"], "list");
                break id.to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no model listed: {m}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        };

        // A model nobody serves, and a job the wallet cannot pay: refused before any coin moves.
        let r = http
            .post(format!("{base}/completions"))
            .bearer_auth(KEY)
            .json(&json!({"model": "ab".repeat(32), "prompt": "x", "max_tokens": 4}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let before = spendable(&dir, &node);
        let r = http
            .post(format!("{base}/completions"))
            .bearer_auth(KEY)
            .json(&json!({"model": model, "prompt": "x", "max_tokens": 4,
                          "camel": {"reward": before * 2}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 402);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["type"], "insufficient_quota", "{e}");

        // A completion: paid, delivered, verified by two peers.
        let body = json!({"model": model, "prompt": "The capital of France is",
                          "max_tokens": 8, "temperature": 0});
        let send = || {
            http.post(format!("{base}/completions"))
                .bearer_auth(KEY)
                .header("Idempotency-Key", "req-1")
                .json(&body)
                .send()
        };
        let r = send().await.unwrap();
        assert_eq!(r.status(), 200);
        let job_header = r.headers()["x-camel-job-id"].to_str().unwrap().to_owned();
        let c: Value = r.json().await.unwrap();
        assert_eq!(c["object"], "text_completion");
        let text = c["choices"][0]["text"].as_str().unwrap();
        assert!(!text.is_empty(), "{c}");
        assert_eq!(c["camel"]["job_id"], job_header.as_str());
        let verdicts = c["camel"]["verdicts"].as_array().unwrap();
        assert_eq!(verdicts.len(), 2, "{c}");
        assert!(verdicts.iter().all(|v| v["valid"] == true));
        let tokens = c["usage"]["completion_tokens"].as_u64().unwrap();
        assert!((1..=8).contains(&tokens), "{c}");
        // The same request again: the same answer, nothing paid twice.
        let again: Value = send().await.unwrap().json().await.unwrap();
        assert_eq!(again["camel"]["job_id"], c["camel"]["job_id"]);
        // Reward (8 tokens at 1,000) and the two client fees, once.
        let want = before - 8_000 - 2 * 2_000;
        let start = Instant::now();
        while spendable(&dir, &node) != want {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "paid other than once"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }

        // A streamed chat completion: one content chunk, the finish, the usage, [DONE].
        let r = http
            .post(format!("{base}/chat/completions"))
            .bearer_auth(KEY)
            .json(
                &json!({"model": model, "messages": [{"role": "user", "content": "Say hello."}],
                          "max_tokens": 6, "temperature": 0, "stream": true,
                          "stream_options": {"include_usage": true}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let sse = r.text().await.unwrap();
        let events: Vec<&str> = sse
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        assert_eq!(events.last(), Some(&"[DONE]"), "{sse}");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert_eq!(chunks[0]["object"], "chat.completion.chunk");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(
            chunks[1]["choices"][0]["finish_reason"].is_string(),
            "{sse}"
        );
        let usage = &chunks.last().unwrap()["usage"];
        assert!(usage["completion_tokens"].as_u64().unwrap() >= 1, "{sse}");
        // The streamed chat job cost its reward (6 tokens at 1,000) and two fees.
        let want = want - 6_000 - 2 * 2_000;
        let start = Instant::now();
        while spendable(&dir, &node) != want {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the chat job was not paid once"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }

        // The official Python client, as users run it: models, a completion, a streamed chat.
        let py = std::env::var_os("CAMEL_PY_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| model_path().parent().unwrap().join("python"));
        let out = tokio::process::Command::new("python3")
            .arg("-c")
            .arg(PY_CLIENT)
            .env("PYTHONPATH", &py)
            .env("BASE", &base)
            .env("KEY", KEY)
            .env("MODEL", &model)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "the openai client failed (is it installed in {}? scripts/setup.sh installs it): {}",
            py.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            r["models"]
                .as_array()
                .unwrap()
                .contains(&Value::String(model.clone())),
            "{r}"
        );
        assert!(!r["completion"].as_str().unwrap().is_empty(), "{r}");
        assert!(r["job"].as_str().unwrap().len() == 64, "{r}");
        assert!(r["chunks"].as_u64().unwrap() >= 2, "{r}");
        assert!(r["usage"].as_u64().unwrap() >= 1, "{r}");
        // Two more jobs, each paid exactly once: 5 and 4 tokens at 1,000, two fees each.
        let want = want - 5_000 - 4_000 - 4 * 2_000;
        let start = Instant::now();
        while spendable(&dir, &node) != want {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the client's jobs were not paid once each"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let _ = serve.kill();
    let _ = serve.wait();
    net.stop_pace();
    for n in &mut net.nodes {
        n.stop(Duration::from_secs(20));
    }
    let _ = std::fs::remove_dir_all(&root);
}
