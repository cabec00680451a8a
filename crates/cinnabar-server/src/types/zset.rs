//! The sorted-set type: "listpack" (an [`Lp`] of member, score pairs sorted by (score,
//! member); the score is stored as its 8 little-endian bytes) until
//! `zset-max-listpack-entries` / `zset-max-listpack-value` are exceeded, then "skiplist": a
//! Redis-style skiplist with spans (O(log n) rank operations) whose nodes live in a `Vec`
//! arena addressed by `u32` indices, plus a `HashTable<u32>` from member to node.
//!
//! Both encodings answer the same rank-based interface: score and lex ranges are turned into
//! rank intervals (`count_before_*`), then iterated or removed by rank.

use std::cmp::Ordering;

use hashbrown::HashTable;
use rand::Rng;
use smallvec::{smallvec, SmallVec};

use super::listpack::Lp;
use crate::keyspace::{key_hash, SmallBytes};

/// Conversion thresholds (from the settings snapshot).
#[derive(Clone, Copy, Debug)]
pub struct ZLimits {
    pub max_entries: usize,
    pub max_value: usize,
}

/// Lexicographic range bound (ZRANGEBYLEX syntax).
#[derive(Clone, Debug, PartialEq)]
pub enum LexBound {
    NegInf,
    PosInf,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

#[inline]
fn pair_lt(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> bool {
    s1 < s2 || (s1 == s2 && m1 < m2)
}

// ---------------------------------------------------------------------------------------
// Skiplist

const MAX_LEVEL: usize = 32;
const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Level {
    fwd: u32,
    span: u32,
}

#[derive(Clone)]
struct Node {
    ele: SmallBytes,
    score: f64,
    back: u32,
    lv: SmallVec<[Level; 2]>,
}

#[derive(Clone)]
pub struct SkipList {
    nodes: Vec<Node>,
    free: Vec<u32>,
    tail: u32,
    len: usize,
    level: usize,
    dict: HashTable<u32>,
}

fn random_level() -> usize {
    let mut rng = rand::thread_rng();
    let mut l = 1;
    while l < MAX_LEVEL && rng.gen::<u32>() & 0xFFFF < 0xFFFF / 4 {
        l += 1;
    }
    l
}

impl Default for SkipList {
    fn default() -> Self {
        SkipList {
            nodes: vec![Node {
                ele: SmallBytes::new(b""),
                score: 0.0,
                back: NIL,
                lv: smallvec![Level { fwd: NIL, span: 0 }; MAX_LEVEL],
            }],
            free: Vec::new(),
            tail: NIL,
            len: 0,
            level: 1,
            dict: HashTable::new(),
        }
    }
}

impl SkipList {
    fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.free.capacity() * 4
            + self.dict.capacity() * 5
            + self
                .nodes
                .iter()
                .map(|n| n.ele.heap_bytes() + if n.lv.spilled() { n.lv.len() * 8 } else { 0 })
                .sum::<usize>()
    }

    #[inline]
    fn fwd(&self, x: u32, i: usize) -> u32 {
        self.nodes[x as usize].lv[i].fwd
    }

    fn find(&self, ele: &[u8]) -> Option<u32> {
        let h = key_hash(ele);
        let nodes = &self.nodes;
        self.dict
            .find(h, |&i| nodes[i as usize].ele.as_bytes() == ele)
            .copied()
    }

    fn score(&self, ele: &[u8]) -> Option<f64> {
        self.find(ele).map(|i| self.nodes[i as usize].score)
    }

    fn alloc(&mut self, n: Node) -> u32 {
        if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = n;
            i
        } else {
            if self.nodes.len() == self.nodes.capacity() {
                // Grow by 1.5x: large sorted sets are memory-bound.
                let extra = (self.nodes.len() / 2).max(4);
                self.nodes.reserve_exact(extra);
            }
            self.nodes.push(n);
            (self.nodes.len() - 1) as u32
        }
    }

