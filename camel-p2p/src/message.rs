//! Wire messages: a versioned envelope around camel-core's consensus encoding.
//!
//! Every message, gossip or request-response, is one frame:
//! `version: u8 (= 1) ‖ type: u8 ‖ payload`, where the payload is the consensus encoding
//! of the message's fields (little-endian integers, CompactSize lengths, each length checked
//! against the limit below before anything is read). A frame is decoded from a byte slice
//! that is already bounded by the transport ([`MAX_REQUEST_FRAME`], [`MAX_RESPONSE_FRAME`],
//! [`MAX_GOSSIP_FRAME`]); trailing bytes after the payload are an error. The full table,
//! with the scoring of each failure, is in `docs/protocol.md` section 12.

use camel_core::block::{Block, Header};
use camel_core::encode::{
    Decodable, DecodeError, Encodable, Reader, write_compact_size, write_var_bytes, write_vec,
};
use camel_core::pow::Work;
use camel_core::transaction::Transaction;
use camel_core::{BlockHash, encode::MAX_PREALLOC_BYTES};
use libp2p::{Multiaddr, PeerId};

/// The envelope version this code speaks.
pub const WIRE_VERSION: u8 = 1;
/// Largest opaque job-exchange or verification payload.
pub const MAX_JOB_PAYLOAD: usize = 1 << 20;
/// Most hashes in a block locator.
pub const MAX_LOCATOR: usize = 64;
/// Most headers in one `Headers` response (and the most a `GetHeaders` may ask for).
pub const MAX_HEADERS: usize = 2000;
/// Most hashes in one `GetBlocks` request (and blocks in one `Blocks` response).
pub const MAX_BLOCKS_PER_REQUEST: usize = 128;
/// Most peer records in one `Peers` response.
pub const MAX_PEER_RECORDS: usize = 64;
/// Most addresses in one peer record.
pub const MAX_ADDRS_PER_PEER: usize = 8;
/// Largest encoded peer id (an ed25519 identity multihash is 38 bytes).
pub const MAX_PEER_ID_LEN: usize = 64;
/// Largest encoded multiaddress.
pub const MAX_ADDR_LEN: usize = 128;
/// Most error-text bytes in an `Error` response.
pub const MAX_ERROR_TEXT: usize = 256;
/// A server stops adding blocks to a `Blocks` response past this many bytes (it always sends
/// at least one block).
pub const BLOCKS_RESPONSE_BUDGET: usize = 4_000_000;

/// Largest request frame: a job payload plus envelope and length prefix.
pub const MAX_REQUEST_FRAME: usize = MAX_JOB_PAYLOAD + 16;
/// Largest response frame: a full `Blocks` response (the budget plus one largest block).
pub const MAX_RESPONSE_FRAME: usize =
    BLOCKS_RESPONSE_BUDGET + camel_core::block::MAX_BLOCK_SIZE + 16;
/// Largest gossip frame: one largest block plus envelope.
pub const MAX_GOSSIP_FRAME: usize = camel_core::block::MAX_BLOCK_SIZE + 16;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty frame")]
    Empty,
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    #[error("frame of {len} bytes exceeds the limit {max}")]
    Oversize { len: usize, max: usize },
    #[error("malformed payload: {0}")]
    Malformed(DecodeError),
}

impl From<DecodeError> for WireError {
    fn from(e: DecodeError) -> Self {
        Self::Malformed(e)
    }
}

/// A node's view of its chain, exchanged on connection and periodically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The genesis hash: peers on another chain are disconnected.
    pub genesis: BlockHash,
    /// The best block (fully validated) and its height and chain work.
    pub tip: BlockHash,
    pub height: u32,
    pub work: Work,
}

impl Encodable for Status {
    fn encode(&self, out: &mut Vec<u8>) {
        self.genesis.encode(out);
        self.tip.encode(out);
        self.height.encode(out);
        out.extend_from_slice(&self.work.to_le_bytes());
    }
}

impl Decodable for Status {
    const MIN_ENCODED_SIZE: usize = 32 + 32 + 4 + 32;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            genesis: BlockHash::decode(r)?,
            tip: BlockHash::decode(r)?,
            height: r.read_u32()?,
            work: Work::from_le_bytes(r.read_array()?),
        })
    }
}

