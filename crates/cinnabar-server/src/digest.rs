//! `DEBUG DIGEST` / `DEBUG DIGEST-VALUE`: SHA-1 digests of values and of the whole dataset,
//! computed the way Redis 7.0's debug.c does (`xorDigest`, `mixDigest`, `xorObjectDigest`,
//! `computeDatasetDigest`), so the hex strings are equal across Redis and Cinnabar nodes for
//! equal data. `redis-cli --cluster fix` compares values on two nodes with DIGEST-VALUE, and
//! users compare a master with its replica with DIGEST.
//!
//! Ordered collections (lists, the key/value pair) feed each element through `mix` (the
//! order changes the result); unordered ones (sets, hash fields, zset members, the keys of a
//! database) are combined with `xor` (the order does not).

use sha1::{Digest, Sha1};

use crate::keyspace::Entry;
use crate::types::set::Member;
use crate::types::Value;

pub type Digest20 = [u8; 20];

/// `digest ^= SHA1(data)`.
fn xor(digest: &mut Digest20, data: &[u8]) {
    let h = Sha1::digest(data);
    for (d, x) in digest.iter_mut().zip(h.iter()) {
        *d ^= x;
    }
}

/// `digest = SHA1(digest ^ SHA1(data))`.
fn mix(digest: &mut Digest20, data: &[u8]) {
    xor(digest, data);
    let h = Sha1::digest(&digest[..]);
    digest.copy_from_slice(&h);
}

/// Redis's object type numbers (OBJ_STRING ... OBJ_HASH), mixed in big-endian.
fn type_code(v: &Value) -> u32 {
    match v {
        Value::Int(_) | Value::Str(_) | Value::Raw(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
    }
}

/// `xorObjectDigest`: mixes the value of `e` (and whether it has a TTL) into `digest`.
pub fn mix_value(digest: &mut Digest20, e: &Entry) {
    mix(digest, &type_code(&e.value).to_be_bytes());
    match &e.value {
        Value::Int(_) | Value::Str(_) | Value::Raw(_) => {
            let s = e.value.string_bytes().unwrap_or_default();
            mix(digest, &s);
        }
        Value::List(l) => l.iter().for_each(|el| mix(digest, el)),
        Value::Set(s) => s.for_each(|m| match m {
            Member::Int(n) => xor(digest, itoa::Buffer::new().format(n).as_bytes()),
            Member::Bytes(b) => xor(digest, b),
        }),
        Value::ZSet(z) => z.for_each(|m, score| {
            let mut ele = [0u8; 20];
            mix(&mut ele, m);
            mix(
                &mut ele,
                cinnabar_protocol::float::format_double(score).as_bytes(),
            );
            xor(digest, &ele);
        }),
        Value::Hash(h) => h.for_each(|f, v| {
            let mut ele = [0u8; 20];
            mix(&mut ele, f);
            mix(&mut ele, v);
            xor(digest, &ele);
        }),
    }
    if e.expire_at_ms != 0 {
        xor(digest, b"!!expire!!");
    }
}

/// `DEBUG DIGEST-VALUE` of one key: zeros when it does not exist.
pub fn value_digest(e: Option<&Entry>) -> Digest20 {
    let mut d = [0u8; 20];
    if let Some(e) = e {
        mix_value(&mut d, e);
    }
    d
}

/// `computeDatasetDigest`, one database at a time in index order: the database's keys are
/// xored into `keys` (any order), then `end_db` mixes the index and adds them when the
/// database had any key.
#[derive(Default)]
pub struct DatasetDigest {
    pub digest: Digest20,
    keys: Digest20,
    count: u64,
}

impl DatasetDigest {
    pub fn key(&mut self, e: &Entry) {
        let mut kv = [0u8; 20];
        mix(&mut kv, e.key.as_bytes());
        mix_value(&mut kv, e);
        xor(&mut self.keys, &kv); // Redis's xorDigest(final, digest, 20): SHA1 of the pair's
        self.count += 1;
    }

    pub fn end_db(&mut self, db: u32) {
        if self.count > 0 {
            mix(&mut self.digest, &db.to_be_bytes());
            for (d, x) in self.digest.iter_mut().zip(self.keys.iter()) {
                *d ^= x;
            }
        }
        self.keys = [0u8; 20];
        self.count = 0;
    }
}

/// The 40 lowercase hex digits DEBUG replies with.
pub fn hex(d: &Digest20) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(40);
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_ordered_xor_is_not() {
        let (mut a, mut b) = ([0u8; 20], [0u8; 20]);
        mix(&mut a, b"x");
        mix(&mut a, b"y");
        mix(&mut b, b"y");
        mix(&mut b, b"x");
        assert_ne!(a, b);
        let (mut c, mut d) = ([0u8; 20], [0u8; 20]);
        xor(&mut c, b"x");
        xor(&mut c, b"y");
        xor(&mut d, b"y");
        xor(&mut d, b"x");
        assert_eq!(c, d);
        assert_eq!(hex(&[0u8; 20]), "0".repeat(40));
    }
}
