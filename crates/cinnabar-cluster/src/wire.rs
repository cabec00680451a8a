//! Cluster bus wire format: byte-exact encode/decode of Redis 7.0 `clusterMsg`
//! (`RCmb` signature, 2256-byte big-endian header, 104-byte gossip entries, ping
//! extensions with the EXT_DATA flag). Decoding is defensive: every malformed input
//! yields a [`DecodeError`], never a panic.

use std::fmt;

/// Message signature.
pub const SIGNATURE: &[u8; 4] = b"RCmb";
/// Size of the fixed header (`clusterMsg` without the data union).
pub const HEADER_LEN: usize = 2256;
/// `sizeof(clusterMsg)`: header plus the largest body (UPDATE).
pub const MSG_MAX_FIXED_LEN: usize = 4352;
/// Size of one gossip entry.
pub const GOSSIP_LEN: usize = 104;
/// Protocol version carried in `ver`.
pub const PROTO_VER: u16 = 1;
/// Largest frame we accept (a PUBLISH of a 512 MiB message plus headers).
pub const MAX_FRAME_LEN: usize = 512 * 1024 * 1024 + HEADER_LEN + 64;
/// Bytes in a slot bitmap.
pub const SLOT_BITMAP_LEN: usize = 2048;
/// Length of a node name.
pub const NAME_LEN: usize = 40;
/// Length of an IP field (`NET_IP_STR_LEN`).
pub const IP_LEN: usize = 46;

/// Message type numbers.
pub mod msg_type {
    pub const PING: u16 = 0;
    pub const PONG: u16 = 1;
    pub const MEET: u16 = 2;
    pub const FAIL: u16 = 3;
    pub const PUBLISH: u16 = 4;
    pub const FAILOVER_AUTH_REQUEST: u16 = 5;
    pub const FAILOVER_AUTH_ACK: u16 = 6;
    pub const UPDATE: u16 = 7;
    pub const MFSTART: u16 = 8;
    pub const MODULE: u16 = 9;
    pub const PUBLISHSHARD: u16 = 10;
    /// Number of known types (size of the per-type stats arrays).
    pub const COUNT: usize = 11;
    /// Names used by CLUSTER INFO `cluster_stats_messages_<name>_sent`.
    pub const NAMES: [&str; COUNT] = [
        "ping",
        "pong",
        "meet",
        "fail",
        "publish",
        "auth-req",
        "auth-ack",
        "update",
        "mfstart",
        "module",
        "publishshard",
    ];
}

/// Node flag bits (wire u16 in header and gossip).
pub mod flags {
    pub const MASTER: u16 = 0x001;
    pub const SLAVE: u16 = 0x002;
    pub const PFAIL: u16 = 0x004;
    pub const FAIL: u16 = 0x008;
    pub const MYSELF: u16 = 0x010;
    pub const HANDSHAKE: u16 = 0x020;
    pub const NOADDR: u16 = 0x040;
    pub const MEET: u16 = 0x080;
    pub const MIGRATE_TO: u16 = 0x100;
    pub const NOFAILOVER: u16 = 0x200;
}

/// `mflags[0]` bits.
pub mod mflags {
    pub const PAUSED: u8 = 0x01;
    pub const FORCEACK: u8 = 0x02;
    pub const EXT_DATA: u8 = 0x04;
}

/// Ping extension type numbers.
pub mod ext_type {
    pub const HOSTNAME: u16 = 0;
    pub const HUMAN_NODENAME: u16 = 1;
    pub const FORGOTTEN_NODE: u16 = 2;
    pub const SHARDID: u16 = 3;
}

/// A 40-byte node name. Valid names are `[a-z0-9]{40}`; the wire may carry anything.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(pub [u8; NAME_LEN]);

impl NodeName {
    /// All-zero name (used for "no master" in `slaveof`).
    pub const ZERO: NodeName = NodeName([0; NAME_LEN]);

    /// Parse a textual name; only 40 chars of `[a-z0-9]` are accepted (Redis `verifyClusterNodeId`
    /// is a length check plus the config loader's charset check).
    pub fn parse(text: &[u8]) -> Option<NodeName> {
        if text.len() != NAME_LEN {
            return None;
        }
        let mut out = [0u8; NAME_LEN];
        out.copy_from_slice(text);
        Some(NodeName(out))
    }

