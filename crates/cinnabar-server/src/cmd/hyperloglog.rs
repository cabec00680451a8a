//! HyperLogLog commands — PFADD, PFCOUNT, PFMERGE, PFDEBUG (GETREG DECODE ENCODING TODENSE)
//! and PFSELFTEST — and the HLL representation they work on, byte-compatible with Redis 7.0.
//!
//! An HLL is a plain string value (stored as `Value::Raw`, OBJECT ENCODING `raw`, as Redis's
//! `dbUnshareStringValue` leaves it): a 16-byte header (`HYLL`, encoding byte 0 = dense /
//! 1 = sparse, 3 unused bytes, the cached cardinality as 8 little-endian bytes whose top bit
//! marks the cache invalid) followed by the registers: 16384 packed 6-bit registers (dense,
//! 12288 bytes) or the ZERO / XZERO / VAL run-length opcodes (sparse). Elements are hashed
//! with MurmurHash64A (seed `0xadc83b19`): the low 14 bits pick the register, the position
//! of the first set bit of the rest (plus one) is the candidate value. A sparse HLL becomes
//! dense when a register needs a value above 32 or when it would grow beyond
//! `hll-sparse-max-bytes`. PFCOUNT uses Otmar Ertl's estimator on the register histogram,
//! as Redis 7 does.
//!
//! The sparse update (`sparse_set`) follows Redis's in-place algorithm step by step (opcode
//! split, adjacent VAL merging over at most five opcodes, the implicit NUL byte after the
//! string), so the stored bytes after any sequence of commands equal Redis's — which is what
//! lets GET / DUMP / RDB / replication of HLL keys interoperate — also for corrupted input.
//! Sparse validation (PFCOUNT, PFMERGE, conversion to dense) includes the CVE-2025-32023 fix
//! that the reference redis-server 7.0.15 (Debian 7.0.15-1~deb12u10) carries: an opcode
//! running past register 16384 makes the HLL corrupted.
//!
//! Effects as in Redis: PFADD and PFMERGE notify `pfadd`; PFCOUNT on one key rewrites the
//! cached cardinality when it was invalid, which counts as a change (dirty, WATCH) and is
//! propagated verbatim although PFCOUNT is a read-only command; PFDEBUG GETREG / TODENSE
//! converting a sparse HLL count as a change too.

use std::cell::Cell;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::notify::{self, notify};
use crate::server::Server;
use crate::types::Value;

const HLL_P: u32 = 14;
const HLL_Q: usize = 64 - HLL_P as usize;
const HLL_REGISTERS: usize = 1 << HLL_P;
const HLL_P_MASK: u64 = HLL_REGISTERS as u64 - 1;
const HLL_BITS: usize = 6;
const HLL_REGISTER_MAX: u32 = (1 << HLL_BITS) - 1;
const HLL_HDR_SIZE: usize = 16;
const HLL_DENSE_SIZE: usize = HLL_HDR_SIZE + (HLL_REGISTERS * HLL_BITS).div_ceil(8);
const HLL_DENSE: u8 = 0;
const HLL_SPARSE: u8 = 1;
const HLL_MAX_ENCODING: u8 = 1;

const SPARSE_XZERO_BIT: u8 = 0x40;
const SPARSE_VAL_BIT: u8 = 0x80;
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: i64 = 4;
const SPARSE_ZERO_MAX_LEN: i64 = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;

/// 0.5 / ln(2).
const HLL_ALPHA_INF: f64 = 0.721_347_520_444_481_7;

const INVALID_HLL_ERR: &str = "INVALIDOBJ Corrupted HLL object detected";
const NOT_HLL_ERR: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";

// ---------------------------------------------------------------------------------------------
// Hashing

/// MurmurHash2, 64-bit version (MurmurHash64A), as Redis uses it (little-endian reads).
pub fn murmurhash64a(key: &[u8], seed: u32) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let len = key.len();
    let mut h: u64 = (seed as u64) ^ (len as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// Register index and the length of the `000..1` pattern for an element (Redis's hllPatLen).
fn pat_len(ele: &[u8]) -> (usize, u8) {
    let mut hash = murmurhash64a(ele, 0xadc8_3b19);
    let index = (hash & HLL_P_MASK) as usize;
    hash >>= HLL_P;
    hash |= 1u64 << HLL_Q;
    (index, hash.trailing_zeros() as u8 + 1)
}

// ---------------------------------------------------------------------------------------------
// Dense representation (`regs` = the bytes after the header)

#[inline]
fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * HLL_BITS / 8;
    let fb = (i * HLL_BITS) & 7;
    let fb8 = 8 - fb;
    let b0 = regs[byte] as u32;
    // The byte after the last register is the string's implicit NUL in Redis.
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << fb8)) & HLL_REGISTER_MAX) as u8
}

