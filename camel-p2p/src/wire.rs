//! The libp2p glue: protocol names and topics per network, the bounded frame codec of the
//! request-response protocol, and the composed behaviour (connection limits first, then the
//! ban list, identify, ping, Kademlia, gossipsub, request-response).
//!
//! Nothing here knows about sync, scoring or jobs; [`crate::service`] drives it.

use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, Swarm, allow_block_list, connection_limits, gossipsub, identify, identity, kad,
    noise, ping, request_response, tcp, yamux,
};

use camel_core::params::Params;

use crate::message::{MAX_GOSSIP_FRAME, MAX_REQUEST_FRAME, MAX_RESPONSE_FRAME};

/// The per-network name prefix: `/camelid/<network>-<magic hex>`. Peers on other networks
/// speak other protocols and never exchange a message with us.
pub fn network_prefix(params: &Params) -> String {
    let m = params.magic;
    format!(
        "/camelid/{}-{:02x}{:02x}{:02x}{:02x}",
        params.name(),
        m[0],
        m[1],
        m[2],
        m[3]
    )
}

/// Protocol names and gossip topics of one network.
#[derive(Debug, Clone)]
pub struct Protocols {
    /// Identify's protocol version string.
    pub identify: String,
    pub kad: StreamProtocol,
    pub request: StreamProtocol,
    pub tx_topic: gossipsub::IdentTopic,
    pub block_topic: gossipsub::IdentTopic,
    pub job_topic: gossipsub::IdentTopic,
}

impl Protocols {
    pub fn new(params: &Params) -> Self {
        let p = network_prefix(params);
        // Names built from ASCII and hex start with '/': always valid stream protocols.
        let proto = |s: String| {
            StreamProtocol::try_from_owned(s).unwrap_or(StreamProtocol::new("/camelid/invalid"))
        };
        Self {
            identify: format!("{p}/id/1"),
            kad: proto(format!("{p}/kad/1")),
            request: proto(format!("{p}/req/1")),
            tx_topic: gossipsub::IdentTopic::new(format!("{p}/tx/1")),
            block_topic: gossipsub::IdentTopic::new(format!("{p}/block/1")),
            job_topic: gossipsub::IdentTopic::new(format!("{p}/job/1")),
        }
    }
}

/// A frame as read off a request-response stream: its bytes, or the note that it ran over
/// the limit (so the service can score the sender: libp2p drops inbound streams whose read
/// failed without telling the behaviour who sent them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Bytes(Vec<u8>),
    /// The sender went past `max` bytes; the rest of the stream was not read.
    TooLarge {
        max: usize,
    },
}

/// Request-response codec: one frame per stream, read to the end of the stream, cut off
/// past [`MAX_REQUEST_FRAME`] / [`MAX_RESPONSE_FRAME`] bytes. Frames are raw bytes here;
/// [`crate::message`] decodes them, so a malformed frame can be told from a broken stream.
/// Writing a [`Frame::TooLarge`] writes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameCodec;

async fn read_bounded<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Frame> {
    let mut buf = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > max {
        return Ok(Frame::TooLarge { max });
    }
    Ok(Frame::Bytes(buf))
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, frame: &Frame) -> io::Result<()> {
    if let Frame::Bytes(b) = frame {
        io.write_all(b).await?;
    }
    io.close().await
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = Frame;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Frame> {
        read_bounded(io, MAX_REQUEST_FRAME).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Frame> {
        let frame = read_bounded(io, MAX_RESPONSE_FRAME).await?;
        if frame == Frame::Bytes(Vec::new()) {
            // The other side closed the stream without answering (it is shutting down or
            // dropping us): a failed request, not a malformed response.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stream closed without a response",
            ));
        }
        Ok(frame)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Frame,
    ) -> io::Result<()> {
        write_frame(io, &req).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Frame,
    ) -> io::Result<()> {
        write_frame(io, &res).await
    }
}

/// The composed behaviour. Connection limits come first so a connection over the limits is
/// refused before any other behaviour sees it; the ban list second. (The libp2p behaviours do
/// not implement `Debug`.)
#[allow(missing_debug_implementations)]
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    /// Absent when discovery is off ([`WireConfig::kademlia`]).
    pub kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    pub gossipsub: gossipsub::Behaviour,
    pub reqresp: request_response::Behaviour<FrameCodec>,
}

/// Knobs of the libp2p layer.
#[derive(Debug, Clone)]
pub struct WireConfig {
    /// Most established connections in all.
    pub max_connections: u32,
    /// Most connections being set up (each direction).
    pub max_pending: u32,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub identify_interval: Duration,
    pub gossip_heartbeat: Duration,
    pub request_timeout: Duration,
    pub kad_query_timeout: Duration,
    /// Run Kademlia (discovery). Off, the node neither looks up nor answers lookups.
    pub kademlia: bool,
    /// How long a connection with no open stream stays up.
    pub idle_timeout: Duration,
}