    /// True when all 40 bytes are zero.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// The name as text (lossy for non-UTF-8 wire garbage).
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeName({})", self.as_str())
    }
}

/// A fixed 46-byte NUL-padded IP field, kept raw so re-encoding is byte exact.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IpField(pub [u8; IP_LEN]);

impl IpField {
    pub const EMPTY: IpField = IpField([0; IP_LEN]);

    /// Build from text (truncated to 45 bytes so a NUL terminator always fits).
    pub fn from_text(text: &str) -> IpField {
        let mut out = [0u8; IP_LEN];
        let n = text.len().min(IP_LEN - 1);
        out[..n].copy_from_slice(&text.as_bytes()[..n]);
        IpField(out)
    }

    /// The bytes up to the first NUL.
    pub fn text(&self) -> String {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(IP_LEN);
        String::from_utf8_lossy(&self.0[..end]).into_owned()
    }

    /// True when the first byte is NUL (no address).
    pub fn is_empty(&self) -> bool {
        self.0[0] == 0
    }
}

impl fmt::Debug for IpField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpField({:?})", self.text())
    }
}

/// A 16384-bit slot bitmap (slot `s` is bit `s % 8` of byte `s / 8`).
#[derive(Clone, PartialEq, Eq)]
pub struct SlotBitmap(pub [u8; SLOT_BITMAP_LEN]);

impl Default for SlotBitmap {
    fn default() -> Self {
        SlotBitmap([0; SLOT_BITMAP_LEN])
    }
}

impl SlotBitmap {
    pub fn get(&self, slot: usize) -> bool {
        self.0[slot / 8] & (1 << (slot % 8)) != 0
    }
    pub fn set(&mut self, slot: usize) {
        self.0[slot / 8] |= 1 << (slot % 8);
    }
    pub fn clear(&mut self, slot: usize) {
        self.0[slot / 8] &= !(1 << (slot % 8));
    }
    pub fn count(&self) -> usize {
        self.0.iter().map(|b| b.count_ones() as usize).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }
}

impl fmt::Debug for SlotBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlotBitmap({} slots)", self.count())
    }
}

/// The fixed header. `count`, `extensions` and `type` are derived from the body on encode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub port: u16,
    pub current_epoch: u64,
    pub config_epoch: u64,
    pub offset: u64,
    pub sender: NodeName,
    pub myslots: Box<SlotBitmap>,
    /// Master's name, or [`NodeName::ZERO`] when the sender is a master.
    pub slaveof: NodeName,
    pub myip: IpField,
    pub pport: u16,
    pub cport: u16,
    pub flags: u16,
    /// 0 = ok, 1 = fail.
    pub state: u8,
    pub mflags: [u8; 3],
}

impl Default for Header {
    fn default() -> Self {
        Header {
            port: 0,
            current_epoch: 0,
            config_epoch: 0,
            offset: 0,
            sender: NodeName::ZERO,
            myslots: Box::default(),
            slaveof: NodeName::ZERO,
            myip: IpField::EMPTY,
            pport: 0,
            cport: 0,
            flags: 0,
            state: 0,
            mflags: [0; 3],
        }
    }
}

/// One gossip entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gossip {
    pub name: NodeName,
    pub ping_sent_s: u32,
    pub pong_received_s: u32,
    pub ip: IpField,
    pub port: u16,
    pub cport: u16,
    pub flags: u16,
    pub pport: u16,
    pub notused: u16,
}

/// One ping extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PingExt {
    /// `cluster-announce-hostname` (bytes without the NUL).
    Hostname(Vec<u8>),
    /// [7.2] `cluster-announce-human-nodename`.
    HumanNodename(Vec<u8>),
    /// [7.2] a node the sender forgot, with the remaining ban in seconds.
    ForgottenNode { name: NodeName, ttl_s: u64 },
    /// [7.2] shard id.
    ShardId(NodeName),
    /// Any other type: raw (padded) payload.
    Other { ext_type: u16, payload: Vec<u8> },
}

/// PING / PONG / MEET body.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PingBody {
    pub gossip: Vec<Gossip>,
    pub extensions: Vec<PingExt>,
}

