//! A raw test peer: the crate's libp2p behaviour without the service on top, so a test can
//! send hand-crafted frames on the request-response protocol and the gossip topics and
//! answer requests as it likes.
#![allow(dead_code)]

use std::time::Duration;

use camel_core::params::Params;
use camel_core::pow::Work;
use camel_p2p::message::{Request, Response, Status};
use camel_p2p::wire::{Behaviour, BehaviourEvent, Frame, Protocols, WireConfig, build_swarm};
use camel_p2p::{Multiaddr, PeerId};
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Swarm, gossipsub, identity, request_response};

/// Answers an inbound request frame; `None` leaves it unanswered.
pub type Responder = Box<dyn FnMut(&[u8]) -> Option<Vec<u8>> + Send>;

pub struct RawPeer {
    pub swarm: Swarm<Behaviour>,
    pub protocols: Protocols,
    pub peer_id: PeerId,
    pub responder: Responder,
    params: Params,
}

/// Answers `Status` with the genesis (no work to offer), `GetPeers` and `GetHeaders` with
/// nothing.
pub fn quiet_responder(params: &Params) -> Responder {
    let genesis = params.genesis_hash;
    let work = params.genesis_block().header.work();
    Box::new(move |frame| {
        let resp = match Request::from_frame(frame).ok()? {
            Request::Status(_) => Response::Status(Status {
                genesis,
                tip: genesis,
                height: 0,
                work,
            }),
            Request::GetPeers => Response::Peers(vec![]),
            Request::GetHeaders { .. } => Response::Headers(vec![]),
            Request::GetBlocks(_) => Response::Blocks(vec![]),
            _ => return None,
        };
        Some(resp.to_frame())
    })
}

impl RawPeer {
    pub fn new(params: Params) -> Self {
        let key = identity::Keypair::generate_ed25519();
        let peer_id = key.public().to_peer_id();
        let wire = WireConfig {
            gossip_heartbeat: Duration::from_millis(200),
            request_timeout: Duration::from_secs(10),
            ..WireConfig::default()
        };
        let mut swarm = build_swarm(key, &params, &wire).unwrap();
        let protocols = Protocols::new(&params);
        for t in [
            &protocols.tx_topic,
            &protocols.block_topic,
            &protocols.job_topic,
        ] {
            swarm.behaviour_mut().gossipsub.subscribe(t).unwrap();
        }
        Self {
            swarm,
            protocols,
            peer_id,
            responder: quiet_responder(&params),
            params,
        }
    }

    pub fn genesis_work(&self) -> Work {
        self.params.genesis_block().header.work()
    }

    fn on_event(&mut self, ev: &mut Option<SwarmEvent<BehaviourEvent>>) {
        if let Some(SwarmEvent::Behaviour(BehaviourEvent::Reqresp(
            request_response::Event::Message {
                message: request_response::Message::Request { .. },
                ..
            },
        ))) = ev
        {
            let Some(SwarmEvent::Behaviour(BehaviourEvent::Reqresp(
                request_response::Event::Message {
                    message:
                        request_response::Message::Request {
                            request, channel, ..
                        },
                    ..
                },
            ))) = ev.take()
            else {
                unreachable!()
            };
            if let Frame::Bytes(request) = request
                && let Some(resp) = (self.responder)(&request)
            {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .reqresp
                    .send_response(channel, Frame::Bytes(resp));
            }
        }
    }

    /// Polls the swarm until `f` returns `Some` for an event, or `secs` pass.
    pub async fn until<T>(
        &mut self,
        secs: u64,
        mut f: impl FnMut(&mut Swarm<Behaviour>, &SwarmEvent<BehaviourEvent>) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::sleep(Duration::from_secs(secs));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => {
                    let mut ev = Some(ev);
                    self.on_event(&mut ev);
                    if let Some(ev) = ev
                        && let Some(t) = f(&mut self.swarm, &ev)
                    {
                        return Some(t);
                    }
                }
                _ = &mut deadline => return None,
            }
        }
    }

    /// Keeps the swarm running for `dur`.
    pub async fn pump(&mut self, dur: Duration) {
        let ms = dur.as_millis() as u64;
        let deadline = tokio::time::sleep(Duration::from_millis(ms));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => {
                    let mut ev = Some(ev);
                    self.on_event(&mut ev);
                }
                _ = &mut deadline => return,
            }
        }
    }

    pub async fn connect(&mut self, addr: &Multiaddr) -> PeerId {
        self.swarm.dial(addr.clone()).unwrap();
        self.until(10, |_, ev| match ev {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => Some(*peer_id),
            _ => None,
        })
        .await
        .expect("raw peer connects")
    }

    /// Sends a raw request frame and waits for the raw response frame.
    pub async fn request(&mut self, peer: PeerId, frame: Vec<u8>) -> Result<Vec<u8>, String> {
        let id = self
            .swarm
            .behaviour_mut()
            .reqresp
            .send_request(&peer, Frame::Bytes(frame));
        self.until(15, |_, ev| match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Reqresp(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            })) if *request_id == id => match response {
                Frame::Bytes(b) => Some(Ok(b.clone())),
                Frame::TooLarge { max } => Some(Err(format!("response over {max} bytes"))),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Reqresp(
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                },
            )) if *request_id == id => Some(Err(error.to_string())),
            _ => None,
        })
        .await
        .unwrap_or_else(|| Err("no answer".into()))
    }

    /// Sends a request and decodes the answer.
    pub async fn ask(&mut self, peer: PeerId, req: &Request) -> Result<Response, String> {
        let frame = self.request(peer, req.to_frame()).await?;
        Response::from_frame(&frame).map_err(|e| e.to_string())
    }

    /// Waits until `peer` is subscribed to the block, tx and job topics as we see it.
    pub async fn wait_subscribed(&mut self, peer: PeerId) {
        let want = [
            self.protocols.tx_topic.hash(),
            self.protocols.block_topic.hash(),
            self.protocols.job_topic.hash(),
        ];
        let ok = |s: &Swarm<Behaviour>| {
            s.behaviour()
                .gossipsub
                .all_peers()
                .any(|(p, t)| *p == peer && want.iter().all(|w| t.contains(&w)))
        };
        if ok(&self.swarm) {
            return;
        }
        self.until(10, |s, _| ok(s).then_some(()))
            .await
            .expect("peer subscribes");
    }

    pub fn publish(&mut self, topic: &gossipsub::IdentTopic, data: Vec<u8>) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic.hash(), data)
            .unwrap();
    }

    /// Waits until the connection to `peer` closes; false if it is still open after `secs`.
    pub async fn wait_disconnected(&mut self, peer: PeerId, secs: u64) -> bool {
        if !self.swarm.is_connected(&peer) {
            return true;
        }
        self.until(secs, |s, _| (!s.is_connected(&peer)).then_some(()))
            .await
            .is_some()
    }
}
