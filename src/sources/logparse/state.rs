//! A map with a hard size cap, for the formats that join a login to an earlier line.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// How many half-finished sessions we remember per map. A busy server has far fewer open
/// at once; a hostile log that opens sessions and never finishes them only pushes out the
/// oldest.
pub(crate) const CAP: usize = 4096;

/// Insertion-ordered map that forgets its oldest entry when full.
#[derive(Debug)]
pub(crate) struct Bounded<K, V> {
    map: HashMap<K, (V, u64)>,
    /// Keys in insertion order with the sequence number they were inserted under; an entry
    /// whose number no longer matches the map's was replaced or removed and is skipped.
    order: VecDeque<(K, u64)>,
    seq: u64,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
            cap: cap.max(1),
        }
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        self.seq += 1;
        self.map.insert(key.clone(), (value, self.seq));
        self.order.push_back((key, self.seq));
        while self.map.len() > self.cap {
            self.evict_oldest();
        }
        // Removals leave stale keys in `order`; sweep them so it stays bounded too.
        if self.order.len() > 2 * self.cap {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|(_, cur)| cur == s));
        }
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key).map(|(v, _)| v)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub(crate) fn order_len(&self) -> usize {
        self.order.len()
    }

    fn evict_oldest(&mut self) {
        while let Some((k, s)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|(_, cur)| *cur == s) {
                self.map.remove(&k);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_map_forgets_the_oldest_entry() {
        let mut m = Bounded::new(3);
        for i in 0..3 {
            m.insert(i, i * 10);
        }
        m.insert(3, 30);
        assert_eq!(m.len(), 3);
        assert_eq!(m.remove(&0), None, "oldest evicted");
        assert_eq!(m.remove(&3), Some(30));
    }

    #[test]
    fn replacing_a_key_makes_it_young_again() {
        let mut m = Bounded::new(2);
        m.insert("a", 1);
        m.insert("b", 2);
        m.insert("a", 3);
        m.insert("c", 4);
        assert_eq!(m.remove(&"b"), None);
        assert_eq!(m.remove(&"a"), Some(3));
    }

    #[test]
    fn churn_never_grows_memory() {
        let mut m = Bounded::new(CAP);
        for i in 0..100_000u32 {
            m.insert(i, i);
            if i % 3 == 0 {
                m.remove(&i);
            }
        }
        assert!(m.len() <= CAP);
        assert!(m.order_len() <= 2 * CAP + 1);
    }
}
