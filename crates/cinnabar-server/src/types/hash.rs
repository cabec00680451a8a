//! The hash type: "listpack" (an [`Lp`] of field, value, field, value ... in insertion order)
//! until `hash-max-listpack-entries` / `hash-max-listpack-value` are exceeded, then
//! "hashtable" (a [`Dict`] of (field, value) pairs). Like Redis, never converts back.

use super::dict::Dict;
use super::listpack::Lp;
use crate::keyspace::SmallBytes;

#[derive(Clone)]
pub enum Hash {
    Packed(Lp),
    /// Boxed so that a small hash (the common case) allocates only `size_of::<Lp>()` for its
    /// `Hash` (32 bytes instead of the 56 of an inline `Dict`).
    Table(Box<Dict<(SmallBytes, SmallBytes)>>),
}

/// Conversion thresholds (from the settings snapshot).
#[derive(Clone, Copy, Debug)]
pub struct HashLimits {
    pub max_entries: usize,
    pub max_value: usize,
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Packed(Lp::new())
    }
}

impl Hash {
    pub fn new() -> Hash {
        Hash::default()
    }

    pub fn encoding_name(&self) -> &'static str {
        match self {
            Hash::Packed(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    pub fn heap_bytes(&self) -> usize {
        match self {
            Hash::Packed(l) => l.heap_bytes(),
            Hash::Table(d) => {
                std::mem::size_of::<Dict<(SmallBytes, SmallBytes)>>() + d.heap_bytes()
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Hash::Packed(l) => l.len() / 2,
            Hash::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn packed_find(l: &Lp, field: &[u8]) -> Option<usize> {
        let mut off = 0;
        while off < l.end() {
            if l.get(off) == field {
                return Some(off);
            }
            off = l.next(l.next(off));
        }
        None
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Packed(l) => {
                let off = Self::packed_find(l, field)?;
                Some(l.get(l.next(off)))
            }
            Hash::Table(d) => d.get(field).map(|e| e.1.as_bytes()),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        match self {
            Hash::Packed(l) => Self::packed_find(l, field).is_some(),
            Hash::Table(d) => d.contains(field),
        }
    }

    /// Converts to "hashtable" if an argument is longer than the value limit (Redis checks
    /// the arguments before the write).
    pub fn prepare(&mut self, lens: impl Iterator<Item = usize>, lim: HashLimits) {
        if let Hash::Packed(_) = self {
            let mut too_long = false;
            for n in lens {
                if n > lim.max_value {
                    too_long = true;
                    break;
                }
            }
            if too_long {
                self.convert();
            }
        }
    }

    fn convert(&mut self) {
        if let Hash::Packed(l) = self {
            let mut d = Dict::with_capacity(l.len() / 2);
            let mut it = l.iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                d.insert_new((SmallBytes::new(f), SmallBytes::new(v)));
            }
            *self = Hash::Table(Box::new(d));
        }
    }

    /// Sets `field` to `value`; true when the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], lim: HashLimits) -> bool {
        if let Hash::Packed(_) = self {
            if field.len() > lim.max_value || value.len() > lim.max_value {
                self.convert();
            }
        }
        let is_new = match self {
            Hash::Packed(l) => match Self::packed_find(l, field) {
                Some(off) => {
                    let voff = l.next(off);
                    l.replace(voff, value);
                    false
                }
                None => {
                    l.push_back(field);
                    l.push_back(value);
                    true
                }
            },
            Hash::Table(d) => match d.get_mut(field) {
                Some(e) => {
                    e.1 = SmallBytes::new(value);
                    false
                }
                None => {
                    d.insert_new((SmallBytes::new(field), SmallBytes::new(value)));
                    true
                }
            },
        };
        if let Hash::Packed(l) = self {
            if l.len() / 2 > lim.max_entries {
                self.convert();
            }
        }
        is_new
    }

    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Packed(l) => match Self::packed_find(l, field) {
                Some(off) => {
                    l.remove(off, 2);
                    true
                }
                None => false,
            },
            Hash::Table(d) => d.remove(field).is_some(),
        }
    }

    /// Iterates (field, value) pairs in the encoding's order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        match self {
            Hash::Packed(l) => {
                let mut it = l.iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    f(k, v);
                }
            }
            Hash::Table(d) => {
                for e in d.iter() {
                    f(e.0.as_bytes(), e.1.as_bytes());
                }
            }
        }
    }

    /// Pair number `i` (< len): O(1) for tables, O(i) for listpacks.
    pub fn at(&self, i: usize) -> (&[u8], &[u8]) {
        match self {
            Hash::Packed(l) => {
                let off = l.seek(i * 2).unwrap_or(0);
                (l.get(off), l.get(l.next(off)))
            }
            Hash::Table(d) => {
                let e = d.at(i);
                (e.0.as_bytes(), e.1.as_bytes())
            }
        }
    }

    /// One HSCAN step (listpacks return everything with cursor 0).
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        match self {
            Hash::Packed(_) => {
                self.for_each(f);
                0
            }
            Hash::Table(d) => d.scan(cursor, count, |e| f(e.0.as_bytes(), e.1.as_bytes())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        #[test]
        fn hash_matches_model(ops in proptest::collection::vec((0u8..3, 0u16..40, 0usize..80), 1..300), max_entries in 1usize..20) {
            let lim = HashLimits { max_entries, max_value: 64 };
            let mut h = Hash::new();
            let mut m: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for (op, k, vl) in ops {
                let f = format!("f{k}").into_bytes();
                match op {
                    0 | 1 => {
                        let v = vec![b'v'; vl];
                        prop_assert_eq!(h.set(&f, &v, lim), m.insert(f.clone(), v).is_none());
                    }
                    _ => prop_assert_eq!(h.remove(&f), m.remove(&f).is_some()),
                }
                prop_assert_eq!(h.len(), m.len());
                if m.len() > max_entries { prop_assert_eq!(h.encoding_name(), "hashtable"); }
                prop_assert_eq!(h.get(&f).map(|v| v.to_vec()), m.get(&f).cloned());
            }
            let mut got = BTreeMap::new();
            h.for_each(|k, v| { got.insert(k.to_vec(), v.to_vec()); });
            prop_assert_eq!(got, m);
        }
    }
}