/// A peer and the addresses it listens on, as `Peers` carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    pub peer_id: PeerId,
    pub addrs: Vec<Multiaddr>,
}

impl Encodable for PeerRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        write_var_bytes(out, &self.peer_id.to_bytes());
        // Addresses a peer announced that exceed the limit are left out rather than sent
        // and refused: relaying them would get us scored down.
        let addrs: Vec<Vec<u8>> = self
            .addrs
            .iter()
            .map(|a| a.to_vec())
            .filter(|a| a.len() <= MAX_ADDR_LEN)
            .take(MAX_ADDRS_PER_PEER)
            .collect();
        write_compact_size(out, addrs.len() as u64);
        for a in &addrs {
            write_var_bytes(out, a);
        }
    }
}

impl Decodable for PeerRecord {
    const MIN_ENCODED_SIZE: usize = 2;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = r.read_var_bytes("peer id", MAX_PEER_ID_LEN)?;
        let peer_id = PeerId::from_bytes(&id).map_err(|_| DecodeError::Invalid("peer id"))?;
        let n = r.read_length("addresses", MAX_ADDRS_PER_PEER, 1)?;
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            let bytes = r.read_var_bytes("address", MAX_ADDR_LEN)?;
            addrs.push(Multiaddr::try_from(bytes).map_err(|_| DecodeError::Invalid("address"))?);
        }
        Ok(Self { peer_id, addrs })
    }
}

/// Messages carried by gossip, one topic per kind (see [`crate::wire::Protocols`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GossipMessage {
    /// 0x01: a transaction.
    Tx(Transaction),
    /// 0x02: a block.
    Block(Block),
    /// 0x03: a job-protocol announcement, opaque here, at most [`MAX_JOB_PAYLOAD`] bytes.
    Job(Vec<u8>),
}

/// Requests, one per request-response stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// 0x10: the sender's status; the answer is the receiver's.
    Status(Status),
    /// 0x11: headers of the receiver's best chain after the first locator hash it knows, up
    /// to `stop` (zero: no stop) and at most `max` (capped at [`MAX_HEADERS`]).
    GetHeaders {
        locator: Vec<BlockHash>,
        stop: BlockHash,
        max: u16,
    },
    /// 0x12: these blocks, in this order, those the receiver has.
    GetBlocks(Vec<BlockHash>),
    /// 0x13: peers the receiver is connected to.
    GetPeers,
    /// 0x14: job exchange, opaque here.
    Job(Vec<u8>),
    /// 0x15: a verification request, opaque here.
    Verify(Vec<u8>),
}

/// Error codes of [`Response::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request exceeded the sender's rate limit for its protocol.
    RateLimited,
    /// The request could not be decoded.
    BadRequest,
    /// The receiver does not serve this request (e.g. no job handler).
    Unsupported,
    /// The receiver's handler failed for a reason of its own.
    Internal,
    /// A code this version does not know.
    Other(u8),
}

impl ErrorCode {
    fn to_u8(self) -> u8 {
        match self {
            Self::RateLimited => 1,
            Self::BadRequest => 2,
            Self::Unsupported => 3,
            Self::Internal => 4,
            Self::Other(c) => c,
        }
    }
    fn from_u8(c: u8) -> Self {
        match c {
            1 => Self::RateLimited,
            2 => Self::BadRequest,
            3 => Self::Unsupported,
            4 => Self::Internal,
            c => Self::Other(c),
        }
    }
}

/// Responses; each answers the request on its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// 0x20
    Status(Status),
    /// 0x21: at most [`MAX_HEADERS`], each linking to the one before.
    Headers(Vec<Header>),
    /// 0x22: a subset of the requested blocks, in request order.
    Blocks(Vec<Block>),
    /// 0x23
    Peers(Vec<PeerRecord>),
    /// 0x24
    Job(Vec<u8>),
    /// 0x25: a verification verdict, opaque here.
    Verdict(Vec<u8>),
    /// 0x2f: the request was refused.
    Error { code: ErrorCode, text: String },
}

fn open(frame: &[u8], max: usize) -> Result<(u8, Reader<'_>), WireError> {
    if frame.len() > max {
        return Err(WireError::Oversize {
            len: frame.len(),
            max,
        });
    }
    let (&version, rest) = frame.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    let (&ty, payload) = rest.split_first().ok_or(WireError::Empty)?;
    Ok((ty, Reader::new(payload)))
}

