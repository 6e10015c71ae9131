//! The light client does not believe its node. Between `camel-wallet` and a real regtest node
//! sits a proxy that lies in one way at a time: headers whose `bits` break the rules, a header
//! that does not link to its parent, a merkle branch that does not lead to the block's root,
//! a coin that no block holds, a coin left out (caught by asking a second node). Each lie is
//! caught (exit 8, a message that names it); the honest proxy gives the same balance as the
//! node, and two honest nodes agree.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use camel_core::block::Header;
use camel_core::encode::{decode_from_slice, encode_to_vec};
use camel_core::hash::{from_hex, to_hex};
use camel_testnet::{NodeSpec, Testnet};
use serde_json::Value;

const PASS: &str = "trust nobody";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lie {
    None,
    /// The last header served carries other `bits` than the rules require.
    Bits,
    /// A header whose parent is not the header before it.
    Link,
    /// A merkle branch with a sibling changed.
    Branch,
    /// An extra coin of a transaction no block holds.
    PhantomCoin,
    /// One of the coins left out: only another node can tell.
    HideCoin,
}

#[derive(Clone)]
struct Proxy {
    node: String,
    lie: Arc<Mutex<Lie>>,
    http: reqwest::Client,
}

fn edit_header(hex: &str, f: impl FnOnce(&mut Header)) -> String {
    let mut h: Header = decode_from_slice(&from_hex(hex).unwrap()).unwrap();
    f(&mut h);
    to_hex(&encode_to_vec(&h))
}

async fn forward(State(p): State<Proxy>, req: Request) -> impl IntoResponse {
    let path = req
        .uri()
        .path_and_query()
        .map(|x| x.as_str().to_owned())
        .unwrap_or_default();
    let resp = p
        .http
        .get(format!("{}{path}", p.node))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let mut v: Value = resp.json().await.unwrap();
    let lie = *p.lie.lock().unwrap();
    if status == 200 {
        match lie {
            Lie::Bits if path.starts_with("/headers/") => {
                if let Some(last) = v["headers"].as_array_mut().and_then(|a| a.last_mut()) {
                    *last = edit_header(last.as_str().unwrap(), |h| h.bits = 0x1d00ffff).into();
                }
            }
            Lie::Link if path.starts_with("/headers/") => {
                if let Some(a) = v["headers"].as_array_mut()
                    && a.len() > 2
                {
                    let i = a.len() / 2;
                    a[i] = edit_header(a[i].as_str().unwrap(), |h| {
                        h.prev_blockhash = camel_core::BlockHash::from_byte_array([7; 32]);
                    })
                    .into();
                }
            }
            Lie::Branch if path.ends_with("/proof") => {
                let b = v["branch"].as_array_mut().unwrap();
                // Blocks of one transaction have an empty branch: a wrong sibling then.
                if b.is_empty() {
                    b.push(to_hex(&[9u8; 32]).into());
                } else {
                    b[0] = to_hex(&[9u8; 32]).into();
                }
            }
            Lie::HideCoin if path.ends_with("/utxos") => {
                v["utxos"].as_array_mut().unwrap().pop();
            }
            Lie::PhantomCoin if path.ends_with("/utxos") => {
                let list = v["utxos"].as_array_mut().unwrap();
                let mut fake = list[0].clone();
                fake["txid"] = "ab".repeat(32).into();
                list.push(fake);
            }
            _ => {}
        }
    }
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        axum::Json(v),
    )
}