/// Type-specific body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Ping(PingBody),
    Pong(PingBody),
    Meet(PingBody),
    Fail {
        name: NodeName,
    },
    Publish {
        channel: Vec<u8>,
        message: Vec<u8>,
    },
    FailoverAuthRequest,
    FailoverAuthAck,
    Update {
        config_epoch: u64,
        name: NodeName,
        slots: Box<SlotBitmap>,
    },
    MfStart,
    /// `module_id` is copied raw (host order of the sender).
    Module {
        module_id: [u8; 8],
        module_type: u8,
        payload: Vec<u8>,
    },
    PublishShard {
        channel: Vec<u8>,
        message: Vec<u8>,
    },
}

impl Body {
    pub fn msg_type(&self) -> u16 {
        match self {
            Body::Ping(_) => msg_type::PING,
            Body::Pong(_) => msg_type::PONG,
            Body::Meet(_) => msg_type::MEET,
            Body::Fail { .. } => msg_type::FAIL,
            Body::Publish { .. } => msg_type::PUBLISH,
            Body::FailoverAuthRequest => msg_type::FAILOVER_AUTH_REQUEST,
            Body::FailoverAuthAck => msg_type::FAILOVER_AUTH_ACK,
            Body::Update { .. } => msg_type::UPDATE,
            Body::MfStart => msg_type::MFSTART,
            Body::Module { .. } => msg_type::MODULE,
            Body::PublishShard { .. } => msg_type::PUBLISHSHARD,
        }
    }

    pub fn ping_body(&self) -> Option<&PingBody> {
        match self {
            Body::Ping(b) | Body::Pong(b) | Body::Meet(b) => Some(b),
            _ => None,
        }
    }
}

/// A complete bus message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

/// Why a frame could not be decoded. The receiver closes the link for framing errors
/// (`BadSignature`, `TooShort`, `TooLong`) and silently ignores the rest, like Redis.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("bad signature")]
    BadSignature,
    #[error("frame length {totlen} is shorter than the header")]
    TooShort { totlen: u32 },
    #[error("frame length {totlen} is too large")]
    TooLong { totlen: u32 },
    #[error("need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("unknown protocol version {0}")]
    UnknownVersion(u16),
    #[error("unknown message type {0}")]
    UnknownType(u16),
    #[error("length mismatch for type {msg_type}: expected {expected}, totlen {totlen}")]
    LengthMismatch {
        msg_type: u16,
        expected: usize,
        totlen: usize,
    },
    #[error("bad ping extension: {0}")]
    BadExtension(&'static str),
}

impl DecodeError {
    /// Framing errors mean the stream is unusable: close the link.
    pub fn is_fatal_for_link(&self) -> bool {
        matches!(
            self,
            DecodeError::BadSignature | DecodeError::TooShort { .. } | DecodeError::TooLong { .. }
        )
    }
}

/// Inspect the first 8 bytes of a stream: `Ok(None)` if fewer than 8 are buffered,
/// otherwise the validated total frame length.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    if &buf[0..4] != SIGNATURE {
        return Err(DecodeError::BadSignature);
    }
    let totlen = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if (totlen as usize) < HEADER_LEN {
        return Err(DecodeError::TooShort { totlen });
    }
    if totlen as usize > MAX_FRAME_LEN {
        return Err(DecodeError::TooLong { totlen });
    }
    Ok(Some(totlen as usize))
}

/// Message type of a complete frame (for stats), if readable.
pub fn peek_type(buf: &[u8]) -> Option<u16> {
    if buf.len() < 14 {
        return None;
    }
    Some(u16::from_be_bytes([buf[12], buf[13]]))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated {
            need: usize::MAX,
            have: self.buf.len(),
        })?;
        if end > self.buf.len() {
            return Err(DecodeError::Truncated {
                need: end,
                have: self.buf.len(),
            });
        }
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.arr()?))
    }
}