fn close(r: &Reader<'_>) -> Result<(), WireError> {
    match r.remaining() {
        0 => Ok(()),
        n => Err(WireError::Malformed(DecodeError::TrailingBytes(n))),
    }
}

fn frame(ty: u8, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = vec![WIRE_VERSION, ty];
    body(&mut out);
    out
}

fn read_blocks(r: &mut Reader<'_>) -> Result<Vec<Block>, DecodeError> {
    r.read_vec("blocks", MAX_BLOCKS_PER_REQUEST)
}

impl GossipMessage {
    pub fn type_byte(&self) -> u8 {
        match self {
            Self::Tx(_) => 0x01,
            Self::Block(_) => 0x02,
            Self::Job(_) => 0x03,
        }
    }

    pub fn to_frame(&self) -> Vec<u8> {
        frame(self.type_byte(), |out| match self {
            Self::Tx(tx) => tx.encode(out),
            Self::Block(b) => b.encode(out),
            Self::Job(p) => write_var_bytes(out, p),
        })
    }

    pub fn from_frame(bytes: &[u8]) -> Result<Self, WireError> {
        let (ty, mut r) = open(bytes, MAX_GOSSIP_FRAME)?;
        let msg = match ty {
            0x01 => Self::Tx(Transaction::decode(&mut r)?),
            0x02 => Self::Block(Block::decode(&mut r)?),
            0x03 => Self::Job(r.read_var_bytes("job payload", MAX_JOB_PAYLOAD)?),
            t => return Err(WireError::UnknownType(t)),
        };
        close(&r)?;
        Ok(msg)
    }
}

impl Request {
    pub fn type_byte(&self) -> u8 {
        match self {
            Self::Status(_) => 0x10,
            Self::GetHeaders { .. } => 0x11,
            Self::GetBlocks(_) => 0x12,
            Self::GetPeers => 0x13,
            Self::Job(_) => 0x14,
            Self::Verify(_) => 0x15,
        }
    }

    pub fn to_frame(&self) -> Vec<u8> {
        frame(self.type_byte(), |out| match self {
            Self::Status(s) => s.encode(out),
            Self::GetHeaders { locator, stop, max } => {
                write_vec(out, &locator[..locator.len().min(MAX_LOCATOR)]);
                stop.encode(out);
                max.encode(out);
            }
            Self::GetBlocks(h) => write_vec(out, &h[..h.len().min(MAX_BLOCKS_PER_REQUEST)]),
            Self::GetPeers => {}
            Self::Job(p) | Self::Verify(p) => write_var_bytes(out, p),
        })
    }

    pub fn from_frame(bytes: &[u8]) -> Result<Self, WireError> {
        let (ty, mut r) = open(bytes, MAX_REQUEST_FRAME)?;
        let msg = match ty {
            0x10 => Self::Status(Status::decode(&mut r)?),
            0x11 => Self::GetHeaders {
                locator: r.read_vec("locator", MAX_LOCATOR)?,
                stop: BlockHash::decode(&mut r)?,
                max: r.read_u16()?,
            },
            0x12 => Self::GetBlocks(r.read_vec("block hashes", MAX_BLOCKS_PER_REQUEST)?),
            0x13 => Self::GetPeers,
            0x14 => Self::Job(r.read_var_bytes("job payload", MAX_JOB_PAYLOAD)?),
            0x15 => Self::Verify(r.read_var_bytes("verify payload", MAX_JOB_PAYLOAD)?),
            t => return Err(WireError::UnknownType(t)),
        };
        close(&r)?;
        Ok(msg)
    }
}

impl Response {
    pub fn type_byte(&self) -> u8 {
        match self {
            Self::Status(_) => 0x20,
            Self::Headers(_) => 0x21,
            Self::Blocks(_) => 0x22,
            Self::Peers(_) => 0x23,
            Self::Job(_) => 0x24,
            Self::Verdict(_) => 0x25,
            Self::Error { .. } => 0x2f,
        }
    }

    pub fn error(code: ErrorCode, text: impl Into<String>) -> Self {
        let mut text = text.into();
        if text.len() > MAX_ERROR_TEXT {
            let mut cut = MAX_ERROR_TEXT;
            while !text.is_char_boundary(cut) {
                cut = cut.saturating_sub(1);
            }
            text.truncate(cut);
        }
        Self::Error { code, text }
    }

