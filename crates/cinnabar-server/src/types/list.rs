//! The list type: a quicklist — a deque of [`Lp`] nodes, each bounded by
//! `list-max-listpack-size` (negative = bytes per node: -1 4 KB ... -5 64 KB; positive =
//! entries per node). Redis 7.0 reports every list as "quicklist".
//!
//! Index operations walk nodes by their counts (O(nodes) + O(node)), like Redis.

use std::collections::VecDeque;

use super::listpack::{entry_size, Lp};

#[derive(Clone, Default)]
pub struct List {
    nodes: VecDeque<Lp>,
    len: usize,
}

/// Redis's SIZE_SAFETY_LIMIT for count-bounded nodes.
const SIZE_SAFETY_LIMIT: usize = 8192;

/// Whether `node` may take one more entry of `n` bytes under `fill`.
fn fits(node: &Lp, n: usize, fill: i64) -> bool {
    let new_size = node.bytes() + entry_size(n);
    if fill >= 0 {
        let max = fill.max(1) as usize;
        node.len() < max && new_size <= SIZE_SAFETY_LIMIT
    } else {
        let idx = ((-fill) as usize).clamp(1, 5) - 1;
        let limit = [4096usize, 8192, 16384, 32768, 65536][idx];
        new_size <= limit
    }
}

/// A position in the list: node index and byte offset in that node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub node: usize,
    pub off: usize,
}

impl List {
    pub fn new() -> List {
        List::default()
    }