#[inline]
fn dense_set(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * HLL_BITS / 8;
    let fb = (i * HLL_BITS) & 7;
    let fb8 = 8 - fb;
    let v = val as u32;
    regs[byte] &= !(HLL_REGISTER_MAX << fb) as u8;
    regs[byte] |= (v << fb) as u8;
    if let Some(b) = regs.get_mut(byte + 1) {
        *b &= !(HLL_REGISTER_MAX >> fb8) as u8;
        *b |= (v >> fb8) as u8;
    }
}

/// Sets register `i` to `count` when that is larger; true when it changed.
fn dense_set_max(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_set(regs, i, count);
        true
    } else {
        false
    }
}

fn dense_histo(regs: &[u8], histo: &mut [i32; 64]) {
    for g in regs[..HLL_REGISTERS * HLL_BITS / 8].chunks_exact(3) {
        let (a, b, c) = (g[0] as usize, g[1] as usize, g[2] as usize);
        histo[a & 63] += 1;
        histo[(a >> 6 | b << 2) & 63] += 1;
        histo[(b >> 4 | c << 4) & 63] += 1;
        histo[(c >> 2) & 63] += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Sparse representation

#[inline]
fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}
#[inline]
fn is_xzero(b: u8) -> bool {
    b & 0xc0 == SPARSE_XZERO_BIT
}
#[inline]
fn is_val(b: u8) -> bool {
    b & SPARSE_VAL_BIT != 0
}
#[inline]
fn zero_len(b: u8) -> i64 {
    (b & 0x3f) as i64 + 1
}
#[inline]
fn xzero_len(b0: u8, b1: u8) -> i64 {
    ((((b0 & 0x3f) as i64) << 8) | b1 as i64) + 1
}
#[inline]
fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}
#[inline]
fn val_len(b: u8) -> i64 {
    (b & 0x3) as i64 + 1
}
#[inline]
fn val_op(val: i64, len: i64) -> u8 {
    ((((val - 1) << 2) | (len - 1)) as u8) | SPARSE_VAL_BIT
}
#[inline]
fn zero_op(len: i64) -> u8 {
    (len - 1) as u8
}
#[inline]
fn xzero_op(len: i64) -> [u8; 2] {
    let l = len - 1;
    [((l >> 8) as u8) | SPARSE_XZERO_BIT, (l & 0xff) as u8]
}

/// Byte `i` of `s`, or the implicit NUL after the string.
#[inline]
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// The opcode at `p`: (registers covered, their value (0 for ZERO / XZERO), opcode bytes).
#[inline]
fn sparse_op(s: &[u8], p: usize) -> (i64, u8, usize) {
    let b = s[p];
    if is_zero(b) {
        (zero_len(b), 0, 1)
    } else if is_xzero(b) {
        (xzero_len(b, at(s, p + 1)), 0, 2)
    } else {
        (val_len(b), val_value(b), 1)
    }
}

/// The registers of a sparse HLL as a dense HLL (same header, encoding dense); None when the
/// opcodes do not describe exactly 16384 registers (an opcode running past the last register
/// is corruption, as with Redis's CVE-2025-32023 fix).
fn sparse_to_dense(s: &[u8]) -> Option<Vec<u8>> {
    // Room for the bytes `Work` keeps after the value.
    let mut dense = Vec::with_capacity(HLL_DENSE_SIZE + 4);
    dense.resize(HLL_DENSE_SIZE, 0);
    dense[..HLL_HDR_SIZE].copy_from_slice(&s[..HLL_HDR_SIZE]);
    dense[4] = HLL_DENSE;
    let regs = &mut dense[HLL_HDR_SIZE..];
    let mut idx: i64 = 0;
    let mut p = HLL_HDR_SIZE;
    while p < s.len() {
        let (runlen, regval, oplen) = sparse_op(s, p);
        if runlen + idx > HLL_REGISTERS as i64 {
            return None;
        }
        if regval == 0 {
            idx += runlen;
        } else {
            for _ in 0..runlen {
                dense_set(regs, idx as usize, regval);
                idx += 1;
            }
        }
        p += oplen;
    }
    (idx == HLL_REGISTERS as i64).then_some(dense)
}