    pub fn to_frame(&self) -> Vec<u8> {
        frame(self.type_byte(), |out| match self {
            Self::Status(s) => s.encode(out),
            Self::Headers(h) => write_vec(out, &h[..h.len().min(MAX_HEADERS)]),
            Self::Blocks(b) => write_vec(out, &b[..b.len().min(MAX_BLOCKS_PER_REQUEST)]),
            Self::Peers(p) => write_vec(out, &p[..p.len().min(MAX_PEER_RECORDS)]),
            Self::Job(p) | Self::Verdict(p) => write_var_bytes(out, p),
            Self::Error { code, text } => {
                out.push(code.to_u8());
                let cut = text.len().min(MAX_ERROR_TEXT);
                write_var_bytes(out, text.as_bytes().get(..cut).unwrap_or_default());
            }
        })
    }

    pub fn from_frame(bytes: &[u8]) -> Result<Self, WireError> {
        let (ty, mut r) = open(bytes, MAX_RESPONSE_FRAME)?;
        let msg = match ty {
            0x20 => Self::Status(Status::decode(&mut r)?),
            0x21 => Self::Headers(r.read_vec("headers", MAX_HEADERS)?),
            0x22 => Self::Blocks(read_blocks(&mut r)?),
            0x23 => Self::Peers(r.read_vec("peers", MAX_PEER_RECORDS)?),
            0x24 => Self::Job(r.read_var_bytes("job payload", MAX_JOB_PAYLOAD)?),
            0x25 => Self::Verdict(r.read_var_bytes("verdict payload", MAX_JOB_PAYLOAD)?),
            0x2f => {
                let code = ErrorCode::from_u8(r.read_u8()?);
                let text = r.read_var_bytes("error text", MAX_ERROR_TEXT)?;
                Self::Error {
                    code,
                    text: String::from_utf8_lossy(&text).into_owned(),
                }
            }
            t => return Err(WireError::UnknownType(t)),
        };
        close(&r)?;
        Ok(msg)
    }
}

// Keep the pre-allocation bound visible here: every `read_vec` above is capped by it.
const _: () = assert!(MAX_PREALLOC_BYTES >= 1 << 20);

#[cfg(test)]
mod tests {
    use super::*;
    use camel_core::hash::Hash256;
    use camel_core::params::Params;

    fn status() -> Status {
        Status {
            genesis: Params::regtest().genesis_hash,
            tip: BlockHash::from_byte_array([7; 32]),
            height: 42,
            work: Work::from_le_bytes([3; 32]),
        }
    }

    fn header(n: u32) -> Header {
        Header {
            version: 1,
            prev_blockhash: BlockHash::from_byte_array([n as u8; 32]),
            merkle_root: Hash256::ZERO,
            time: n,
            bits: 0x207f_ffff,
            nonce: n,
        }
    }

    fn requests() -> Vec<Request> {
        vec![
            Request::Status(status()),
            Request::GetHeaders {
                locator: vec![BlockHash::from_byte_array([1; 32]); 3],
                stop: BlockHash::ZERO,
                max: 2000,
            },
            Request::GetBlocks(vec![BlockHash::from_byte_array([2; 32]); 5]),
            Request::GetPeers,
            Request::Job(vec![1, 2, 3]),
            Request::Verify(vec![]),
        ]
    }