    pub fn encoding_name(&self) -> &'static str {
        "quicklist"
    }

    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Lp>()
            + self.nodes.iter().map(|n| n.heap_bytes()).sum::<usize>()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, v: &[u8], fill: i64) {
        match self.nodes.back_mut() {
            Some(n) if fits(n, v.len(), fill) => n.push_back(v),
            _ => {
                let mut n = Lp::new();
                n.push_back(v);
                self.nodes.push_back(n);
            }
        }
        self.len += 1;
    }

    pub fn push_front(&mut self, v: &[u8], fill: i64) {
        match self.nodes.front_mut() {
            Some(n) if fits(n, v.len(), fill) => n.push_front(v),
            _ => {
                let mut n = Lp::new();
                n.push_back(v);
                self.nodes.push_front(n);
            }
        }
        self.len += 1;
    }

    /// Pops the first element, handing its bytes to `f` before they are removed (no copy);
    /// false when the list is empty.
    pub fn pop_front_with(&mut self, f: impl FnOnce(&[u8])) -> bool {
        let Some(n) = self.nodes.front_mut() else {
            return false;
        };
        f(n.get(0));
        n.remove(0, 1);
        if n.is_empty() {
            self.nodes.pop_front();
        }
        self.len -= 1;
        true
    }

    /// [`Self::pop_front_with`] at the tail.
    pub fn pop_back_with(&mut self, f: impl FnOnce(&[u8])) -> bool {
        let Some(n) = self.nodes.back_mut() else {
            return false;
        };
        let Some(off) = n.last() else {
            return false;
        };
        f(n.get(off));
        n.remove(off, 1);
        if n.is_empty() {
            self.nodes.pop_back();
        }
        self.len -= 1;
        true
    }

    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        let n = self.nodes.front_mut()?;
        let v = n.get(0).to_vec();
        n.remove(0, 1);
        if n.is_empty() {
            self.nodes.pop_front();
        }
        self.len -= 1;
        Some(v)
    }

    pub fn pop_back(&mut self) -> Option<Vec<u8>> {
        let n = self.nodes.back_mut()?;
        let off = n.last()?;
        let v = n.get(off).to_vec();
        n.remove(off, 1);
        if n.is_empty() {
            self.nodes.pop_back();
        }
        self.len -= 1;
        Some(v)
    }

    /// Position of element `idx` (0-based, < len).
    pub fn locate(&self, idx: usize) -> Option<Pos> {
        if idx >= self.len {
            return None;
        }
        if idx < self.len / 2 {
            let mut i = idx;
            for (ni, n) in self.nodes.iter().enumerate() {
                if i < n.len() {
                    return Some(Pos {
                        node: ni,
                        off: n.seek(i)?,
                    });
                }
                i -= n.len();
            }
        } else {
            let mut i = self.len - 1 - idx; // index from the back
            for (ni, n) in self.nodes.iter().enumerate().rev() {
                if i < n.len() {
                    return Some(Pos {
                        node: ni,
                        off: n.seek(n.len() - 1 - i)?,
                    });
                }
                i -= n.len();
            }
        }
        None
    }

    pub fn get_at(&self, p: Pos) -> &[u8] {
        self.nodes[p.node].get(p.off)
    }

    pub fn get(&self, idx: usize) -> Option<&[u8]> {
        self.locate(idx).map(|p| self.get_at(p))
    }

    /// Position after `p` (None at the end).
    pub fn next_pos(&self, p: Pos) -> Option<Pos> {
        let n = &self.nodes[p.node];
        let off = n.next(p.off);
        if off < n.end() {
            return Some(Pos { node: p.node, off });
        }
        if p.node + 1 < self.nodes.len() {
            Some(Pos {
                node: p.node + 1,
                off: 0,
            })
        } else {
            None
        }
    }

    /// Position before `p` (None at the start).
    pub fn prev_pos(&self, p: Pos) -> Option<Pos> {
        if p.off > 0 {
            return Some(Pos {
                node: p.node,
                off: self.nodes[p.node].prev(p.off),
            });
        }
        if p.node == 0 {
            return None;
        }
        let n = &self.nodes[p.node - 1];
        Some(Pos {
            node: p.node - 1,
            off: n.last()?,
        })
    }

    pub fn first_pos(&self) -> Option<Pos> {
        if self.len == 0 {
            None
        } else {
            Some(Pos { node: 0, off: 0 })
        }
    }

    pub fn last_pos(&self) -> Option<Pos> {
        let ni = self.nodes.len().checked_sub(1)?;
        Some(Pos {
            node: ni,
            off: self.nodes[ni].last()?,
        })
    }

    /// Iterates forward over all elements.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + '_ {
        self.nodes.iter().flat_map(|n| n.iter())
    }

    /// Iterates elements `start..=end` (indices already clamped) forward.
    pub fn range(&self, start: usize, end: usize) -> impl Iterator<Item = &[u8]> + '_ {
        let mut pos = if start <= end {
            self.locate(start)
        } else {
            None
        };
        let mut left = if start <= end { end - start + 1 } else { 0 };
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            let p = pos?;
            left -= 1;
            pos = self.next_pos(p);
            Some(self.get_at(p))
        })
    }

    /// Replaces the element at `p`.
    pub fn set_at(&mut self, p: Pos, v: &[u8], fill: i64) {
        let node = &mut self.nodes[p.node];
        node.replace(p.off, v);
        if !fits_whole(node, fill) && node.len() > 1 {
            self.split_node(p.node);
        }
    }

    /// Inserts `v` before (`after == false`) or after the element at `p`.
    pub fn insert_at(&mut self, p: Pos, v: &[u8], after: bool, fill: i64) {
        let node = &mut self.nodes[p.node];
        let off = if after { node.next(p.off) } else { p.off };
        node.insert(off, v);
        self.len += 1;
        if !fits_whole(node, fill) && node.len() > 1 {
            self.split_node(p.node);
        }
    }

    fn split_node(&mut self, ni: usize) {
        let node = &mut self.nodes[ni];
        let half = node.len() / 2;
        let Some(off) = node.seek(half) else { return };
        let n = node.len() - half;
        let tail = node.split_off(off, n);
        self.nodes.insert(ni + 1, tail);
    }

    /// Removes `count` elements from the front.
    pub fn trim_front(&mut self, mut count: usize) {
        count = count.min(self.len);
        self.len -= count;
        while count > 0 {
            let Some(n) = self.nodes.front_mut() else {
                break;
            };
            if n.len() <= count {
                count -= n.len();
                self.nodes.pop_front();
            } else {
                n.remove(0, count);
                count = 0;
            }
        }
    }

    /// Removes `count` elements from the back.
    pub fn trim_back(&mut self, mut count: usize) {
        count = count.min(self.len);
        self.len -= count;
        while count > 0 {
            let Some(n) = self.nodes.back_mut() else {
                break;
            };
            if n.len() <= count {
                count -= n.len();
                self.nodes.pop_back();
            } else {
                let keep = n.len() - count;
                if let Some(off) = n.seek(keep) {
                    let end = n.end();
                    n.remove_span(off, end, count);
                }
                count = 0;
            }
        }
    }

    /// LREM: removes up to `limit` (0 = all) elements equal to `v`, from the tail when
    /// `from_tail`. Returns how many were removed.
    pub fn remove_matching(&mut self, v: &[u8], limit: usize, from_tail: bool) -> usize {
        let mut removed = 0usize;
        let nn = self.nodes.len();
        for k in 0..nn {
            let ni = if from_tail { nn - 1 - k } else { k };
            let node = &mut self.nodes[ni];
            if from_tail {
                let mut off = node.end();
                while off > 0 {
                    if limit != 0 && removed == limit {
                        break;
                    }
                    off = node.prev(off);
                    if node.get(off) == v {
                        node.remove(off, 1);
                        removed += 1;
                    }
                }
            } else {
                let mut off = 0;
                while off < node.end() {
                    if limit != 0 && removed == limit {
                        break;
                    }
                    if node.get(off) == v {
                        node.remove(off, 1);
                        removed += 1;
                    } else {
                        off = node.next(off);
                    }
                }
            }
            if limit != 0 && removed == limit {
                break;
            }
        }
        self.nodes.retain(|n| !n.is_empty());
        self.len -= removed;
        removed
    }
}