fn sparse_histo(data: &[u8], histo: &mut [i32; 64]) -> bool {
    let mut idx: i64 = 0;
    let mut p = 0;
    while p < data.len() {
        let (runlen, regval, oplen) = sparse_op(data, p);
        if runlen + idx > HLL_REGISTERS as i64 {
            return false;
        }
        idx += runlen;
        histo[regval as usize] += runlen as i32;
        p += oplen;
    }
    idx == HLL_REGISTERS as i64
}

/// An HLL string being updated by one command: `buf[..len]` is the value, and the bytes after
/// it stand for the memory after Redis's sds string (its NUL terminator and the room
/// `sdsMakeRoomFor` reserved), which Redis's sparse update reads — and, for a truncated
/// trailing XZERO, writes — so they are kept from one register update to the next. The buffer
/// is cut back to the value when the command is done with it (on drop).
struct Work<'a> {
    buf: &'a mut Vec<u8>,
    len: usize,
}

impl<'a> Work<'a> {
    fn new(buf: &'a mut Vec<u8>) -> Work<'a> {
        let len = buf.len();
        buf.resize(len + 4, 0);
        Work { buf, len }
    }

    fn value(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn value_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// Replaces the value (a fresh allocation in Redis: NUL-terminated, no stale bytes).
    fn replace(&mut self, v: Vec<u8>) {
        *self.buf = v;
        self.len = self.buf.len();
        self.buf.resize(self.len + 4, 0);
    }
}

impl Drop for Work<'_> {
    fn drop(&mut self) {
        self.buf.truncate(self.len);
    }
}

/// Converts a sparse HLL to dense and sets register `index` (Redis's `promote:` path).
/// -1 when the sparse HLL is corrupted.
fn promote(w: &mut Work, index: usize, count: u8) -> i32 {
    match sparse_to_dense(w.value()) {
        None => -1,
        Some(d) => {
            w.replace(d);
            dense_set_max(&mut w.value_mut()[HLL_HDR_SIZE..], index, count);
            1
        }
    }
}

/// Redis's hllSparseSet: raises register `index` to `count` in a sparse HLL in place
/// (possibly converting it to dense). 1 = changed, 0 = not needed, -1 = corrupted.
///
/// Runs on the string plus four bytes of room (the NUL terminator and the three bytes Redis
/// reserves), so every intermediate step reads and writes what Redis's C code does.
fn sparse_set(w: &mut Work, index: usize, count: u8, max_bytes: u64) -> i32 {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote(w, index, count);
    }
    if w.buf.len() < w.len + 4 {
        w.buf.resize(w.len + 4, 0);
    }
    match sparse_set_in(w.buf, &mut w.len, index as i64, count, max_bytes) {
        SparseStep::Done(v) => v,
        SparseStep::Promote => promote(w, index, count),
    }
}

enum SparseStep {
    Done(i32),
    Promote,
}

