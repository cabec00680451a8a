//! `Dict`: the "hashtable" encoding of hashes and sets — a dense `Vec` of entries plus a
//! `hashbrown::HashTable<u32>` of indices into it. Dense storage gives O(1) uniform random
//! picks (SPOP, SRANDMEMBER, HRANDFIELD) and a simple SCAN cursor: entries are visited by
//! descending index, and removal moves the *last* entry into the hole, so an entry present
//! for a whole scan is never skipped (it can only move from an already-visited high index to
//! an unvisited low one, which at worst reports it twice — allowed by SCAN's contract).

use hashbrown::HashTable;

use crate::keyspace::{key_hash, SmallBytes};

/// Something stored in a [`Dict`], identified by a byte-string key.
pub trait DictEntry {
    fn key(&self) -> &[u8];
    fn heap(&self) -> usize;
}

impl DictEntry for SmallBytes {
    #[inline]
    fn key(&self) -> &[u8] {
        self.as_bytes()
    }
    fn heap(&self) -> usize {
        self.heap_bytes()
    }
}

impl DictEntry for (SmallBytes, SmallBytes) {
    #[inline]
    fn key(&self) -> &[u8] {
        self.0.as_bytes()
    }
    fn heap(&self) -> usize {
        self.0.heap_bytes() + self.1.heap_bytes()
    }
}

#[derive(Clone)]
pub struct Dict<E> {
    entries: Vec<E>,
    table: HashTable<u32>,
}

impl<E> Default for Dict<E> {
    fn default() -> Self {
        Dict {
            entries: Vec::new(),
            table: HashTable::new(),
        }
    }
}

impl<E: DictEntry> Dict<E> {
    pub fn with_capacity(n: usize) -> Self {
        Dict {
            entries: Vec::with_capacity(n),
            table: HashTable::with_capacity(n),
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<E>()
            + self.table.capacity() * 5
            + self.entries.iter().map(|e| e.heap()).sum::<usize>()
    }

    pub fn find(&self, key: &[u8]) -> Option<usize> {
        let h = key_hash(key);
        let entries = &self.entries;
        self.table
            .find(h, |&i| entries[i as usize].key() == key)
            .map(|&i| i as usize)
    }

    pub fn get(&self, key: &[u8]) -> Option<&E> {
        self.find(key).map(|i| &self.entries[i])
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut E> {
        let i = self.find(key)?;
        Some(&mut self.entries[i])
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// Inserts an entry whose key is known to be absent.
    pub fn insert_new(&mut self, e: E) {
        let h = key_hash(e.key());
        let idx = self.entries.len() as u32;
        self.entries.push(e);
        let entries = &self.entries;
        self.table
            .insert_unique(h, idx, |&i| key_hash(entries[i as usize].key()));
    }

    /// Removes the entry with `key`, returning it.
    pub fn remove(&mut self, key: &[u8]) -> Option<E> {
        let i = self.find(key)?;
        Some(self.remove_at(i))
    }

    /// Removes entry number `i` (moving the last entry into its place).
    pub fn remove_at(&mut self, i: usize) -> E {
        let h = key_hash(self.entries[i].key());
        let entries = &self.entries;
        if let Ok(b) = self.table.find_entry(h, |&j| j as usize == i) {
            b.remove();
        }
        let last = self.entries.len() - 1;
        if i != last {
            let hl = key_hash(self.entries[last].key());
            if let Some(slot) = self.table.find_mut(hl, |&j| j as usize == last) {
                *slot = i as u32;
            }
        }
        let _ = entries;
        let e = self.entries.swap_remove(i);
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
            let entries = &self.entries;
            self.table
                .shrink_to(entries.len() * 2, |&j| key_hash(entries[j as usize].key()));
        }
        e
    }

    #[inline]
    pub fn at(&self, i: usize) -> &E {
        &self.entries[i]
    }

    pub fn iter(&self) -> std::slice::Iter<'_, E> {
        self.entries.iter()
    }

    /// One SCAN step: cursor 0 starts; visits up to `count` entries by descending index and
    /// returns the next cursor (0 = done).
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&E)) -> u64 {
        let len = self.entries.len();
        let mut pos = if cursor == 0 || cursor as usize > len {
            len
        } else {
            cursor as usize
        };
        let mut n = 0;
        while pos > 0 && n < count {
            pos -= 1;
            f(&self.entries[pos]);
            n += 1;
        }
        pos as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn dict_matches_model(ops in proptest::collection::vec((any::<bool>(), 0u16..200), 1..400)) {
            let mut d: Dict<SmallBytes> = Dict::default();
            let mut m = BTreeSet::new();
            for (add, k) in ops {
                let key = format!("k{k}");
                if add {
                    if !d.contains(key.as_bytes()) { d.insert_new(SmallBytes::new(key.as_bytes())); }
                    m.insert(key);
                } else {
                    prop_assert_eq!(d.remove(key.as_bytes()).is_some(), m.remove(&key));
                }
                prop_assert_eq!(d.len(), m.len());
            }
            let got: BTreeSet<String> = d.iter().map(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()).collect();
            prop_assert_eq!(&got, &m);
            for k in &m { prop_assert!(d.contains(k.as_bytes())); }
        }

        #[test]
        fn scan_never_misses(keys in 10u16..300, step in 1usize..20, dels in proptest::collection::vec(0u16..300, 0..50)) {
            let mut d: Dict<SmallBytes> = Dict::default();
            for k in 0..keys { d.insert_new(SmallBytes::new(format!("{k}").as_bytes())); }
            let mut seen = BTreeSet::new();
            let mut deleted = BTreeSet::new();
            let mut cursor = 0u64;
            let mut di = dels.into_iter();
            loop {
                cursor = d.scan(cursor, step, |e| { seen.insert(e.as_bytes().to_vec()); });
                if let Some(x) = di.next() { let k = format!("{x}"); if d.remove(k.as_bytes()).is_some() { deleted.insert(k.into_bytes()); } }
                if cursor == 0 { break; }
            }
            for k in 0..keys {
                let k = format!("{k}").into_bytes();
                if !deleted.contains(&k) { prop_assert!(seen.contains(&k)); }
            }
        }
    }
}