/// Decode one complete frame (`buf` must be exactly `totlen` bytes, as returned by
/// [`frame_len`]; extra trailing bytes are a length mismatch).
pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    let totlen = match frame_len(buf)? {
        Some(n) => n,
        None => {
            return Err(DecodeError::Truncated {
                need: 8,
                have: buf.len(),
            })
        }
    };
    if buf.len() < totlen {
        return Err(DecodeError::Truncated {
            need: totlen,
            have: buf.len(),
        });
    }
    if buf.len() > totlen {
        return Err(DecodeError::LengthMismatch {
            msg_type: peek_type(buf).unwrap_or(u16::MAX),
            expected: totlen,
            totlen: buf.len(),
        });
    }
    let mut r = Reader { buf, pos: 8 };
    let ver = r.u16()?;
    if ver != PROTO_VER {
        return Err(DecodeError::UnknownVersion(ver));
    }
    let port = r.u16()?;
    let mtype = r.u16()?;
    let count = r.u16()? as usize;
    let current_epoch = r.u64()?;
    let config_epoch = r.u64()?;
    let offset = r.u64()?;
    let sender = NodeName(r.arr()?);
    let myslots = Box::new(SlotBitmap(r.arr()?));
    let slaveof = NodeName(r.arr()?);
    let myip = IpField(r.arr()?);
    let n_ext = r.u16()? as usize;
    r.take(30)?;
    let pport = r.u16()?;
    let cport = r.u16()?;
    let flags_v = r.u16()?;
    let state = r.u8()?;
    let mflags_v: [u8; 3] = r.arr()?;
    let header = Header {
        port,
        current_epoch,
        config_epoch,
        offset,
        sender,
        myslots,
        slaveof,
        myip,
        pport,
        cport,
        flags: flags_v,
        state,
        mflags: mflags_v,
    };
    let mismatch = |expected: usize| DecodeError::LengthMismatch {
        msg_type: mtype,
        expected,
        totlen,
    };
    let body = match mtype {
        msg_type::PING | msg_type::PONG | msg_type::MEET => {
            let gossip_end = count
                .checked_mul(GOSSIP_LEN)
                .and_then(|g| g.checked_add(HEADER_LEN))
                .ok_or(mismatch(usize::MAX))?;
            if gossip_end > totlen {
                return Err(DecodeError::Truncated {
                    need: gossip_end,
                    have: totlen,
                });
            }
            let mut gossip = Vec::with_capacity(count);
            for _ in 0..count {
                gossip.push(Gossip {
                    name: NodeName(r.arr()?),
                    ping_sent_s: r.u32()?,
                    pong_received_s: r.u32()?,
                    ip: IpField(r.arr()?),
                    port: r.u16()?,
                    cport: r.u16()?,
                    flags: r.u16()?,
                    pport: r.u16()?,
                    notused: r.u16()?,
                });
            }
            let mut extensions = Vec::new();
            // Redis 7.0 walks extensions only when EXT_DATA is set.
            if header.mflags[0] & mflags::EXT_DATA != 0 {
                for _ in 0..n_ext {
                    let remaining = totlen - r.pos;
                    if remaining < 8 {
                        return Err(DecodeError::BadExtension("truncated extension header"));
                    }
                    let ext_len = r.u32()? as usize;
                    let ext_t = r.u16()?;
                    let _unused = r.u16()?;
                    if !ext_len.is_multiple_of(8) || ext_len < 8 {
                        return Err(DecodeError::BadExtension("length not a multiple of 8"));
                    }
                    if ext_len > remaining {
                        return Err(DecodeError::BadExtension("extension longer than frame"));
                    }
                    let payload = r.take(ext_len - 8)?;
                    extensions.push(decode_ext(ext_t, payload)?);
                }
            }
            if r.pos != totlen {
                return Err(mismatch(r.pos));
            }
            let b = PingBody { gossip, extensions };
            match mtype {
                msg_type::PING => Body::Ping(b),
                msg_type::PONG => Body::Pong(b),
                _ => Body::Meet(b),
            }
        }
        msg_type::FAIL => {
            if totlen != HEADER_LEN + NAME_LEN {
                return Err(mismatch(HEADER_LEN + NAME_LEN));
            }
            Body::Fail {
                name: NodeName(r.arr()?),
            }
        }
        msg_type::PUBLISH | msg_type::PUBLISHSHARD => {
            if totlen < HEADER_LEN + 8 {
                return Err(mismatch(HEADER_LEN + 8));
            }
            let c_len = r.u32()? as usize;
            let m_len = r.u32()? as usize;
            let expected = (HEADER_LEN + 8).saturating_add(c_len).saturating_add(m_len);
            if expected != totlen {
                return Err(mismatch(expected));
            }
            let channel = r.take(c_len)?.to_vec();
            let message = r.take(m_len)?.to_vec();
            if mtype == msg_type::PUBLISH {
                Body::Publish { channel, message }
            } else {
                Body::PublishShard { channel, message }
            }
        }
        msg_type::FAILOVER_AUTH_REQUEST | msg_type::FAILOVER_AUTH_ACK | msg_type::MFSTART => {
            if totlen != HEADER_LEN {
                return Err(mismatch(HEADER_LEN));
            }
            match mtype {
                msg_type::FAILOVER_AUTH_REQUEST => Body::FailoverAuthRequest,
                msg_type::FAILOVER_AUTH_ACK => Body::FailoverAuthAck,
                _ => Body::MfStart,
            }
        }
        msg_type::UPDATE => {
            if totlen != MSG_MAX_FIXED_LEN {
                return Err(mismatch(MSG_MAX_FIXED_LEN));
            }
            Body::Update {
                config_epoch: r.u64()?,
                name: NodeName(r.arr()?),
                slots: Box::new(SlotBitmap(r.arr()?)),
            }
        }
        msg_type::MODULE => {
            if totlen < HEADER_LEN + 13 {
                return Err(mismatch(HEADER_LEN + 13));
            }
            let module_id: [u8; 8] = r.arr()?;
            let len = r.u32()? as usize;
            let module_type = r.u8()?;
            let expected = (HEADER_LEN + 13).saturating_add(len);
            if expected != totlen {
                return Err(mismatch(expected));
            }
            Body::Module {
                module_id,
                module_type,
                payload: r.take(len)?.to_vec(),
            }
        }
        other => return Err(DecodeError::UnknownType(other)),
    };
    Ok(Message { header, body })
}