fn sparse_set_in(s: &mut [u8], len: &mut usize, index: i64, count: u8, max: u64) -> SparseStep {
    let sparse = HLL_HDR_SIZE;
    let mut end = *len;
    // Step 1: find the opcode covering `index`.
    let mut p = sparse;
    let mut first: i64 = 0;
    let mut prev: Option<usize> = None;
    let mut span: i64 = 0;
    while p < end {
        let b = s[p];
        let mut oplen = 1;
        if is_zero(b) {
            span = zero_len(b);
        } else if is_val(b) {
            span = val_len(b);
        } else {
            span = xzero_len(b, s[p + 1]);
            oplen = 2;
        }
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return SparseStep::Done(-1);
    }
    let op = s[p];
    let next = if is_xzero(op) { p + 2 } else { p + 1 };
    let next = (next < end).then_some(next);
    let (zero, xzero) = (is_zero(op), is_xzero(op));
    let runlen = if zero {
        zero_len(op)
    } else if xzero {
        xzero_len(op, s[p + 1])
    } else {
        val_len(op)
    };

    let mut trivial = false;
    if !zero && !xzero {
        let old = val_value(op);
        // A: the register already holds at least `count`.
        if old >= count {
            return SparseStep::Done(0);
        }
        // B: a VAL of length 1.
        if runlen == 1 {
            s[p] = val_op(count as i64, 1);
            trivial = true;
        }
    }
    // C: a ZERO of length 1.
    if !trivial && zero && runlen == 1 {
        s[p] = val_op(count as i64, 1);
        trivial = true;
    }
    if !trivial {
        // D: split the opcode into up to three (at most 5 bytes: XZERO-VAL-XZERO).
        let mut seq = [0u8; 5];
        let mut n = 0;
        let last = first + span - 1;
        fn push_zero(seq: &mut [u8; 5], n: &mut usize, l: i64) {
            if l > SPARSE_ZERO_MAX_LEN {
                seq[*n..*n + 2].copy_from_slice(&xzero_op(l));
                *n += 2;
            } else {
                seq[*n] = zero_op(l);
                *n += 1;
            }
        }
        if zero || xzero {
            if index != first {
                push_zero(&mut seq, &mut n, index - first);
            }
            seq[n] = val_op(count as i64, 1);
            n += 1;
            if index != last {
                push_zero(&mut seq, &mut n, last - index);
            }
        } else {
            let curval = val_value(op) as i64;
            if index != first {
                seq[n] = val_op(curval, index - first);
                n += 1;
            }
            seq[n] = val_op(count as i64, 1);
            n += 1;
            if index != last {
                seq[n] = val_op(curval, last - index);
                n += 1;
            }
        }
        // Step 3: replace the old opcode with the new sequence.
        let oldlen: i64 = if xzero { 2 } else { 1 };
        let delta = n as i64 - oldlen;
        if delta > 0 && (*len as u64).saturating_add(delta as u64) > max {
            return SparseStep::Promote;
        }
        if delta != 0 {
            if let Some(nx) = next {
                s.copy_within(nx..end, (nx as i64 + delta) as usize);
            }
        }
        *len = (*len as i64 + delta) as usize;
        s[*len] = 0;
        s[p..p + n].copy_from_slice(&seq[..n]);
        end = (end as i64 + delta) as usize;
    }

    // Step 4: merge adjacent VAL opcodes of equal value, scanning up to 5 opcodes from prev.
    let mut p = prev.unwrap_or(sparse);
    let mut scanlen = 5;
    while p < end {
        if scanlen == 0 {
            break;
        }
        scanlen -= 1;
        let b = s[p];
        if is_xzero(b) {
            p += 2;
            continue;
        } else if is_zero(b) {
            p += 1;
            continue;
        }
        if p + 1 < end && is_val(s[p + 1]) {
            let v1 = val_value(b);
            let v2 = val_value(s[p + 1]);
            if v1 == v2 {
                let l = val_len(b) + val_len(s[p + 1]);
                if l <= SPARSE_VAL_MAX_LEN {
                    s[p + 1] = val_op(v1 as i64, l);
                    s.copy_within(p + 1..end + 1, p);
                    *len -= 1;
                    s[*len] = 0;
                    end -= 1;
                    continue;
                }
            }
        }
        p += 1;
    }
    invalidate_cache(s);
    SparseStep::Done(1)
}

/// A new, empty HLL: sparse, one XZERO opcode covering all registers, cached cardinality 0.
fn new_hll() -> Vec<u8> {
    let mut s = Vec::with_capacity(HLL_HDR_SIZE + 2);
    s.extend_from_slice(b"HYLL");
    s.push(HLL_SPARSE);
    s.extend_from_slice(&[0u8; 11]);
    let mut aux = HLL_REGISTERS;
    while aux > 0 {
        let x = aux.min(SPARSE_XZERO_MAX_LEN);
        s.extend_from_slice(&xzero_op(x as i64));
        aux -= x;
    }
    s
}

#[inline]
fn invalidate_cache(s: &mut [u8]) {
    s[15] |= 1 << 7;
}

#[inline]
fn cache_valid(s: &[u8]) -> bool {
    s[15] & (1 << 7) == 0
}

/// Raises register `index` to `count` in either representation (1 changed, 0 not, -1
/// corrupted).
fn hll_set(w: &mut Work, index: usize, count: u8, max_bytes: u64) -> i32 {
    match w.buf[4] {
        HLL_DENSE => dense_set_max(&mut w.value_mut()[HLL_HDR_SIZE..], index, count) as i32,
        HLL_SPARSE => sparse_set(w, index, count, max_bytes),
        _ => -1,
    }
}