    /// Inserts a member known to be absent.
    fn insert(&mut self, score: f64, ele: &[u8]) {
        let mut update = [0u32; MAX_LEVEL];
        let mut rank = [0usize; MAX_LEVEL];
        let mut x = 0u32;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let f = self.fwd(x, i);
                if f != NIL {
                    let fnode = &self.nodes[f as usize];
                    if pair_lt(fnode.score, fnode.ele.as_bytes(), score, ele) {
                        rank[i] += self.nodes[x as usize].lv[i].span as usize;
                        x = f;
                        continue;
                    }
                }
                break;
            }
            update[i] = x;
        }
        let level = random_level();
        if level > self.level {
            for i in self.level..level {
                rank[i] = 0;
                update[i] = 0;
                self.nodes[0].lv[i].span = self.len as u32;
            }
            self.level = level;
        }
        let new = self.alloc(Node {
            ele: SmallBytes::new(ele),
            score,
            back: NIL,
            lv: smallvec![Level { fwd: NIL, span: 0 }; level],
        });
        for i in 0..level {
            let u = update[i] as usize;
            let ufwd = self.nodes[u].lv[i].fwd;
            let uspan = self.nodes[u].lv[i].span as usize;
            let d = rank[0] - rank[i];
            self.nodes[new as usize].lv[i] = Level {
                fwd: ufwd,
                span: (uspan - d) as u32,
            };
            self.nodes[u].lv[i] = Level {
                fwd: new,
                span: (d + 1) as u32,
            };
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(level) {
            self.nodes[u as usize].lv[i].span += 1;
        }
        self.nodes[new as usize].back = if update[0] == 0 { NIL } else { update[0] };
        let f = self.fwd(new, 0);
        if f != NIL {
            self.nodes[f as usize].back = new;
        } else {
            self.tail = new;
        }
        self.len += 1;
        let h = key_hash(ele);
        let nodes = &self.nodes;
        self.dict
            .insert_unique(h, new, |&i| key_hash(nodes[i as usize].ele.as_bytes()));
    }

    /// Removes `ele` (with its current `score`) from the list and the dict.
    fn delete(&mut self, score: f64, ele: &[u8]) -> bool {
        let mut update = [0u32; MAX_LEVEL];
        let mut x = 0u32;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f != NIL {
                    let fnode = &self.nodes[f as usize];
                    if pair_lt(fnode.score, fnode.ele.as_bytes(), score, ele) {
                        x = f;
                        continue;
                    }
                }
                break;
            }
            update[i] = x;
        }
        let x = self.fwd(x, 0);
        if x == NIL {
            return false;
        }
        {
            let n = &self.nodes[x as usize];
            if n.score != score || n.ele.as_bytes() != ele {
                return false;
            }
        }
        for (i, &u) in update.iter().enumerate().take(self.level) {
            let u = u as usize;
            if self.nodes[u].lv[i].fwd == x {
                let xl = self.nodes[x as usize].lv[i];
                self.nodes[u].lv[i].span += xl.span;
                self.nodes[u].lv[i].span -= 1;
                self.nodes[u].lv[i].fwd = xl.fwd;
            } else {
                self.nodes[u].lv[i].span -= 1;
            }
        }
        let f = self.fwd(x, 0);
        let back = self.nodes[x as usize].back;
        if f != NIL {
            self.nodes[f as usize].back = back;
        } else {
            self.tail = back;
        }
        while self.level > 1 && self.nodes[0].lv[self.level - 1].fwd == NIL {
            self.level -= 1;
        }
        self.len -= 1;
        let h = key_hash(ele);
        if let Ok(e) = self.dict.find_entry(h, |&j| j == x) {
            e.remove();
        }
        let n = &mut self.nodes[x as usize];
        n.ele = SmallBytes::new(b"");
        n.lv = SmallVec::new();
        self.free.push(x);
        if self.len == 0 {
            *self = SkipList::default();
        }
        true
    }

    /// Number of elements for which `before(score, member)` holds, assuming it is monotone
    /// (true for a prefix of the ordering).
    fn count_before(&self, before: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut x = 0u32;
        let mut rank = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f != NIL {
                    let n = &self.nodes[f as usize];
                    if before(n.score, n.ele.as_bytes()) {
                        rank += self.nodes[x as usize].lv[i].span as usize;
                        x = f;
                        continue;
                    }
                }
                break;
            }
        }
        rank
    }

    /// Node at 0-based rank `r`.
    fn at_rank(&self, r: usize) -> u32 {
        let target = r + 1;
        let mut x = 0u32;
        let mut traversed = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                let span = self.nodes[x as usize].lv[i].span as usize;
                if f != NIL && traversed + span <= target {
                    traversed += span;
                    x = f;
                    continue;
                }
                break;
            }
            if traversed == target {
                return x;
            }
        }
        NIL
    }
}