    fn responses() -> Vec<Response> {
        let peer = PeerId::random();
        vec![
            Response::Status(status()),
            Response::Headers((0..10).map(header).collect()),
            Response::Blocks(vec![Params::regtest().genesis_block()]),
            Response::Peers(vec![PeerRecord {
                peer_id: peer,
                addrs: vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()],
            }]),
            Response::Job(vec![9; 100]),
            Response::Verdict(vec![1]),
            Response::error(ErrorCode::RateLimited, "slow down"),
        ]
    }

    #[test]
    fn roundtrip_every_type() {
        for req in requests() {
            let f = req.to_frame();
            assert_eq!(f[0], WIRE_VERSION);
            assert_eq!(f[1], req.type_byte());
            assert_eq!(Request::from_frame(&f).unwrap(), req);
        }
        for resp in responses() {
            let f = resp.to_frame();
            assert_eq!(Response::from_frame(&f).unwrap(), resp);
        }
        let gossip = [
            GossipMessage::Tx(Params::regtest().genesis_coinbase()),
            GossipMessage::Block(Params::regtest().genesis_block()),
            GossipMessage::Job(vec![5; 64]),
        ];
        for g in gossip {
            assert_eq!(GossipMessage::from_frame(&g.to_frame()).unwrap(), g);
        }
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        for req in requests() {
            let f = req.to_frame();
            for cut in 0..f.len() {
                assert!(Request::from_frame(&f[..cut]).is_err(), "{req:?} cut {cut}");
            }
            let mut longer = f.clone();
            longer.push(0);
            assert!(matches!(
                Request::from_frame(&longer),
                Err(WireError::Malformed(DecodeError::TrailingBytes(1)))
            ));
        }
        for resp in responses() {
            let f = resp.to_frame();
            for cut in 0..f.len() {
                assert!(
                    Response::from_frame(&f[..cut]).is_err(),
                    "{resp:?} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(Request::from_frame(&[]), Err(WireError::Empty));
        assert_eq!(
            Request::from_frame(&[2, 0x13]),
            Err(WireError::UnsupportedVersion(2))
        );
        assert_eq!(
            Request::from_frame(&[1, 0x20]),
            Err(WireError::UnknownType(0x20))
        );
        assert_eq!(
            GossipMessage::from_frame(&[1, 0x10]),
            Err(WireError::UnknownType(0x10))
        );
        let big = vec![0u8; MAX_REQUEST_FRAME + 1];
        assert!(matches!(
            Request::from_frame(&big),
            Err(WireError::Oversize { .. })
        ));
    }

    #[test]
    fn length_prefixes_are_bounded() {
        // A locator claiming 65 entries.
        let mut f = vec![WIRE_VERSION, 0x11];
        write_compact_size(&mut f, (MAX_LOCATOR + 1) as u64);
        f.extend(std::iter::repeat_n(0u8, 32 * (MAX_LOCATOR + 1) + 34));
        assert!(matches!(
            Request::from_frame(&f),
            Err(WireError::Malformed(DecodeError::TooLong { .. }))
        ));
        // Headers claiming u32::MAX entries with nothing behind them: no allocation, an error.
        let mut f = vec![WIRE_VERSION, 0x21];
        write_compact_size(&mut f, u64::from(u32::MAX));
        assert!(Response::from_frame(&f).is_err());
        // A job payload one byte over the limit.
        let mut f = vec![WIRE_VERSION, 0x14];
        write_var_bytes(&mut f, &vec![0u8; MAX_JOB_PAYLOAD + 1]);
        assert!(Request::from_frame(&f).is_err());
        // A peer record with an id that is not a peer id.
        let mut f = vec![WIRE_VERSION, 0x23, 1];
        write_var_bytes(&mut f, &[0xff; 10]);
        f.push(0);
        assert!(matches!(
            Response::from_frame(&f),
            Err(WireError::Malformed(DecodeError::Invalid("peer id")))
        ));
    }

    #[test]
    fn peer_records_leave_out_overlong_addresses() {
        let long = (0..60).fold(Multiaddr::empty(), |a, i| {
            a.with(libp2p::multiaddr::Protocol::Tcp(i))
        });
        assert!(long.to_vec().len() > MAX_ADDR_LEN);
        let ok: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let rec = PeerRecord {
            peer_id: PeerId::random(),
            addrs: vec![long, ok.clone()],
        };
        let f = Response::Peers(vec![rec.clone()]).to_frame();
        let Response::Peers(back) = Response::from_frame(&f).unwrap() else {
            unreachable!()
        };
        assert_eq!(back[0].addrs, vec![ok]);
        assert_eq!(back[0].peer_id, rec.peer_id);
    }

    #[test]
    fn error_text_is_cut_on_a_char_boundary() {
        let r = Response::error(ErrorCode::Internal, "é".repeat(200));
        let Response::Error { text, .. } = &r else {
            unreachable!()
        };
        assert!(text.len() <= MAX_ERROR_TEXT);
        assert_eq!(Response::from_frame(&r.to_frame()).unwrap(), r);
    }
}