impl Default for WireConfig {
    fn default() -> Self {
        Self {
            max_connections: 64,
            max_pending: 16,
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(20),
            identify_interval: Duration::from_secs(300),
            gossip_heartbeat: Duration::from_millis(700),
            request_timeout: Duration::from_secs(30),
            kad_query_timeout: Duration::from_secs(30),
            kademlia: true,
            idle_timeout: Duration::from_secs(3600),
        }
    }
}

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("transport: {0}")]
    Transport(String),
    #[error("gossipsub config: {0}")]
    Gossipsub(String),
}

/// Gossip message ids are the SHA-256 of the payload, so the same block or transaction
/// published by two nodes is one message.
fn message_id(m: &gossipsub::Message) -> gossipsub::MessageId {
    gossipsub::MessageId::from(camel_core::hash::sha256(&m.data).to_vec())
}

/// Builds the swarm for `params`' network with this identity.
pub fn build_swarm(
    key: identity::Keypair,
    params: &Params,
    config: &WireConfig,
) -> Result<Swarm<Behaviour>, BuildError> {
    let protocols = Protocols::new(params);
    let gossip_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(config.gossip_heartbeat)
        .heartbeat_initial_delay(Duration::from_millis(100))
        // Small networks: a mesh of 4..12 with at least 2 outbound, consistent with the
        // builder's checks (outbound_min <= mesh_n_low <= mesh_n <= mesh_n_high).
        .mesh_n_low(4)
        .mesh_n(6)
        .mesh_n_high(12)
        .mesh_outbound_min(2)
        .gossip_lazy(6)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(MAX_GOSSIP_FRAME + 1024)
        .duplicate_cache_time(Duration::from_secs(120))
        .build()
        .map_err(|e| BuildError::Gossipsub(e.to_string()))?;

    let protocols_for_behaviour = protocols.clone();
    let config_b = config.clone();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| BuildError::Transport(e.to_string()))?
        .with_behaviour(move |key| {
            let peer_id = key.public().to_peer_id();
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_established(Some(config_b.max_connections))
                .with_max_established_per_peer(Some(2))
                .with_max_pending_incoming(Some(config_b.max_pending))
                .with_max_pending_outgoing(Some(config_b.max_pending));
            let mut kad_config = kad::Config::new(protocols_for_behaviour.kad.clone());
            kad_config.set_query_timeout(config_b.kad_query_timeout);
            kad_config.set_periodic_bootstrap_interval(None);
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad_config,
            );
            // Without server mode, peers on loopback never add each other to their tables.
            kad.set_mode(Some(kad::Mode::Server));
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )?;
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                blocked: allow_block_list::Behaviour::default(),
                identify: identify::Behaviour::new(
                    identify::Config::new(protocols_for_behaviour.identify.clone(), key.public())
                        .with_interval(config_b.identify_interval)
                        .with_agent_version(format!("camel-p2p/{}", env!("CARGO_PKG_VERSION"))),
                ),
                ping: ping::Behaviour::new(
                    ping::Config::new()
                        .with_interval(config_b.ping_interval)
                        .with_timeout(config_b.ping_timeout),
                ),
                kad: Toggle::from(config_b.kademlia.then_some(kad)),
                gossipsub,
                reqresp: request_response::Behaviour::with_codec(
                    FrameCodec,
                    [(
                        protocols_for_behaviour.request.clone(),
                        request_response::ProtocolSupport::Full,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(config_b.request_timeout)
                        .with_max_concurrent_streams(256),
                ),
            })
        })
        .map_err(|e| BuildError::Gossipsub(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_per_network() {
        let names: Vec<String> = camel_core::params::Network::ALL
            .iter()
            .map(|n| Protocols::new(&Params::new(*n)).request.to_string())
            .collect();
        assert_eq!(names[0], "/camelid/main-ca3e11d1/req/1");
        assert_ne!(names[0], names[1]);
        assert_ne!(names[1], names[2]);
        let p = Protocols::new(&Params::regtest());
        assert_eq!(
            p.block_topic.to_string(),
            "/camelid/regtest-fabfca3e/block/1"
        );
    }

    #[test]
    fn frames_over_the_limit_are_refused() {
        futures::executor::block_on(async {
            let ok = vec![7u8; 100];
            assert_eq!(
                read_bounded(&mut &ok[..], 100).await.unwrap(),
                Frame::Bytes(ok)
            );
            let big = [7u8; 101];
            assert_eq!(
                read_bounded(&mut &big[..], 100).await.unwrap(),
                Frame::TooLarge { max: 100 }
            );
        });
    }
}