fn hll_add(w: &mut Work, ele: &[u8], max_bytes: u64) -> i32 {
    let (index, count) = pat_len(ele);
    hll_set(w, index, count, max_bytes)
}

// ---------------------------------------------------------------------------------------------
// Estimation

/// Otmar Ertl's sigma ("New cardinality estimation algorithms for HyperLogLog sketches").
fn hll_sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let zp = z;
        z += x * y;
        y += y;
        if zp == z {
            return z;
        }
    }
}

/// Otmar Ertl's tau.
fn hll_tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let zp = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if zp == z {
            return z / 3.0;
        }
    }
}

/// Cardinality estimate from the register histogram.
fn count_from_histo(histo: &[i32; 64]) -> u64 {
    let m = HLL_REGISTERS as f64;
    let mut z = m * hll_tau((m - histo[HLL_Q + 1] as f64) / m);
    for j in (1..=HLL_Q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * hll_sigma(histo[0] as f64 / m);
    let e = (HLL_ALPHA_INF * m * m / z).round();
    e as i64 as u64
}

/// Estimate for an HLL string (dense or sparse); None when a sparse HLL is corrupted.
fn hll_count(s: &[u8]) -> Option<u64> {
    let mut histo = [0i32; 64];
    if s[4] == HLL_DENSE {
        dense_histo(&s[HLL_HDR_SIZE..], &mut histo);
    } else if !sparse_histo(&s[HLL_HDR_SIZE..], &mut histo) {
        return None;
    }
    Some(count_from_histo(&histo))
}

/// Estimate for registers held one per byte (PFCOUNT of several keys).
fn raw_count(max: &[u8]) -> u64 {
    let mut histo = [0i32; 64];
    for &v in max {
        histo[v as usize] += 1;
    }
    count_from_histo(&histo)
}

/// `max[i] = MAX(max[i], register i of s)`; false when a sparse HLL is corrupted.
fn hll_merge(max: &mut [u8], s: &[u8]) -> bool {
    if s[4] == HLL_DENSE {
        let regs = &s[HLL_HDR_SIZE..];
        for (i, m) in max.iter_mut().enumerate() {
            let v = dense_get(regs, i);
            if v > *m {
                *m = v;
            }
        }
        return true;
    }
    let mut i: i64 = 0;
    let mut p = HLL_HDR_SIZE;
    while p < s.len() {
        let (runlen, regval, oplen) = sparse_op(s, p);
        if runlen + i > HLL_REGISTERS as i64 {
            return false;
        }
        for m in &mut max[i as usize..(i + runlen) as usize] {
            if regval > *m {
                *m = regval;
            }
        }
        i += runlen;
        p += oplen;
    }
    i == HLL_REGISTERS as i64
}

// ---------------------------------------------------------------------------------------------
// Command helpers

/// Redis's isHLLObjectOrReply: the value must be a string holding a plausible HLL.
fn check_hll(v: &Value) -> Result<(), CmdError> {
    let s: &[u8] = match v {
        Value::Str(s) => s.as_bytes(),
        Value::Raw(r) => r,
        // Integer-encoded strings are not sds-encoded: never an HLL.
        Value::Int(_) => return Err(CmdError::msg(NOT_HLL_ERR)),
        _ => return Err(CmdError::WrongType),
    };
    if s.len() < HLL_HDR_SIZE
        || &s[..4] != b"HYLL"
        || s[4] > HLL_MAX_ENCODING
        || (s[4] == HLL_DENSE && s.len() != HLL_DENSE_SIZE)
    {
        return Err(CmdError::msg(NOT_HLL_ERR));
    }
    Ok(())
}

/// The HLL bytes of a checked value, made growable (Redis's dbUnshareStringValue).
fn hll_bytes(v: &mut Value) -> Result<&mut Vec<u8>, CmdError> {
    check_hll(v)?;
    v.make_raw().ok_or(CmdError::WrongType)
}

fn hll_slice(v: &Value) -> &[u8] {
    match v {
        Value::Str(s) => s.as_bytes(),
        Value::Raw(r) => r,
        _ => &[],
    }
}

/// `hll-sparse-max-bytes`, cached per thread until the next CONFIG SET.
fn sparse_max_bytes(srv: &Server) -> u64 {
    thread_local! {
        static CACHE: Cell<(usize, u64, u64)> = const { Cell::new((0, u64::MAX, 3000)) };
    }
    let me = srv as *const Server as usize;
    let version = srv.settings_version.load(Ordering::Acquire);
    let (who, ver, val) = CACHE.with(|c| c.get());
    if who == me && ver == version {
        return val;
    }
    let val = srv
        .config
        .lock()
        .config
        .get_value("hll-sparse-max-bytes")
        .and_then(crate::settings::parse_memory)
        .unwrap_or(3000);
    CACHE.with(|c| c.set((me, version, val)));
    val
}

/// Bytes up to the first NUL (how Redis's `%s` / strcasecmp see an argument).
fn c_str(a: &[u8]) -> &[u8] {
    match memchr::memchr(0, a) {
        Some(i) => &a[..i],
        None => a,
    }
}

// ---------------------------------------------------------------------------------------------
// Commands

/// PFADD key [element ...]
pub fn pfadd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let max_bytes = sparse_max_bytes(ctx.srv);
    let mut updated: u64 = 0;
    let exists = match ctx.db.lookup_write(key) {
        Some(e) => {
            hll_bytes(&mut e.value)?;
            true
        }
        None => false,
    };
    if !exists {
        ctx.db.set(key, Value::Raw(Box::new(new_hll())), 0);
        updated += 1;
    }
    let e = ctx.db.lookup_write(key).ok_or(CmdError::NoSuchKey)?;
    let Value::Raw(s) = &mut e.value else {
        return Err(CmdError::WrongType);
    };
    let mut w = Work::new(s);
    for ele in &args[2..] {
        match hll_add(&mut w, ele, max_bytes) {
            1 => updated += 1,
            -1 => {
                // Registers already raised stay raised; nothing is signalled (as Redis).
                return Err(CmdError::msg(INVALID_HLL_ERR));
            }
            _ => {}
        }
    }
    if updated > 0 {
        invalidate_cache(w.value_mut());
    }
    drop(w);
    if updated > 0 {
        // The key creation was counted by `set`.
        ctx.db.dirty += updated - u64::from(!exists);
        notify(ctx, notify::STRING, "pfadd", key);
        ctx.out.int(1);
    } else {
        ctx.out.int(0);
    }
    Ok(())
}