fn fits_whole(node: &Lp, fill: i64) -> bool {
    if fill >= 0 {
        node.len() <= (fill.max(1) as usize) && node.bytes() <= SIZE_SAFETY_LIMIT
    } else {
        let idx = ((-fill) as usize).clamp(1, 5) - 1;
        node.bytes() <= [4096usize, 8192, 16384, 32768, 65536][idx]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        PushL(u8, usize),
        PushR(u8, usize),
        PopL,
        PopR,
        Set(usize, u8),
        Insert(usize, u8, bool),
        TrimF(usize),
        TrimB(usize),
        Rem(u8, usize, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<u8>(), 0usize..300).prop_map(|(a, b)| Op::PushL(a % 4, b)),
            (any::<u8>(), 0usize..300).prop_map(|(a, b)| Op::PushR(a % 4, b)),
            Just(Op::PopL),
            Just(Op::PopR),
            (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Op::Set(a, b % 4)),
            (any::<usize>(), any::<u8>(), any::<bool>()).prop_map(|(a, b, c)| Op::Insert(
                a,
                b % 4,
                c
            )),
            (0usize..5).prop_map(Op::TrimF),
            (0usize..5).prop_map(Op::TrimB),
            (any::<u8>(), 0usize..3, any::<bool>()).prop_map(|(a, b, c)| Op::Rem(a % 4, b, c)),
        ]
    }

    fn val(tag: u8, n: usize) -> Vec<u8> {
        vec![b'a' + tag; n % 200]
    }

    proptest! {
        #[test]
        fn list_matches_model(ops in proptest::collection::vec(op(), 1..200), fill in prop_oneof![Just(-1i64), Just(-2), Just(3), Just(1)]) {
            let mut l = List::new();
            let mut m: VecDeque<Vec<u8>> = VecDeque::new();
            for o in ops {
                match o {
                    Op::PushL(t, n) => { l.push_front(&val(t, n), fill); m.push_front(val(t, n)); }
                    Op::PushR(t, n) => { l.push_back(&val(t, n), fill); m.push_back(val(t, n)); }
                    Op::PopL => prop_assert_eq!(l.pop_front(), m.pop_front()),
                    Op::PopR => prop_assert_eq!(l.pop_back(), m.pop_back()),
                    Op::Set(i, t) => if !m.is_empty() {
                        let i = i % m.len();
                        let p = l.locate(i).unwrap();
                        l.set_at(p, &val(t, i), fill);
                        m[i] = val(t, i);
                    },
                    Op::Insert(i, t, after) => if !m.is_empty() {
                        let i = i % m.len();
                        let p = l.locate(i).unwrap();
                        l.insert_at(p, &val(t, 3), after, fill);
                        m.insert(if after { i + 1 } else { i }, val(t, 3));
                    },
                    Op::TrimF(n) => { l.trim_front(n); for _ in 0..n.min(m.len()) { m.pop_front(); } }
                    Op::TrimB(n) => { l.trim_back(n); for _ in 0..n.min(m.len()) { m.pop_back(); } }
                    Op::Rem(t, lim, tail) => {
                        let target = val(t, 3);
                        let got = l.remove_matching(&target, lim, tail);
                        let mut removed = 0;
                        if tail {
                            let mut i = m.len();
                            while i > 0 { i -= 1; if (lim == 0 || removed < lim) && m[i] == target { m.remove(i); removed += 1; } }
                        } else {
                            let mut i = 0;
                            while i < m.len() { if (lim == 0 || removed < lim) && m[i] == target { m.remove(i); removed += 1; } else { i += 1; } }
                        }
                        prop_assert_eq!(got, removed);
                    }
                }
                prop_assert_eq!(l.len(), m.len());
                let a: Vec<Vec<u8>> = l.iter().map(|s| s.to_vec()).collect();
                let b: Vec<Vec<u8>> = m.iter().cloned().collect();
                prop_assert_eq!(&a, &b);
                let r: Vec<Vec<u8>> = l.iter().rev().map(|s| s.to_vec()).collect();
                let mut b2 = b.clone(); b2.reverse();
                prop_assert_eq!(r, b2);
                if !m.is_empty() {
                    let mid = m.len() / 3;
                    prop_assert_eq!(l.get(mid).map(|s| s.to_vec()), Some(m[mid].clone()));
                    let rg: Vec<Vec<u8>> = l.range(mid, m.len() - 1).map(|s| s.to_vec()).collect();
                    prop_assert_eq!(rg, b[mid..].to_vec());
                }
            }
        }
    }
}
