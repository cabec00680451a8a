//! The set type: "intset" (a sorted `Vec<i64>`) while every member is a canonical integer and
//! there are at most `set-max-intset-entries` of them, then "hashtable" (a [`Dict`]). Redis 7.0
//! has no listpack sets, and never converts back.

use cinnabar_protocol::parser::parse_i64;

use super::dict::Dict;
use crate::keyspace::SmallBytes;

#[derive(Clone)]
pub enum Set {
    Int(Vec<i64>),
    /// Boxed so that a small (intset) set allocates 24 bytes for its `Set`, not 56.
    Table(Box<Dict<SmallBytes>>),
}

impl Default for Set {
    fn default() -> Self {
        Set::Int(Vec::new())
    }
}

/// A member borrowed from either encoding.
pub enum Member<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Member<'_> {
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Member::Int(n) => itoa::Buffer::new().format(*n).as_bytes().to_vec(),
            Member::Bytes(b) => b.to_vec(),
        }
    }
}

impl Set {
    /// An empty set suited to its first member (Redis's setTypeCreate).
    pub fn for_member(first: &[u8]) -> Set {
        if parse_i64(first).is_some() {
            Set::Int(Vec::new())
        } else {
            Set::Table(Box::default())
        }
    }

    pub fn encoding_name(&self) -> &'static str {
        match self {
            Set::Int(_) => "intset",
            Set::Table(_) => "hashtable",
        }
    }

    pub fn heap_bytes(&self) -> usize {
        match self {
            Set::Int(v) => v.capacity() * 8,
            Set::Table(d) => std::mem::size_of::<Dict<SmallBytes>>() + d.heap_bytes(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Int(v) => v.len(),
            Set::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match self {
            Set::Int(v) => match parse_i64(m) {
                Some(n) => v.binary_search(&n).is_ok(),
                None => false,
            },
            Set::Table(d) => d.contains(m),
        }
    }

    fn convert(&mut self) {
        if let Set::Int(v) = self {
            let mut d = Dict::with_capacity(v.len() + 1);
            let mut b = itoa::Buffer::new();
            for n in v.iter() {
                d.insert_new(SmallBytes::new(b.format(*n).as_bytes()));
            }
            *self = Set::Table(Box::new(d));
        }
    }

    /// Adds `m`; true when new.
    pub fn add(&mut self, m: &[u8], max_intset: usize) -> bool {
        if let Set::Int(v) = self {
            match parse_i64(m) {
                Some(n) => {
                    return match v.binary_search(&n) {
                        Ok(_) => false,
                        Err(pos) => {
                            v.insert(pos, n);
                            if v.len() > max_intset {
                                self.convert();
                            }
                            true
                        }
                    };
                }
                None => self.convert(),
            }
        }
        match self {
            Set::Table(d) => {
                if d.contains(m) {
                    false
                } else {
                    d.insert_new(SmallBytes::new(m));
                    true
                }
            }
            Set::Int(_) => false,
        }
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            Set::Int(v) => match parse_i64(m).map(|n| v.binary_search(&n)) {
                Some(Ok(pos)) => {
                    v.remove(pos);
                    true
                }
                _ => false,
            },
            Set::Table(d) => d.remove(m).is_some(),
        }
    }

    /// Member number `i` (< len), O(1).
    pub fn at(&self, i: usize) -> Member<'_> {
        match self {
            Set::Int(v) => Member::Int(v[i]),
            Set::Table(d) => Member::Bytes(d.at(i).as_bytes()),
        }
    }

    /// Removes and returns member number `i`.
    pub fn remove_at(&mut self, i: usize) -> Vec<u8> {
        match self {
            Set::Int(v) => {
                let n = v.remove(i);
                itoa::Buffer::new().format(n).as_bytes().to_vec()
            }
            Set::Table(d) => d.remove_at(i).as_bytes().to_vec(),
        }
    }

    pub fn for_each(&self, mut f: impl FnMut(Member<'_>)) {
        match self {
            Set::Int(v) => v.iter().for_each(|n| f(Member::Int(*n))),
            Set::Table(d) => d.iter().for_each(|e| f(Member::Bytes(e.as_bytes()))),
        }
    }

    /// All members as owned byte strings.
    pub fn members(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len());
        self.for_each(|m| out.push(m.to_vec()));
        out
    }

    /// One SSCAN step (intsets return everything with cursor 0).
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(Member<'_>)) -> u64 {
        match self {
            Set::Int(_) => {
                self.for_each(f);
                0
            }
            Set::Table(d) => d.scan(cursor, count, |e| f(Member::Bytes(e.as_bytes()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn set_matches_model(ops in proptest::collection::vec((0u8..3, 0u16..60, any::<bool>()), 1..300)) {
            let mut s = Set::Int(Vec::new());
            let mut m = BTreeSet::new();
            for (op, k, text) in ops {
                let v = if text && k % 7 == 0 { format!("x{k}") } else { format!("{k}") }.into_bytes();
                match op {
                    0 | 1 => prop_assert_eq!(s.add(&v, 16), m.insert(v.clone())),
                    _ => prop_assert_eq!(s.remove(&v), m.remove(&v)),
                }
                prop_assert_eq!(s.len(), m.len());
                prop_assert_eq!(s.contains(&v), m.contains(&v));
            }
            let got: BTreeSet<Vec<u8>> = s.members().into_iter().collect();
            prop_assert_eq!(got, m);
        }
    }
}
