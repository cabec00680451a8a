//! `Lp`: a compact sequence of byte strings in one `Vec<u8>` — Cinnabar's listpack. Used for
//! quicklist nodes, small hashes (field, value, field, value ...) and small sorted sets
//! (member, score, ...).
//!
//! Entry layout: a length header, the bytes, and the same length again as a trailer so the
//! buffer can be walked both ways. Lengths below 128 take one byte (`[len] data [len]`); longer
//! ones take five (`[0x80][u32 LE] data [u32 LE][0x80]`). Offsets are byte positions of entry
//! headers; `buf.len()` is the end position.

#[derive(Clone, Default, Debug)]
pub struct Lp {
    buf: Vec<u8>,
    count: u32,
}

const LONG: u8 = 0x80;

#[inline]
fn hdr_len(n: usize) -> usize {
    if n < 0x80 {
        1
    } else {
        5
    }
}

/// Total encoded size of an entry of `n` bytes.
#[inline]
pub fn entry_size(n: usize) -> usize {
    2 * hdr_len(n) + n
}

/// Writes the encoded entry for `data` into `out`, which is exactly `entry_size(data.len())`
/// bytes long.
fn encode_into(out: &mut [u8], data: &[u8]) {
    let n = data.len();
    if n < 0x80 {
        out[0] = n as u8;
        out[1..1 + n].copy_from_slice(data);
        out[1 + n] = n as u8;
    } else {
        let l = (n as u32).to_le_bytes();
        out[0] = LONG;
        out[1..5].copy_from_slice(&l);
        out[5..5 + n].copy_from_slice(data);
        out[5 + n..9 + n].copy_from_slice(&l);
        out[9 + n] = LONG;
    }
}

fn encode(out: &mut Vec<u8>, data: &[u8]) {
    let n = data.len();
    if n < 0x80 {
        out.push(n as u8);
        out.extend_from_slice(data);
        out.push(n as u8);
    } else {
        let l = (n as u32).to_le_bytes();
        out.push(LONG);
        out.extend_from_slice(&l);
        out.extend_from_slice(data);
        out.extend_from_slice(&l);
        out.push(LONG);
    }
}

impl Lp {
    pub fn new() -> Lp {
        Lp::default()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.count as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size in bytes.
    #[inline]
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
    }

    pub fn shrink(&mut self) {
        if self.buf.capacity() > self.buf.len() + self.buf.len() / 4 + 16 {
            self.buf.shrink_to_fit();
        }
    }

    #[inline]
    pub fn end(&self) -> usize {
        self.buf.len()
    }

    /// (data start, data length) of the entry at `off`.
    #[inline]
    fn header(&self, off: usize) -> (usize, usize) {
        let b = self.buf[off];
        if b != LONG {
            (off + 1, b as usize)
        } else {
            let mut l = [0u8; 4];
            l.copy_from_slice(&self.buf[off + 1..off + 5]);
            (off + 5, u32::from_le_bytes(l) as usize)
        }
    }

    /// The bytes of the entry at `off`.
    #[inline]
    pub fn get(&self, off: usize) -> &[u8] {
        let (s, n) = self.header(off);
        &self.buf[s..s + n]
    }

    /// Offset of the entry after the one at `off` (may be `end()`).
    #[inline]
    pub fn next(&self, off: usize) -> usize {
        let (s, n) = self.header(off);
        s + n + hdr_len(n)
    }

    /// Offset of the entry before position `off` (`off` > 0).
    #[inline]
    pub fn prev(&self, off: usize) -> usize {
        let b = self.buf[off - 1];
        if b != LONG {
            off - 2 - b as usize
        } else {
            let mut l = [0u8; 4];
            l.copy_from_slice(&self.buf[off - 5..off - 1]);
            off - 10 - u32::from_le_bytes(l) as usize
        }
    }

    /// Offset of the last entry, if any.
    pub fn last(&self) -> Option<usize> {
        if self.buf.is_empty() {
            None
        } else {
            Some(self.prev(self.buf.len()))
        }
    }

    /// Offset of entry number `idx` (walking from the nearer end).
    pub fn seek(&self, idx: usize) -> Option<usize> {
        if idx >= self.len() {
            return None;
        }
        if idx <= self.len() / 2 {
            let mut off = 0;
            for _ in 0..idx {
                off = self.next(off);
            }
            Some(off)
        } else {
            let mut off = self.buf.len();
            for _ in 0..(self.len() - idx) {
                off = self.prev(off);
            }
            Some(off)
        }
    }

    pub fn push_back(&mut self, data: &[u8]) {
        self.reserve_for(entry_size(data.len()));
        encode(&mut self.buf, data);
        self.count += 1;
    }