/// PFCOUNT key [key ...]
pub fn pfcount(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 {
        // Cardinality of the union; nothing is written.
        let mut max = vec![0u8; HLL_REGISTERS];
        for key in &args[1..] {
            let Some(e) = ctx.db.lookup_read(key) else {
                continue;
            };
            check_hll(&e.value)?;
            if !hll_merge(&mut max, hll_slice(&e.value)) {
                return Err(CmdError::msg(INVALID_HLL_ERR));
            }
        }
        ctx.out.int(raw_count(&max) as i64);
        return Ok(());
    }
    let key = &args[1];
    let Some(e) = ctx.db.lookup_read(key) else {
        ctx.out.int(0);
        return Ok(());
    };
    let s = hll_bytes(&mut e.value)?;
    if cache_valid(s) {
        let card = u64::from_le_bytes(s[8..16].try_into().unwrap_or_default());
        ctx.out.int(card as i64);
        return Ok(());
    }
    let card = hll_count(s).ok_or_else(|| CmdError::msg(INVALID_HLL_ERR))?;
    s[8..16].copy_from_slice(&card.to_le_bytes());
    // Rewriting the cache changes the value: Redis signals the key and propagates PFCOUNT
    // (a read-only command) as is.
    ctx.db.touch_write();
    ctx.srv.touch_watched(ctx.db.index, key);
    ctx.db.propagate_as = Some(args.iter().map(|a| a.to_vec()).collect());
    ctx.out.int(card as i64);
    Ok(())
}