fn decode_ext(ext_t: u16, payload: &[u8]) -> Result<PingExt, DecodeError> {
    let until_nul = |p: &[u8]| {
        let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
        p[..end].to_vec()
    };
    Ok(match ext_t {
        ext_type::HOSTNAME => PingExt::Hostname(until_nul(payload)),
        ext_type::HUMAN_NODENAME => PingExt::HumanNodename(until_nul(payload)),
        ext_type::FORGOTTEN_NODE => {
            if payload.len() < NAME_LEN + 8 {
                return Err(DecodeError::BadExtension("short forgotten-node extension"));
            }
            let mut name = [0u8; NAME_LEN];
            name.copy_from_slice(&payload[..NAME_LEN]);
            let mut ttl = [0u8; 8];
            ttl.copy_from_slice(&payload[NAME_LEN..NAME_LEN + 8]);
            PingExt::ForgottenNode {
                name: NodeName(name),
                ttl_s: u64::from_be_bytes(ttl),
            }
        }
        ext_type::SHARDID => {
            if payload.len() < NAME_LEN {
                return Err(DecodeError::BadExtension("short shard-id extension"));
            }
            let mut name = [0u8; NAME_LEN];
            name.copy_from_slice(&payload[..NAME_LEN]);
            PingExt::ShardId(NodeName(name))
        }
        other => PingExt::Other {
            ext_type: other,
            payload: payload.to_vec(),
        },
    })
}

fn align8(n: usize) -> usize {
    (n + 7) & !7
}

fn ext_wire(ext: &PingExt) -> (u16, Vec<u8>) {
    let nul_padded = |s: &[u8]| {
        let mut p = s.to_vec();
        p.resize(align8(s.len() + 1), 0);
        p
    };
    match ext {
        PingExt::Hostname(h) => (ext_type::HOSTNAME, nul_padded(h)),
        PingExt::HumanNodename(h) => (ext_type::HUMAN_NODENAME, nul_padded(h)),
        PingExt::ForgottenNode { name, ttl_s } => {
            let mut p = name.0.to_vec();
            p.extend_from_slice(&ttl_s.to_be_bytes());
            (ext_type::FORGOTTEN_NODE, p)
        }
        PingExt::ShardId(id) => (ext_type::SHARDID, id.0.to_vec()),
        PingExt::Other { ext_type, payload } => {
            let mut p = payload.clone();
            p.resize(align8(p.len()), 0);
            (*ext_type, p)
        }
    }
}