// ---------------------------------------------------------------------------------------
// The sorted set

#[derive(Clone)]
pub enum ZSet {
    Packed(Lp),
    Skip(Box<SkipList>),
}

#[inline]
fn score_of(b: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    if b.len() == 8 {
        a.copy_from_slice(b);
    }
    f64::from_le_bytes(a)
}

impl ZSet {
    /// An empty set for a first member of `first_len` bytes (Redis's ZADD creation rule).
    pub fn new_for(first_len: usize, lim: ZLimits) -> ZSet {
        if lim.max_entries == 0 || first_len > lim.max_value {
            ZSet::Skip(Box::default())
        } else {
            ZSet::Packed(Lp::new())
        }
    }

    /// A set built from `pairs` with Redis's "convert to listpack if needed" rule for stored
    /// results (ZUNIONSTORE, ZRANGESTORE, ...).
    pub fn from_pairs(pairs: Vec<(Vec<u8>, f64)>, lim: ZLimits) -> ZSet {
        let maxlen = pairs.iter().map(|p| p.0.len()).max().unwrap_or(0);
        let mut z = if pairs.len() <= lim.max_entries && maxlen <= lim.max_value {
            ZSet::Packed(Lp::new())
        } else {
            ZSet::Skip(Box::default())
        };
        let unlimited = ZLimits {
            max_entries: usize::MAX,
            max_value: usize::MAX,
        };
        let mut sorted = pairs;
        sorted.sort_by(|a, b| {
            a.1.partial_cmp(&b.1)
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.0.cmp(&b.0))
        });
        match &mut z {
            ZSet::Packed(l) => {
                for (m, s) in &sorted {
                    let s = if *s == 0.0 { 0.0 } else { *s };
                    l.push_back(m);
                    l.push_back(&s.to_le_bytes());
                }
            }
            ZSet::Skip(_) => {
                for (m, s) in &sorted {
                    z.add(m, *s, unlimited);
                }
            }
        }
        z
    }

    pub fn encoding_name(&self) -> &'static str {
        match self {
            ZSet::Packed(_) => "listpack",
            ZSet::Skip(_) => "skiplist",
        }
    }

    pub fn heap_bytes(&self) -> usize {
        match self {
            ZSet::Packed(l) => l.heap_bytes(),
            ZSet::Skip(s) => std::mem::size_of::<SkipList>() + s.heap_bytes(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ZSet::Packed(l) => l.len() / 2,
            ZSet::Skip(s) => s.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn packed_find(l: &Lp, m: &[u8]) -> Option<(usize, f64)> {
        let mut off = 0;
        while off < l.end() {
            let soff = l.next(off);
            if l.get(off) == m {
                return Some((off, score_of(l.get(soff))));
            }
            off = l.next(soff);
        }
        None
    }

    pub fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            ZSet::Packed(l) => Self::packed_find(l, m).map(|x| x.1),
            ZSet::Skip(s) => s.score(m),
        }
    }

    fn convert(&mut self) {
        if let ZSet::Packed(l) = self {
            let mut s = Box::<SkipList>::default();
            let mut it = l.iter();
            while let (Some(m), Some(sc)) = (it.next(), it.next()) {
                s.insert(score_of(sc), m);
            }
            *self = ZSet::Skip(s);
        }
    }

    /// Sets the score of `m` (inserting it when absent); true when it was new.
    pub fn add(&mut self, m: &[u8], score: f64, lim: ZLimits) -> bool {
        let old = self.score(m);
        if let Some(o) = old {
            if o == score {
                return false;
            }
            self.remove(m);
        } else if let ZSet::Packed(l) = self {
            if l.len() / 2 + 1 > lim.max_entries || m.len() > lim.max_value {
                self.convert();
            }
        }
        match self {
            ZSet::Packed(l) => {
                let mut off = 0;
                while off < l.end() {
                    let soff = l.next(off);
                    if pair_lt(score, m, score_of(l.get(soff)), l.get(off)) {
                        break;
                    }
                    off = l.next(soff);
                }
                // Listpacks store scores as text where "-0" reads back as 0 (Redis's d2string).
                let score = if score == 0.0 { 0.0 } else { score };
                l.insert(off, &score.to_le_bytes());
                l.insert(off, m);
            }
            ZSet::Skip(s) => s.insert(score, m),
        }
        old.is_none()
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            ZSet::Packed(l) => match Self::packed_find(l, m) {
                Some((off, _)) => {
                    l.remove(off, 2);
                    true
                }
                None => false,
            },
            ZSet::Skip(s) => match s.score(m) {
                Some(sc) => s.delete(sc, m),
                None => false,
            },
        }
    }

    /// 0-based ascending rank of `m`.
    pub fn rank(&self, m: &[u8]) -> Option<usize> {
        match self {
            ZSet::Packed(l) => {
                let mut off = 0;
                let mut r = 0;
                while off < l.end() {
                    if l.get(off) == m {
                        return Some(r);
                    }
                    off = l.next(l.next(off));
                    r += 1;
                }
                None
            }
            ZSet::Skip(s) => {
                let sc = s.score(m)?;
                Some(s.count_before(|s2, m2| pair_lt(s2, m2, sc, m)))
            }
        }
    }

    fn count_before(&self, before: impl Fn(f64, &[u8]) -> bool) -> usize {
        match self {
            ZSet::Packed(l) => {
                let mut it = l.iter();
                let mut n = 0;
                while let (Some(m), Some(sc)) = (it.next(), it.next()) {
                    if !before(score_of(sc), m) {
                        break;
                    }
                    n += 1;
                }
                n
            }
            ZSet::Skip(s) => s.count_before(before),
        }
    }

    /// Rank interval [lo, hi) of scores in the range (min, max with exclusivity flags).
    pub fn score_range(&self, min: f64, minex: bool, max: f64, maxex: bool) -> (usize, usize) {
        let lo = if minex {
            self.count_before(|s, _| s <= min)
        } else {
            self.count_before(|s, _| s < min)
        };
        let hi = if maxex {
            self.count_before(|s, _| s < max)
        } else {
            self.count_before(|s, _| s <= max)
        };
        (lo, hi.max(lo))
    }

    /// Rank interval [lo, hi) of members in the lex range.
    pub fn lex_range(&self, min: &LexBound, max: &LexBound) -> (usize, usize) {
        let n = self.len();
        let lo = match min {
            LexBound::NegInf => 0,
            LexBound::PosInf => n,
            LexBound::Incl(v) => self.count_before(|_, m| m < v.as_slice()),
            LexBound::Excl(v) => self.count_before(|_, m| m <= v.as_slice()),
        };
        let hi = match max {
            LexBound::NegInf => 0,
            LexBound::PosInf => n,
            LexBound::Incl(v) => self.count_before(|_, m| m <= v.as_slice()),
            LexBound::Excl(v) => self.count_before(|_, m| m < v.as_slice()),
        };
        (lo, hi.max(lo))
    }

    /// Visits ranks `start..end` (ascending ranks), in ascending order or, when `rev`, from
    /// `end - 1` down to `start`. `f` returns false to stop.
    pub fn for_ranks(
        &self,
        start: usize,
        end: usize,
        rev: bool,
        mut f: impl FnMut(&[u8], f64) -> bool,
    ) {
        let end = end.min(self.len());
        if start >= end {
            return;
        }
        match self {
            ZSet::Packed(l) => {
                if !rev {
                    let Some(mut off) = l.seek(start * 2) else {
                        return;
                    };
                    for _ in start..end {
                        let soff = l.next(off);
                        if !f(l.get(off), score_of(l.get(soff))) {
                            return;
                        }
                        off = l.next(soff);
                    }
                } else {
                    let Some(mut off) = l.seek((end - 1) * 2) else {
                        return;
                    };
                    for k in (start..end).rev() {
                        let soff = l.next(off);
                        if !f(l.get(off), score_of(l.get(soff))) {
                            return;
                        }
                        if k > start {
                            off = l.prev(l.prev(off));
                        }
                    }
                }
            }
            ZSet::Skip(s) => {
                let mut x = s.at_rank(if rev { end - 1 } else { start });
                for _ in start..end {
                    if x == NIL {
                        return;
                    }
                    let n = &s.nodes[x as usize];
                    if !f(n.ele.as_bytes(), n.score) {
                        return;
                    }
                    x = if rev { n.back } else { n.lv[0].fwd };
                }
            }
        }
    }

    /// Collects ranks `start..end` as owned pairs.
    pub fn collect_ranks(&self, start: usize, end: usize, rev: bool) -> Vec<(Vec<u8>, f64)> {
        let mut v = Vec::with_capacity(end.saturating_sub(start).min(self.len()));
        self.for_ranks(start, end, rev, |m, s| {
            v.push((m.to_vec(), s));
            true
        });
        v
    }

    /// Removes ranks `start..end`; returns how many were removed.
    pub fn remove_ranks(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        match self {
            ZSet::Packed(l) => {
                if let Some(off) = l.seek(start * 2) {
                    let to = l.seek(end * 2).unwrap_or(l.end());
                    l.remove_span(off, to, (end - start) * 2);
                }
            }
            ZSet::Skip(_) => {
                for (m, s) in self.collect_ranks(start, end, false) {
                    if let ZSet::Skip(sl) = self {
                        sl.delete(s, &m);
                    }
                }
            }
        }
        end - start
    }

    /// One ZSCAN step. A listpack is visited whole (cursor 0, as Redis does); a skiplist by
    /// node slot, descending from `cursor` (0 starts): a member keeps its slot for life
    /// (freed slots are reused, never moved), so every member present for the whole scan is
    /// returned. Visits up to `count` members (and at most 10×`count` free slots) and
    /// returns the next cursor, 0 when done.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], f64)) -> u64 {
        let ZSet::Skip(sl) = self else {
            self.for_each(f);
            return 0;
        };
        let len = sl.nodes.len();
        let mut pos = if cursor == 0 || cursor as usize > len {
            len
        } else {
            cursor as usize
        };
        let (mut visited, mut empty) = (0usize, 0usize);
        let count = count.max(1);
        // Slot 0 is the header.
        while pos > 1 && visited < count && empty < count.saturating_mul(10) {
            pos -= 1;
            let n = &sl.nodes[pos];
            if n.lv.is_empty() {
                empty += 1;
                continue;
            }
            f(n.ele.as_bytes(), n.score);
            visited += 1;
        }
        if pos <= 1 {
            0
        } else {
            pos as u64
        }
    }

    /// Visits every (member, score) in ascending order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], f64)) {
        self.for_ranks(0, self.len(), false, |m, s| {
            f(m, s);
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn model_sorted(m: &BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
        let mut v: Vec<(Vec<u8>, f64)> = m.iter().map(|(k, s)| (k.clone(), *s)).collect();
        v.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0)));
        v
    }

    proptest! {
        #[test]
        fn zset_matches_model(ops in proptest::collection::vec((0u8..4, 0u16..80, -20i32..20), 1..400), max_entries in 0usize..40) {
            let lim = ZLimits { max_entries, max_value: 64 };
            let mut z = ZSet::new_for(3, lim);
            let mut m: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
            for (op, k, sc) in ops {
                let key = format!("m{k}").into_bytes();
                let score = sc as f64 / 2.0;
                match op {
                    0 | 1 => prop_assert_eq!(z.add(&key, score, lim), m.insert(key.clone(), score).is_none()),
                    2 => prop_assert_eq!(z.remove(&key), m.remove(&key).is_some()),
                    _ => {
                        let lo = (k as usize) % (m.len() + 1);
                        let n = z.remove_ranks(lo, lo + 3);
                        let sorted = model_sorted(&m);
                        let gone: Vec<_> = sorted.iter().skip(lo).take(3).collect();
                        prop_assert_eq!(n, gone.len());
                        for (g, _) in gone { m.remove(g); }
                    }
                }
                prop_assert_eq!(z.len(), m.len());
                if m.len() > max_entries { prop_assert_eq!(z.encoding_name(), "skiplist"); }
                let sorted = model_sorted(&m);
                prop_assert_eq!(z.collect_ranks(0, usize::MAX, false), sorted.clone());
                let mut rev = sorted.clone(); rev.reverse();
                prop_assert_eq!(z.collect_ranks(0, usize::MAX, true), rev);
                for (i, (mm, s)) in sorted.iter().enumerate() {
                    prop_assert_eq!(z.rank(mm), Some(i));
                    prop_assert_eq!(z.score(mm), Some(*s));
                }
                let (lo, hi) = z.score_range(-2.0, false, 3.0, true);
                let want: Vec<_> = sorted.iter().filter(|p| p.1 >= -2.0 && p.1 < 3.0).cloned().collect();
                prop_assert_eq!(z.collect_ranks(lo, hi, false), want);
                if sorted.len() > 2 {
                    prop_assert_eq!(z.collect_ranks(1, 2, false), sorted[1..2].to_vec());
                    prop_assert_eq!(z.collect_ranks(1, 3, true), vec![sorted[2].clone(), sorted[1].clone()]);
                }
            }
        }

        /// ZSCAN's guarantee on a skiplist: a member present from the first call to the last
        /// is returned (with its score), whatever is added and removed between the calls.
        #[test]
        fn skiplist_scan_returns_every_member_present_throughout(
            initial in 1u16..300,
            ops in proptest::collection::vec((any::<bool>(), 0u16..400), 0..300),
            count in 1usize..20,
        ) {
            let lim = ZLimits { max_entries: 0, max_value: 64 };
            let mut z = ZSet::new_for(3, lim);
            for k in 0..initial {
                z.add(format!("m{k}").as_bytes(), k as f64, lim);
            }
            let mut always: std::collections::BTreeSet<Vec<u8>> =
                (0..initial).map(|k| format!("m{k}").into_bytes()).collect();
            let mut seen: std::collections::BTreeSet<Vec<u8>> = Default::default();
            let mut cursor = 0u64;
            let mut ops = ops.into_iter();
            let mut calls = 0;
            loop {
                cursor = z.scan(cursor, count, |m, s| {
                    assert_eq!(format!("m{}", s as u64).as_bytes(), m);
                    seen.insert(m.to_vec());
                });
                calls += 1;
                prop_assert!(calls < 100_000, "the scan never ends");
                if cursor == 0 {
                    break;
                }
                // Between two calls: a few adds and removes.
                for _ in 0..3 {
                    if let Some((add, k)) = ops.next() {
                        let m = format!("m{k}").into_bytes();
                        if add {
                            z.add(&m, k as f64, lim);
                        } else if z.remove(&m) {
                            always.remove(&m);
                        }
                    }
                }
            }
            for m in &always {
                prop_assert!(seen.contains(m), "{} present throughout but not returned", String::from_utf8_lossy(m));
            }
        }
    }
}