/// PFMERGE destkey [sourcekey ...]
pub fn pfmerge(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let max_bytes = sparse_max_bytes(ctx.srv);
    let mut max = vec![0u8; HLL_REGISTERS];
    let mut use_dense = false;
    // The destination is read as a source too.
    for key in &args[1..] {
        let Some(e) = ctx.db.lookup_read(key) else {
            continue;
        };
        check_hll(&e.value)?;
        let s = hll_slice(&e.value);
        if s[4] == HLL_DENSE {
            use_dense = true;
        }
        if !hll_merge(&mut max, s) {
            return Err(CmdError::msg(INVALID_HLL_ERR));
        }
    }
    let dest = &args[1];
    let exists = match ctx.db.lookup_write(dest) {
        Some(e) => {
            e.value.make_raw();
            true
        }
        None => false,
    };
    if !exists {
        ctx.db.set(dest, Value::Raw(Box::new(new_hll())), 0);
    }
    let e = ctx.db.lookup_write(dest).ok_or(CmdError::NoSuchKey)?;
    let Value::Raw(s) = &mut e.value else {
        return Err(CmdError::WrongType);
    };
    if use_dense && s[4] == HLL_SPARSE {
        match sparse_to_dense(s) {
            Some(d) => **s = d,
            None => return Err(CmdError::msg(INVALID_HLL_ERR)),
        }
    }
    let mut w = Work::new(s);
    for (j, &m) in max.iter().enumerate() {
        if m == 0 {
            continue;
        }
        // Redis ignores the result here (the sources were validated).
        hll_set(&mut w, j, m, max_bytes);
    }
    invalidate_cache(w.value_mut());
    drop(w);
    if exists {
        ctx.db.touch_write();
    }
    notify(ctx, notify::STRING, "pfadd", dest);
    ctx.out.ok();
    Ok(())
}

/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key
pub fn pfdebug(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sub = c_str(&args[1]);
    let key = &args[2];
    let Some(e) = ctx.db.lookup_write(key) else {
        return Err(CmdError::err("The specified key does not exist"));
    };
    let s = hll_bytes(&mut e.value)?;
    if sub.eq_ignore_ascii_case(b"getreg") {
        let mut converted = false;
        if s[4] == HLL_SPARSE {
            *s = sparse_to_dense(s).ok_or_else(|| CmdError::msg(INVALID_HLL_ERR))?;
            converted = true;
        }
        let regs: Vec<u8> = (0..HLL_REGISTERS)
            .map(|i| dense_get(&s[HLL_HDR_SIZE..], i))
            .collect();
        if converted {
            ctx.db.touch_write();
        }
        ctx.out.array(HLL_REGISTERS);
        for v in regs {
            ctx.out.int(v as i64);
        }
    } else if sub.eq_ignore_ascii_case(b"decode") {
        if s[4] != HLL_SPARSE {
            return Err(CmdError::err("HLL encoding is not sparse"));
        }
        let mut out = String::new();
        let mut p = HLL_HDR_SIZE;
        while p < s.len() {
            let b = s[p];
            if is_zero(b) {
                out.push_str(&format!("z:{} ", zero_len(b)));
                p += 1;
            } else if is_xzero(b) {
                out.push_str(&format!("Z:{} ", xzero_len(b, at(s, p + 1))));
                p += 2;
            } else {
                out.push_str(&format!("v:{},{} ", val_value(b), val_len(b)));
                p += 1;
            }
        }
        ctx.out.bulk(out.trim_matches(' ').as_bytes());
    } else if sub.eq_ignore_ascii_case(b"encoding") {
        let enc = if s[4] == HLL_DENSE { "dense" } else { "sparse" };
        ctx.out.simple(enc);
    } else if sub.eq_ignore_ascii_case(b"todense") {
        let mut converted = false;
        if s[4] == HLL_SPARSE {
            *s = sparse_to_dense(s).ok_or_else(|| CmdError::msg(INVALID_HLL_ERR))?;
            converted = true;
        }
        if converted {
            ctx.db.touch_write();
        }
        ctx.out.int(converted as i64);
    } else {
        let mut msg = b"ERR Unknown PFDEBUG subcommand '".to_vec();
        msg.extend_from_slice(sub);
        msg.push(b'\'');
        return Err(CmdError::Raw(msg));
    }
    Ok(())
}

/// PFSELFTEST: checks register access and the estimator's error (dense and sparse agree).
pub fn pfselftest(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let max_bytes = sparse_max_bytes(ctx.srv);
    match selftest(max_bytes) {
        Ok(()) => ctx.out.ok(),
        // addReplyError without a code: `ERR TESTFAILED ...`.
        Err(e) => return Err(CmdError::err(e)),
    }
    Ok(())
}

