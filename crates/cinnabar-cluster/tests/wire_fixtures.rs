//! Decodes cluster-bus frames captured from a real Redis 7.0.15 node and checks that
//! re-encoding them reproduces the captured bytes exactly.

use cinnabar_cluster::wire::{self, flags, mflags, Body, PingExt};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

#[test]
fn redis70_meet_round_trips() {
    let bytes = fixture("redis70_meet.bin");
    let msg = wire::decode(&bytes).expect("decode MEET");
    assert!(
        matches!(msg.body, Body::Meet(ref b) if b.gossip.is_empty() && b.extensions.is_empty())
    );
    assert_eq!(msg.header.flags, flags::MASTER | flags::MYSELF);
    assert_eq!(msg.header.port, 30001);
    assert_eq!(msg.header.cport, 40001);
    assert_eq!(
        msg.header.mflags[0] & mflags::EXT_DATA,
        0,
        "7.0 sets EXT_DATA only with extensions"
    );
    assert!(msg.header.myip.is_empty());
    assert_eq!(wire::encode(&msg), bytes);
}

#[test]
fn redis70_pong_with_hostname_round_trips() {
    let bytes = fixture("redis70_pong_hostname.bin");
    let msg = wire::decode(&bytes).expect("decode PONG");
    let Body::Pong(body) = &msg.body else {
        panic!("expected PONG, got {:?}", msg.body)
    };
    assert_eq!(
        body.extensions,
        vec![PingExt::Hostname(b"node-b.example".to_vec())]
    );
    assert!(msg.header.myslots.get(5) && msg.header.myslots.get(7) && !msg.header.myslots.get(8));
    assert_eq!(msg.header.myslots.count(), 3);
    assert_eq!(wire::encode(&msg), bytes);
}

#[test]
fn redis70_pong_with_gossip_round_trips() {
    let bytes = fixture("redis70_pong_gossip.bin");
    let msg = wire::decode(&bytes).expect("decode PONG");
    let Body::Pong(body) = &msg.body else {
        panic!("expected PONG")
    };
    assert_eq!(body.gossip.len(), 1);
    let g = &body.gossip[0];
    assert_eq!(g.ip.text(), "127.0.0.1");
    assert_eq!(g.port, 30001);
    assert_eq!(g.cport, 40001);
    assert_eq!(g.flags & flags::MASTER, flags::MASTER);
    assert_eq!(wire::encode(&msg), bytes);
}

// PUBLISH / PUBLISHSHARD frames captured by tests/fixtures/capture_publish.py: a real 7.0.15
// master (all slots) publishing to a fake node that is its replica.

#[test]
fn redis70_publish_round_trips() {
    let bytes = fixture("redis70_publish.bin");
    let msg = wire::decode(&bytes).expect("decode PUBLISH");
    assert_eq!(
        msg.body,
        Body::Publish {
            channel: b"news.{a}".to_vec(),
            message: b"hello world".to_vec(),
        }
    );
    // header + channel_len u32 + message_len u32 + channel + message, big-endian lengths.
    assert_eq!(bytes.len(), wire::HEADER_LEN + 8 + 8 + 11);
    assert_eq!(&bytes[4..8], &(bytes.len() as u32).to_be_bytes());
    assert_eq!(&bytes[12..14], &wire::msg_type::PUBLISH.to_be_bytes());
    assert_eq!(&bytes[14..16], &[0, 0], "count is 0");
    assert_eq!(&bytes[2214..2216], &[0, 0], "no extensions");
    assert_eq!(msg.header.mflags, [0, 0, 0], "no EXT_DATA on PUBLISH");
    // A master with a replica (the fake node): MIGRATE_TO is set.
    assert_eq!(
        msg.header.flags,
        flags::MASTER | flags::MYSELF | flags::MIGRATE_TO
    );
    assert_eq!(msg.header.myslots.count(), 16384);
    assert_eq!(&bytes[2256..2260], &8u32.to_be_bytes());
    assert_eq!(&bytes[2260..2264], &11u32.to_be_bytes());
    assert_eq!(&bytes[2264..], b"news.{a}hello world");
    assert_eq!(wire::encode(&msg), bytes);
}

#[test]
fn redis70_publishshard_round_trips() {
    let bytes = fixture("redis70_publishshard.bin");
    let msg = wire::decode(&bytes).expect("decode PUBLISHSHARD");
    let big: Vec<u8> = (0..=255u8).cycle().take(256 * 20).collect();
    assert_eq!(
        msg.body,
        Body::PublishShard {
            channel: b"orders:{a}".to_vec(),
            message: big,
        }
    );
    // Larger than sizeof(clusterMsg) (7.0's heap path): same layout.
    assert!(bytes.len() > wire::MSG_MAX_FIXED_LEN);
    assert_eq!(bytes.len(), wire::HEADER_LEN + 8 + 10 + 5120);
    assert_eq!(&bytes[12..14], &wire::msg_type::PUBLISHSHARD.to_be_bytes());
    assert_eq!(msg.header.mflags, [0, 0, 0]);
    assert_eq!(wire::encode(&msg), bytes);
}

#[test]
fn publish_frames_survive_truncation_and_length_lies() {
    for name in ["redis70_publish.bin", "redis70_publishshard.bin"] {
        let bytes = fixture(name);
        for cut in [
            0,
            7,
            8,
            wire::HEADER_LEN,
            wire::HEADER_LEN + 7,
            bytes.len() - 1,
        ] {
            assert!(wire::decode(&bytes[..cut]).is_err(), "{name} cut at {cut}");
        }
        // channel_len / message_len inconsistent with totlen.
        for (off, v) in [(2256, u32::MAX), (2256, 0), (2260, u32::MAX), (2260, 1)] {
            let mut b = bytes.clone();
            b[off..off + 4].copy_from_slice(&v.to_be_bytes());
            assert!(wire::decode(&b).is_err(), "{name}: len at {off} = {v}");
        }
    }
}