    /// Small buffers grow exactly (most small hashes and zsets never grow again, and doubling
    /// would leave up to half of each one unused); larger ones grow to the next power of two,
    /// so quicklist nodes end exactly at their 4/8/16 KiB size limits.
    #[inline]
    fn reserve_for(&mut self, extra: usize) {
        const EXACT_GROWTH_BELOW_BYTES: usize = 512;
        let need = self.buf.len() + extra;
        if need <= self.buf.capacity() {
            return;
        }
        let target = if need <= EXACT_GROWTH_BELOW_BYTES {
            need
        } else {
            need.next_power_of_two()
        };
        self.buf.reserve_exact(target - self.buf.len());
    }

    pub fn push_front(&mut self, data: &[u8]) {
        self.insert(0, data);
    }

    /// Inserts `data` before the entry at `off` (or at the end when `off == end()`).
    pub fn insert(&mut self, off: usize, data: &[u8]) {
        if off == self.buf.len() {
            return self.push_back(data);
        }
        // Open a gap with one memmove and encode into it (no temporary buffer, no splice).
        let n = entry_size(data.len());
        self.reserve_for(n);
        let old_len = self.buf.len();
        self.buf.resize(old_len + n, 0);
        self.buf.copy_within(off..old_len, off + n);
        encode_into(&mut self.buf[off..off + n], data);
        self.count += 1;
    }

    /// Replaces the entry at `off`; returns the offset after it.
    pub fn replace(&mut self, off: usize, data: &[u8]) -> usize {
        let end = self.next(off);
        let old_n = end - off;
        let n = entry_size(data.len());
        let len = self.buf.len();
        if n > old_n {
            let grow = n - old_n;
            self.reserve_for(grow);
            self.buf.resize(len + grow, 0);
            self.buf.copy_within(end..len, end + grow);
        } else if n < old_n {
            self.buf.copy_within(end..len, off + n);
            self.buf.truncate(len - (old_n - n));
        }
        encode_into(&mut self.buf[off..off + n], data);
        off + n
    }

    /// Removes `n` entries starting at `off`.
    pub fn remove(&mut self, off: usize, n: usize) {
        let mut end = off;
        for _ in 0..n {
            end = self.next(end);
        }
        self.buf.drain(off..end);
        self.count -= n as u32;
    }

    /// Removes the entries between byte offsets `from..to` which hold `n` entries.
    pub fn remove_span(&mut self, from: usize, to: usize, n: usize) {
        self.buf.drain(from..to);
        self.count -= n as u32;
    }

    pub fn iter(&self) -> LpIter<'_> {
        LpIter {
            lp: self,
            front: 0,
            back: self.buf.len(),
        }
    }

    /// Splits off the entries from `off` on into a new listpack holding `n` entries.
    pub fn split_off(&mut self, off: usize, n: usize) -> Lp {
        let tail = self.buf.split_off(off);
        self.count -= n as u32;
        Lp {
            buf: tail,
            count: n as u32,
        }
    }

    /// Appends all entries of `other`.
    pub fn append(&mut self, other: &Lp) {
        self.buf.extend_from_slice(&other.buf);
        self.count += other.count;
    }
}

/// Double-ended iterator over entries.
pub struct LpIter<'a> {
    lp: &'a Lp,
    front: usize,
    back: usize,
}

impl<'a> Iterator for LpIter<'a> {
    type Item = &'a [u8];
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let lp: &'a Lp = self.lp;
        let v = lp.get(self.front);
        self.front = lp.next(self.front);
        Some(v)
    }
}

impl<'a> DoubleEndedIterator for LpIter<'a> {
    #[inline]
    fn next_back(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let lp: &'a Lp = self.lp;
        self.back = lp.prev(self.back);
        Some(lp.get(self.back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_both_ways() {
        let mut lp = Lp::new();
        let long = vec![7u8; 300];
        lp.push_back(b"a");
        lp.push_back(&long);
        lp.push_front(b"");
        lp.push_back(b"zz");
        let fwd: Vec<&[u8]> = lp.iter().collect();
        assert_eq!(fwd, vec![&b""[..], b"a", &long[..], b"zz"]);
        let back: Vec<&[u8]> = lp.iter().rev().collect();
        assert_eq!(back, vec![&b"zz"[..], &long[..], b"a", b""]);
        let off = lp.seek(2).unwrap();
        assert_eq!(lp.get(off), &long[..]);
        lp.replace(off, b"x");
        lp.remove(lp.seek(0).unwrap(), 2);
        let fwd: Vec<&[u8]> = lp.iter().collect();
        assert_eq!(fwd, vec![&b"x"[..], b"zz"]);
        assert_eq!(lp.len(), 2);
    }
}
