//! The node as a process: the API over HTTP (auth, errors, queries), the data directory
//! lock, mining, and clean shutdown on SIGTERM, SIGINT and `POST /shutdown`.

mod common;

use std::time::{Duration, Instant};

use camel_core::address::Address;
use camel_core::block::Header;
use camel_core::encode::encode_to_vec;
use camel_core::hash::{from_hex, to_hex};
use camel_core::transaction::{OutPoint, TxOut};
use camel_node::datadir::{COOKIE_FILE, DataDir};
use common::process::{binary, start};
use common::*;

fn regtest_address(n: u8) -> String {
    Address::p2pkh(&key(n).public_key(), 0x6f).to_string()
}

#[test]
fn api_and_clean_shutdown() {
    let dir = TempDir::new("proc-api");
    let data = dir.path().join("data");
    let log = dir.path().join("node.log");
    let mut node = start(&data, &log, &[]);
    let addr = regtest_address(1);

    // Control needs the cookie's token.
    let gen_body = format!(r#"{{"n": 3, "address": "{addr}"}}"#);
    let (status, body) = node.post("/generate", false, &gen_body);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = http(node.addr, "POST", "/generate", Some("wrong"), &gen_body).unwrap();
    assert_eq!(status, 401);
    let (status, body) = node.post("/generate", true, &gen_body);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["blocks"].as_array().unwrap().len(), 3);
    assert_eq!(body["height"], 3);

    // Bad requests get JSON errors.
    for (path, body, code) in [
        ("/generate", "{", "bad-json"),
        ("/generate", r#"{"n": 0, "address": "x"}"#, "bad-n"),
        (
            "/generate",
            r#"{"n": 1, "address": "notanaddress0OIl"}"#,
            "bad-address",
        ),
        ("/block", "zz", "bad-hex"),
        ("/block", "00", "bad-encoding"),
    ] {
        let (status, v) = node.post(path, true, body);
        assert_eq!(status, 400, "{path} {body}: {v}");
        assert_eq!(v["error"]["code"], code, "{path} {body}: {v}");
    }
    for (body, code) in [
        ("xyz", "bad-hex"),
        ("{\"hex\": 5}", "bad-json"),
        ("abcd", "bad-encoding"),
    ] {
        let (status, v) = node.post("/tx", false, body);
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some(code)),
            "{v}"
        );
    }

    // Queries.
    let (status, tip) = node.get("/tip");
    assert_eq!(status, 200);
    assert_eq!(tip["height"], 3);
    assert_eq!(tip["network"], "regtest");
    let (status, b3) = node.get("/block/3");
    assert_eq!(status, 200, "{b3}");
    assert_eq!(b3["hash"], tip["hash"]);
    let (status, by_hash) = node.get(&format!("/block/{}", tip["hash"].as_str().unwrap()));
    assert_eq!(status, 200);
    assert_eq!(by_hash["height"], 3);
    assert_eq!(node.get("/block/99").0, 404);
    assert_eq!(node.get("/block/nope").0, 400);
    assert_eq!(node.get(&format!("/block/{}", "0".repeat(64))).0, 404);
    let coinbase = b3["txids"][0].as_str().unwrap().to_owned();
    // Headers for light clients: raw, linked, bounded.
    let (status, hs) = node.get("/headers/1?count=5");
    assert_eq!(status, 200, "{hs}");
    let hs: Vec<Header> = hs["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            camel_core::encode::decode_from_slice(&from_hex(h.as_str().unwrap()).unwrap()).unwrap()
        })
        .collect();
    assert_eq!(hs.len(), 3, "heights 1 to 3 only");
    assert_eq!(
        hs[2].block_hash().to_string(),
        tip["hash"].as_str().unwrap()
    );
    assert_eq!(hs[2].prev_blockhash, hs[1].block_hash());
    assert_eq!(node.get("/headers/1?count=2001").0, 400);
    assert_eq!(node.get("/headers/x").0, 400);
    // A merkle proof that leads to the block's header.
    let (status, proof) = node.get(&format!("/tx/{coinbase}/proof"));
    assert_eq!(status, 200, "{proof}");
    assert_eq!(proof["height"], 3);
    let header: Header = camel_core::encode::decode_from_slice(
        &from_hex(proof["header"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let root = camel_core::merkle::root_from_branch(&coinbase.parse().unwrap(), 0, &[]);
    assert_eq!(root, header.merkle_root);
    assert_eq!(node.get(&format!("/tx/{}/proof", "ab".repeat(32))).0, 404);
    // Prometheus text.
    let (status, metrics) = http(node.addr, "GET", "/metrics", None, "").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("# TYPE camel_chain_height gauge"),
        "{metrics}"
    );
    assert!(metrics.contains("\ncamel_chain_height 3\n"), "{metrics}");
    let (status, tx) = node.get(&format!("/tx/{coinbase}"));
    assert_eq!(status, 200, "{tx}");
    assert_eq!(tx["height"], 3);
    assert_eq!(tx["confirmations"], 1);
    assert_eq!(node.get("/tx/1234").0, 400);
    assert_eq!(node.get(&format!("/tx/{}", "ab".repeat(32))).0, 404);
    let (status, bal) = node.get(&format!("/address/{addr}/balance"));
    assert_eq!(status, 200, "{bal}");
    assert_eq!(bal["confirmed"], 3 * 50 * 100_000_000u64);
    assert_eq!(bal["coins"], 3);
    let (status, utxos) = node.get(&format!("/address/{addr}/utxos"));
    assert_eq!(status, 200);
    assert_eq!(utxos["utxos"].as_array().unwrap().len(), 3);
    assert_eq!(node.get("/address/xyz/balance").0, 400);
    let (status, v) = node.get("/address/1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2/balance");
    assert_eq!(status, 400, "a main-network address on regtest: {v}");
    assert_eq!(node.get("/nowhere").0, 404);
    // A known path with another method: still a JSON error.
    let (status, v) = node.get("/generate");
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (405, Some("method-not-allowed")),
        "{v}"
    );
    // A path that is not UTF-8 after decoding: still a JSON error.
    let (status, v) = node.get("/block/%FF");
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("bad-path")),
        "{v}"
    );

    // A transaction spending an immature coinbase: the consensus reason comes back.
    let vout0 = OutPoint::new(coinbase.parse().unwrap(), 0);
    let spend_tx = spend(
        &key(1),
        &[(
            vout0,
            TxOut {
                value: amount(50 * 100_000_000),
                script_pubkey: script_of(&key(1)),
            },
        )],
        vec![TxOut {
            value: amount(49 * 100_000_000),
            script_pubkey: script_of(&key(2)),
        }],
    );
    let (status, v) = node.post("/tx", false, &to_hex(&encode_to_vec(&spend_tx)));
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad-txns-premature-spend-of-coinbase");
    let (status, pool) = node.get("/mempool");
    assert_eq!(status, 200);
    assert_eq!(pool["count"], 0);

    // A second node on the same data directory is refused with a clear message.
    let out = std::process::Command::new(binary())
        .args(["--regtest", "--api-port", "0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&data.display().to_string()), "{err}");
    assert!(err.contains(&node.child.id().to_string()), "{err}");

    // SIGTERM: clean exit, cookie removed, lock released.
    let status = node.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(!data.join(COOKIE_FILE).exists());
    drop(DataDir::open(&data).unwrap());

    // Restart: the chain is there; SIGINT stops it cleanly too.
    let mut node = start(&data, &log, &[]);
    assert_eq!(node.get("/tip").1["height"], 3);
    let status = node.signal_and_wait("INT", Duration::from_secs(20));
    assert!(status.success(), "{status}");

    // POST /shutdown needs the token, then stops the node.
    let mut node = start(&data, &log, &[]);
    assert_eq!(node.post("/shutdown", false, "").0, 401);
    assert_eq!(node.post("/shutdown", true, "").0, 200);
    let status = node.wait(Duration::from_secs(20));
    assert!(status.success(), "{status}");
}

#[test]
fn mining_node_mines_and_stops_on_sigterm() {
    let dir = TempDir::new("proc-mine");
    let data = dir.path().join("data");
    let log = dir.path().join("node.log");
    let addr = regtest_address(7);
    let mut node = start(
        &data,
        &log,
        &["--mine", "--mine-threads", "2", "--mining-address", &addr],
    );
    let start_time = Instant::now();
    loop {
        let (_, tip) = node.get("/tip");
        if tip["height"].as_u64().unwrap() >= 5 {
            break;
        }
        assert!(
            start_time.elapsed() < Duration::from_secs(60),
            "no blocks mined"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, bal) = node.get(&format!("/address/{addr}/balance"));
    assert!(bal["coins"].as_u64().unwrap() >= 5, "{bal}");
    let status = node.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(status.success(), "{status}");
    // --mine without an address is refused.
    let out = std::process::Command::new(binary())
        .args(["--regtest", "--api-port", "0", "--mine", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mining-address"));
}
