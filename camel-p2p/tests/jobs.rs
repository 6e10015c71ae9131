//! Job exchange and verification requests and job gossip are routed to the node's
//! `JobHandler`; its verdicts on validity score the sender.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use camel_core::params::Params;
use camel_p2p::message::ErrorCode;
use camel_p2p::{JobAcceptance, JobFault, JobHandler, Network, NetworkError, NoJobs, PeerId};
use common::{MemChain, config, init_tracing, wait_until};

#[derive(Debug, Default)]
struct EchoJobs {
    gossip: Mutex<Vec<Vec<u8>>>,
}

impl JobHandler for EchoJobs {
    fn on_gossip(&self, _from: PeerId, payload: &[u8]) -> Result<JobAcceptance, JobFault> {
        if payload == b"bad" {
            return Err(JobFault::Invalid("bad job".into()));
        }
        self.gossip.lock().unwrap().push(payload.to_vec());
        Ok(JobAcceptance::Accept)
    }

    async fn on_job_request(&self, _from: PeerId, payload: Vec<u8>) -> Result<Vec<u8>, JobFault> {
        if payload.is_empty() {
            return Err(JobFault::Invalid("empty job request".into()));
        }
        Ok(payload.into_iter().rev().collect())
    }

    async fn on_verify_request(
        &self,
        _from: PeerId,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, JobFault> {
        // A verifier takes its time; the network task keeps running meanwhile.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok([b"verdict:".as_slice(), &payload].concat())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_messages_reach_the_job_handler() {
    init_tracing();
    let params = Params::regtest();
    let jobs_a = Arc::new(EchoJobs::default());
    let jobs_b = Arc::new(EchoJobs::default());
    let a = Network::start(config(&[]), MemChain::new(params.clone()), jobs_a.clone())
        .await
        .unwrap();
    let boot = a.handle().listen_addrs();
    let b = Network::start(config(&boot), MemChain::new(params.clone()), jobs_b.clone())
        .await
        .unwrap();
    let c = Network::start(
        config(&boot),
        MemChain::new(params.clone()),
        Arc::new(NoJobs),
    )
    .await
    .unwrap();
    let (ha, hb, hc) = (a.handle(), b.handle(), c.handle());
    wait_until(20, "mesh", || async {
        ha.status().await.unwrap().block_mesh >= 2
    })
    .await;

    assert_eq!(
        hb.request_job(ha.peer_id(), b"abc".to_vec()).await.unwrap(),
        b"cba"
    );
    assert_eq!(
        hb.request_verify(ha.peer_id(), b"xyz".to_vec())
            .await
            .unwrap(),
        b"verdict:xyz"
    );
    // A node without a job handler says so.
    let e = hb
        .request_job(hc.peer_id(), b"abc".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            NetworkError::Refused {
                code: ErrorCode::Unsupported,
                ..
            }
        ),
        "{e}"
    );

    // Gossip reaches the other handler (and C relays it without a handler of its own).
    ha.broadcast_job(b"job-1".to_vec()).await.unwrap();
    wait_until(10, "job gossip at B", || async {
        jobs_b.gossip.lock().unwrap().contains(&b"job-1".to_vec())
    })
    .await;

    // Payloads over the limit are refused before they leave (peers would score us down).
    let big = vec![0u8; camel_p2p::message::MAX_JOB_PAYLOAD + 1];
    assert!(matches!(
        ha.broadcast_job(big.clone()).await,
        Err(NetworkError::TooLarge { .. })
    ));
    assert!(matches!(
        hb.request_verify(ha.peer_id(), big).await,
        Err(NetworkError::TooLarge { .. })
    ));

    // An invalid job request costs the sender 10 points at A.
    let e = hb.request_job(ha.peer_id(), vec![]).await.unwrap_err();
    assert!(
        matches!(
            e,
            NetworkError::Refused {
                code: ErrorCode::BadRequest,
                ..
            }
        ),
        "{e}"
    );
    let peers = ha.peers().await.unwrap();
    let bi = peers.iter().find(|p| p.peer_id == hb.peer_id()).unwrap();
    assert!((bi.score + 10.0).abs() < 0.5, "{bi:?}");

    for n in [a, b, c] {
        n.shutdown().await;
    }
}