fn wallet(dir: &std::path::Path, node: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_camel-wallet"))
        .arg("--wallet-dir")
        .arg(dir)
        .args(["--node", node, "--json"])
        .args(args)
        .env("CAMEL_WALLET_PASSPHRASE", PASS)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_node_that_lies_is_caught() {
    let root = std::env::temp_dir().join(format!("camel-wallet-forged-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let worker = PathBuf::from(env!("CARGO_BIN_EXE_camel-wallet"))
        .with_file_name(format!("camel-worker{}", std::env::consts::EXE_SUFFIX));
    assert!(
        worker.is_file(),
        "build camel-worker first (scripts/test.sh does)"
    );
    let plain = NodeSpec {
        model: None,
        cheat: None,
        args: vec![],
    };
    let miner = "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r";
    let net = Testnet::start(
        &worker,
        &root.join("net"),
        vec![plain.clone(), plain],
        miner,
    )
    .unwrap();
    let node = net.nodes[0].api.clone();
    let dir = root.join("wallet");
    let init = json(&wallet(&dir, &node, &["init", "--network", "regtest"]));
    let addr = init["address"].as_str().unwrap().to_owned();
    // Coins in blocks of one and of several transactions: a payment between two blocks.
    net.mine_to(2, &addr).unwrap();
    net.mine(101).unwrap();
    let honest = json(&wallet(&dir, &node, &["balance"]));
    assert!(honest["spendable_base"].as_u64().unwrap() > 0, "{honest}");
    assert_eq!(honest["verified_height"], 103);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let lie = Arc::new(Mutex::new(Lie::None));
    let proxy = Proxy {
        node: node.clone(),
        lie: lie.clone(),
        http: reqwest::Client::new(),
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move {
        let app = Router::new().fallback(forward).with_state(proxy);
        axum::serve(listener, app).await.unwrap();
    });

    // Through the honest proxy: the same answer.
    let fresh = root.join("fresh");
    let phrase = init["mnemonic"].as_str().unwrap();
    let restore = Command::new(env!("CARGO_BIN_EXE_camel-wallet"))
        .arg("--wallet-dir")
        .arg(&fresh)
        .args(["--node", &url, "--json", "restore", "--network", "regtest"])
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
    let restored = json(&restore);
    assert_eq!(
        restored["balance"]["spendable_base"],
        honest["spendable_base"]
    );

    for (what, l, needle) in [
        ("bad bits", Lie::Bits, "forged header chain"),
        ("broken link", Lie::Link, "forged header chain"),
        ("bad merkle branch", Lie::Branch, "merkle branch"),
        ("phantom coin", Lie::PhantomCoin, "in no block"),
    ] {
        *lie.lock().unwrap() = l;
        // A wallet with no verified headers yet, so that the forged ones are read.
        let d = root.join(format!("w-{what}"));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for f in ["keystore.json", "wallet.json"] {
            std::fs::copy(dir.join(f), d.join(f)).unwrap();
        }
        let out = wallet(&d, &url, &["balance"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(8), "{what}: {err}");
        assert!(err.contains(needle), "{what}: {err}");
        assert!(out.stdout.is_empty(), "{what}: no balance is printed");
    }

    // Two honest nodes agree; a node that hides a coin is caught by the other.
    let other = net.nodes[1].api.clone();
    let both = json(&wallet(&dir, &node, &["--node", &other, "balance"]));
    assert_eq!(both["spendable_base"], honest["spendable_base"]);
    *lie.lock().unwrap() = Lie::HideCoin;
    let out = wallet(&dir, &node, &["--node", &url, "balance"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "hidden coin: {err}");
    assert!(
        err.contains("the nodes disagree") && err.contains(&url),
        "{err}"
    );

    // `peers` needs no secret: each node's tip, checked against headers verified from the
    // genesis, and its peers; a lying node is named.
    let p = Command::new(env!("CARGO_BIN_EXE_camel-wallet"))
        .args(["--node", &node, "--node", &other, "--json", "peers"])
        .output()
        .unwrap();
    let p = json(&p);
    let ns = p["nodes"].as_array().unwrap();
    assert_eq!(ns.len(), 2);
    assert!(
        ns.iter()
            .all(|n| n["tip_verified"] == true && n["network"] == "regtest"),
        "{p}"
    );
    assert!(!ns[0]["peers"].as_array().unwrap().is_empty(), "{p}");
    *lie.lock().unwrap() = Lie::Bits;
    let out = Command::new(env!("CARGO_BIN_EXE_camel-wallet"))
        .args(["--node", &url, "--json", "peers"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&url));

    // Shell completions.
    let out = Command::new(env!("CARGO_BIN_EXE_camel-wallet"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("camel-wallet") && script.contains("balance"),
        "{script}"
    );

    drop(net);
    let _ = std::fs::remove_dir_all(&root);
}