fn selftest(max_bytes: u64) -> Result<(), String> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut dense = vec![0u8; HLL_DENSE_SIZE];
    let mut bytecounters = vec![0u8; HLL_REGISTERS];
    // Test 1: every register keeps its value without disturbing its neighbours.
    for _ in 0..1000 {
        let regs = &mut dense[HLL_HDR_SIZE..];
        for (i, b) in bytecounters.iter_mut().enumerate() {
            let r = rng.gen::<u8>() & HLL_REGISTER_MAX as u8;
            *b = r;
            dense_set(regs, i, r);
        }
        for (i, &b) in bytecounters.iter().enumerate() {
            let v = dense_get(regs, i);
            if v != b {
                return Err(format!("TESTFAILED Register {i} should be {b} but is {v}"));
            }
        }
    }
    // Test 2: approximation error, dense and sparse side by side.
    dense[HLL_HDR_SIZE..].fill(0);
    let mut sparse_buf = new_hll();
    let mut sparse = Work::new(&mut sparse_buf);
    let relerr = 1.04 / (HLL_REGISTERS as f64).sqrt();
    let mut checkpoint: u64 = 1;
    let seed: u64 = rng.gen();
    for j in 1..=10_000_000u64 {
        let ele = (j ^ seed).to_le_bytes();
        let (index, count) = pat_len(&ele);
        dense_set_max(&mut dense[HLL_HDR_SIZE..], index, count);
        hll_set(&mut sparse, index, count, max_bytes);
        if j != checkpoint {
            continue;
        }
        if j < max_bytes / 2 && sparse.buf[4] != HLL_SPARSE {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let d = hll_count(&dense).unwrap_or(0);
        if Some(d) != hll_count(sparse.value()) {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let abserr = (checkpoint as i64 - d as i64).unsigned_abs();
        let mut maxerr = (relerr * 6.0 * checkpoint as f64).ceil() as u64;
        if j == 10 {
            maxerr = 1;
        }
        if abserr > maxerr {
            return Err(format!(
                "TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"
            ));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &[u8]) -> String {
        let mut out = Vec::new();
        let mut p = HLL_HDR_SIZE;
        while p < s.len() {
            let b = s[p];
            if is_zero(b) {
                out.push(format!("z:{}", zero_len(b)));
                p += 1;
            } else if is_xzero(b) {
                out.push(format!("Z:{}", xzero_len(b, at(s, p + 1))));
                p += 2;
            } else {
                out.push(format!("v:{},{}", val_value(b), val_len(b)));
                p += 1;
            }
        }
        out.join(" ")
    }

    fn add(s: &mut Vec<u8>, e: &[u8]) -> i32 {
        hll_add(&mut Work::new(s), e, 3000)
    }

    #[test]
    fn matches_redis_encoding() {
        // Values observed on redis-server 7.0.15 (PFADD + PFDEBUG DECODE / GET).
        let mut s = new_hll();
        assert_eq!(s, b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff");
        assert_eq!(add(&mut s, b"a"), 1);
        assert_eq!(decode(&s), "Z:12711 v:2,1 Z:3672");
        let mut s = new_hll();
        for e in [&b"hello"[..], b"world", b"foo"] {
            assert_eq!(add(&mut s, e), 1);
        }
        assert_eq!(decode(&s), "Z:2742 v:3,1 Z:4605 v:5,1 Z:1867 v:1,1 Z:7167");
        assert_eq!(hll_count(&s), Some(3));
    }

    #[test]
    fn sparse_and_dense_agree() {
        let mut sparse = new_hll();
        let mut dense = sparse_to_dense(&new_hll()).unwrap();
        for i in 0..20_000u32 {
            let e = format!("element:{i}");
            add(&mut sparse, e.as_bytes());
            add(&mut dense, e.as_bytes());
            if i % 997 == 0 {
                assert_eq!(hll_count(&sparse), hll_count(&dense));
            }
        }
        assert_eq!(sparse[4], HLL_DENSE);
        assert_eq!(sparse[HLL_HDR_SIZE..], dense[HLL_HDR_SIZE..]);
        let c = hll_count(&dense).unwrap() as f64;
        assert!((c - 20_000.0).abs() < 20_000.0 * 0.05, "{c}");
        // Register round trip, including the last register.
        let regs = &mut dense[HLL_HDR_SIZE..];
        dense_set(regs, HLL_REGISTERS - 1, 63);
        dense_set(regs, HLL_REGISTERS - 2, 5);
        assert_eq!(dense_get(regs, HLL_REGISTERS - 1), 63);
        assert_eq!(dense_get(regs, HLL_REGISTERS - 2), 5);
    }
}