/// Encode a message. `count`, `extensions`, `totlen` and `type` are derived from the body;
/// when a ping-like body carries extensions the EXT_DATA flag is forced on.
pub fn encode(msg: &Message) -> Vec<u8> {
    let h = &msg.header;
    let mtype = msg.body.msg_type();
    let (count, n_ext) = match msg.body.ping_body() {
        Some(b) => (b.gossip.len(), b.extensions.len()),
        None => (0, 0),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + count * GOSSIP_LEN + 64);
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0u32.to_be_bytes()); // patched below
    out.extend_from_slice(&PROTO_VER.to_be_bytes());
    out.extend_from_slice(&h.port.to_be_bytes());
    out.extend_from_slice(&mtype.to_be_bytes());
    out.extend_from_slice(&(count as u16).to_be_bytes());
    out.extend_from_slice(&h.current_epoch.to_be_bytes());
    out.extend_from_slice(&h.config_epoch.to_be_bytes());
    out.extend_from_slice(&h.offset.to_be_bytes());
    out.extend_from_slice(&h.sender.0);
    out.extend_from_slice(&h.myslots.0);
    out.extend_from_slice(&h.slaveof.0);
    out.extend_from_slice(&h.myip.0);
    out.extend_from_slice(&(n_ext as u16).to_be_bytes());
    out.extend_from_slice(&[0u8; 30]);
    out.extend_from_slice(&h.pport.to_be_bytes());
    out.extend_from_slice(&h.cport.to_be_bytes());
    out.extend_from_slice(&h.flags.to_be_bytes());
    out.push(h.state);
    let mut mf = h.mflags;
    if n_ext > 0 {
        mf[0] |= mflags::EXT_DATA;
    }
    out.extend_from_slice(&mf);
    debug_assert_eq!(out.len(), HEADER_LEN);
    match &msg.body {
        Body::Ping(b) | Body::Pong(b) | Body::Meet(b) => {
            for g in &b.gossip {
                out.extend_from_slice(&g.name.0);
                out.extend_from_slice(&g.ping_sent_s.to_be_bytes());
                out.extend_from_slice(&g.pong_received_s.to_be_bytes());
                out.extend_from_slice(&g.ip.0);
                out.extend_from_slice(&g.port.to_be_bytes());
                out.extend_from_slice(&g.cport.to_be_bytes());
                out.extend_from_slice(&g.flags.to_be_bytes());
                out.extend_from_slice(&g.pport.to_be_bytes());
                out.extend_from_slice(&g.notused.to_be_bytes());
            }
            for e in &b.extensions {
                let (t, payload) = ext_wire(e);
                out.extend_from_slice(&((payload.len() + 8) as u32).to_be_bytes());
                out.extend_from_slice(&t.to_be_bytes());
                out.extend_from_slice(&0u16.to_be_bytes());
                out.extend_from_slice(&payload);
            }
        }
        Body::Fail { name } => out.extend_from_slice(&name.0),
        Body::Publish { channel, message } | Body::PublishShard { channel, message } => {
            out.extend_from_slice(&(channel.len() as u32).to_be_bytes());
            out.extend_from_slice(&(message.len() as u32).to_be_bytes());
            out.extend_from_slice(channel);
            out.extend_from_slice(message);
        }
        Body::FailoverAuthRequest | Body::FailoverAuthAck | Body::MfStart => {}
        Body::Update {
            config_epoch,
            name,
            slots,
        } => {
            out.extend_from_slice(&config_epoch.to_be_bytes());
            out.extend_from_slice(&name.0);
            out.extend_from_slice(&slots.0);
        }
        Body::Module {
            module_id,
            module_type,
            payload,
        } => {
            out.extend_from_slice(module_id);
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            out.push(*module_type);
            out.extend_from_slice(payload);
        }
    }
    let totlen = out.len() as u32;
    out[4..8].copy_from_slice(&totlen.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(c: u8) -> NodeName {
        NodeName([c; NAME_LEN])
    }

    fn header() -> Header {
        let mut slots = SlotBitmap::default();
        slots.set(0);
        slots.set(5461);
        slots.set(16383);
        Header {
            port: 7000,
            current_epoch: 0x0102_0304_0506_0708,
            config_epoch: 9,
            offset: 12345,
            sender: name(b'a'),
            myslots: Box::new(slots),
            slaveof: NodeName::ZERO,
            myip: IpField::from_text("127.0.0.1"),
            pport: 0,
            cport: 17000,
            flags: flags::MASTER | flags::MYSELF,
            state: 1,
            mflags: [0, 0, 0],
        }
    }

    fn gossip(c: u8) -> Gossip {
        Gossip {
            name: name(c),
            ping_sent_s: 1,
            pong_received_s: 1_700_000_000,
            ip: IpField::from_text("10.0.0.1"),
            port: 7001,
            cport: 17001,
            flags: flags::MASTER | flags::PFAIL,
            pport: 0,
            notused: 0,
        }
    }

    fn all_bodies() -> Vec<Body> {
        let mut slots = SlotBitmap::default();
        slots.set(100);
        vec![
            Body::Ping(PingBody {
                gossip: vec![gossip(b'b'), gossip(b'c')],
                extensions: vec![],
            }),
            Body::Pong(PingBody {
                gossip: vec![gossip(b'd')],
                extensions: vec![
                    PingExt::Hostname(b"host-1.example".to_vec()),
                    PingExt::HumanNodename(b"n1".to_vec()),
                    PingExt::ForgottenNode {
                        name: name(b'e'),
                        ttl_s: 59,
                    },
                    PingExt::ShardId(name(b'f')),
                    PingExt::Other {
                        ext_type: 77,
                        payload: vec![1, 2, 3, 4, 5, 6, 7, 8],
                    },
                ],
            }),
            Body::Meet(PingBody::default()),
            Body::Fail { name: name(b'g') },
            Body::Publish {
                channel: b"chan".to_vec(),
                message: b"hello world".to_vec(),
            },
            Body::PublishShard {
                channel: vec![],
                message: vec![0; 3],
            },
            Body::FailoverAuthRequest,
            Body::FailoverAuthAck,
            Body::MfStart,
            Body::Update {
                config_epoch: 7,
                name: name(b'h'),
                slots: Box::new(slots),
            },
            Body::Module {
                module_id: [1, 2, 3, 4, 5, 6, 7, 8],
                module_type: 3,
                payload: b"xyz".to_vec(),
            },
        ]
    }

    #[test]
    fn round_trip_all_types() {
        for body in all_bodies() {
            let mut msg = Message {
                header: header(),
                body,
            };
            if let Some(b) = msg.body.ping_body() {
                if !b.extensions.is_empty() {
                    msg.header.mflags[0] |= mflags::EXT_DATA;
                }
            }
            let bytes = encode(&msg);
            assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
            let back = decode(&bytes).expect("decode");
            assert_eq!(back, msg);
            assert_eq!(encode(&back), bytes);
        }
    }

    #[test]
    fn exact_lengths_and_offsets() {
        let msg = Message {
            header: header(),
            body: Body::Fail { name: name(b'z') },
        };
        let b = encode(&msg);
        assert_eq!(b.len(), 2296);
        assert_eq!(&b[0..4], b"RCmb");
        assert_eq!(&b[4..8], &2296u32.to_be_bytes());
        assert_eq!(&b[10..12], &7000u16.to_be_bytes());
        assert_eq!(&b[12..14], &3u16.to_be_bytes());
        assert_eq!(&b[16..24], &0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(&b[40..80], &[b'a'; 40]);
        assert_eq!(b[80], 0x01); // slot 0 is bit 0 of byte 0
        assert_eq!(b[80 + 5461 / 8], 1 << (5461 % 8));
        assert_eq!(&b[2168..2177], b"127.0.0.1");
        assert_eq!(&b[2248..2250], &17000u16.to_be_bytes());
        assert_eq!(&b[2250..2252], &0x11u16.to_be_bytes());
        assert_eq!(b[2252], 1);
        let upd = Message {
            header: header(),
            body: Body::Update {
                config_epoch: 1,
                name: name(b'x'),
                slots: Box::default(),
            },
        };
        assert_eq!(encode(&upd).len(), MSG_MAX_FIXED_LEN);
        let ping = Message {
            header: header(),
            body: Body::Ping(PingBody {
                gossip: vec![gossip(b'q')],
                extensions: vec![PingExt::Hostname(b"abcdefg".to_vec())],
            }),
        };
        let p = encode(&ping);
        // 7 chars + NUL = 8 → ext len 16.
        assert_eq!(p.len(), HEADER_LEN + GOSSIP_LEN + 16);
        assert_eq!(p[2253] & mflags::EXT_DATA, mflags::EXT_DATA);
        assert_eq!(&p[2214..2216], &1u16.to_be_bytes());
        assert_eq!(&p[14..16], &1u16.to_be_bytes());
    }

    #[test]
    fn framing_errors() {
        assert_eq!(frame_len(b"RCmb"), Ok(None));
        assert_eq!(
            frame_len(b"XXXX\0\0\x08\xd0"),
            Err(DecodeError::BadSignature)
        );
        assert_eq!(
            frame_len(b"RCmb\0\0\0\x10"),
            Err(DecodeError::TooShort { totlen: 16 })
        );
        assert!(matches!(
            frame_len(b"RCmb\xff\xff\xff\xff"),
            Err(DecodeError::TooLong { .. })
        ));
    }

    #[test]
    fn decode_rejects_bad_input() {
        let msg = Message {
            header: header(),
            body: Body::Ping(PingBody {
                gossip: vec![gossip(b'b')],
                extensions: vec![],
            }),
        };
        let good = encode(&msg);
        // wrong version
        let mut v = good.clone();
        v[8..10].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(decode(&v), Err(DecodeError::UnknownVersion(2)));
        // unknown type
        let mut t = good.clone();
        t[12..14].copy_from_slice(&99u16.to_be_bytes());
        assert_eq!(decode(&t), Err(DecodeError::UnknownType(99)));
        // count claims more gossip than present
        let mut c = good.clone();
        c[14..16].copy_from_slice(&5u16.to_be_bytes());
        assert!(matches!(decode(&c), Err(DecodeError::Truncated { .. })));
        // count claims fewer gossip entries than present
        let mut c0 = good.clone();
        c0[14..16].copy_from_slice(&0u16.to_be_bytes());
        assert!(matches!(
            decode(&c0),
            Err(DecodeError::LengthMismatch { .. })
        ));
        // truncated buffer
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            Err(DecodeError::Truncated { .. })
        ));
        // extensions without EXT_DATA are not walked → length mismatch (7.0 drops it)
        let ext = Message {
            header: header(),
            body: Body::Ping(PingBody {
                gossip: vec![],
                extensions: vec![PingExt::ShardId(name(b's'))],
            }),
        };
        let mut e = encode(&ext);
        e[2253] &= !mflags::EXT_DATA;
        assert!(matches!(
            decode(&e),
            Err(DecodeError::LengthMismatch { .. })
        ));
        // extension length not a multiple of 8
        let mut e2 = encode(&ext);
        e2[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&47u32.to_be_bytes());
        assert!(matches!(decode(&e2), Err(DecodeError::BadExtension(_))));
        // extension length larger than frame
        let mut e3 = encode(&ext);
        e3[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&4096u32.to_be_bytes());
        assert!(matches!(decode(&e3), Err(DecodeError::BadExtension(_))));
        // publish lengths that overflow
        let publ = Message {
            header: header(),
            body: Body::Publish {
                channel: b"a".to_vec(),
                message: b"b".to_vec(),
            },
        };
        let mut p = encode(&publ);
        p[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode(&p),
            Err(DecodeError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn decode_never_panics_on_mutations() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xC1A0);
        let seeds: Vec<Vec<u8>> = all_bodies()
            .into_iter()
            .map(|body| {
                encode(&Message {
                    header: header(),
                    body,
                })
            })
            .collect();
        for _ in 0..3000 {
            let mut buf = seeds[rng.gen_range(0..seeds.len())].clone();
            for _ in 0..rng.gen_range(1..8) {
                let i = rng.gen_range(0..buf.len());
                buf[i] = rng.gen();
            }
            if rng.gen_bool(0.2) {
                let cut = rng.gen_range(0..buf.len());
                buf.truncate(cut);
            }
            if let Ok(msg) = decode(&buf) {
                // Whatever decodes must re-encode to something that decodes identically.
                let again = encode(&msg);
                assert_eq!(decode(&again).as_ref(), Ok(&msg));
            }
        }
    }
}
