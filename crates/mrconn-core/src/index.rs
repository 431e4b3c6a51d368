//! Lists whose members leave in O(1), in any order: each member keeps its
//! slot, and a removal moves the last member into the hole. Thousands of
//! drains may end in one burst of replies, and `Expand` takes connections
//! back by endpoint one at a time: neither may scan.

use std::collections::HashMap;
use std::hash::Hash;

/// A list of members that each know their slot (kept by the caller).
#[derive(Debug)]
pub struct SlotList<C> {
    members: Vec<C>,
}

impl<C> Default for SlotList<C> {
    fn default() -> Self {
        SlotList {
            members: Vec::new(),
        }
    }
}

/// A member that a removal moved, and its new slot, for the caller to record.
pub type Moved<C> = Option<(C, usize)>;

impl<C: Copy + PartialEq + std::fmt::Debug> SlotList<C> {
    /// Adds `c`; returns its slot.
    pub fn push(&mut self, c: C) -> usize {
        self.members.push(c);
        self.members.len() - 1
    }

    /// Removes `c`, at `slot`. Returns the member moved into that slot.
    pub fn remove(&mut self, c: C, slot: usize) -> Moved<C> {
        debug_assert_eq!(self.members.get(slot), Some(&c), "a stale slot");
        if self.members.get(slot) != Some(&c) {
            return None;
        }
        self.members.swap_remove(slot);
        self.members.get(slot).map(|&moved| (moved, slot))
    }

    /// Room for `n` more members.
    pub fn reserve(&mut self, n: usize) {
        self.members.reserve(n);
    }

    /// The last member.
    pub fn last(&self) -> Option<C> {
        self.members.last().copied()
    }

    /// The members, oldest first (until a removal moves one).
    pub fn as_slice(&self) -> &[C] {
        &self.members
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// Members grouped by key (an endpoint's hash), each in the [`SlotList`] of
/// its key. A key without members takes no memory.
#[derive(Debug)]
pub struct Grouped<K, C> {
    groups: HashMap<K, SlotList<C>>,
}

impl<K, C> Default for Grouped<K, C> {
    fn default() -> Self {
        Grouped {
            groups: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy, C: Copy + PartialEq + std::fmt::Debug> Grouped<K, C> {
    /// Adds `c` under `key`; returns its slot there.
    pub fn push(&mut self, key: K, c: C) -> usize {
        self.groups.entry(key).or_default().push(c)
    }

    /// Removes `c`, at `slot` under `key`. Returns the member moved into that
    /// slot.
    pub fn remove(&mut self, key: K, c: C, slot: usize) -> Moved<C> {
        let group = self.groups.get_mut(&key)?;
        let moved = group.remove(c, slot);
        if group.is_empty() {
            self.groups.remove(&key);
        }
        moved
    }

    /// The members under `key`, oldest first (until a removal moves one).
    pub fn group(&self, key: K) -> &[C] {
        self.groups.get(&key).map_or(&[], SlotList::as_slice)
    }

    /// Every member.
    pub fn iter(&self) -> impl Iterator<Item = C> + '_ {
        self.groups
            .values()
            .flat_map(|g| g.as_slice().iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_moves_the_last_member_into_the_hole() {
        let mut list = SlotList::default();
        let slots: Vec<_> = (10..15).map(|c| list.push(c)).collect();
        assert_eq!(slots, [0, 1, 2, 3, 4]);
        assert_eq!(list.remove(11, 1), Some((14, 1)));
        assert_eq!(list.as_slice(), [10, 14, 12, 13]);
        assert_eq!(list.remove(13, 3), None, "the last one moves nothing");
        assert_eq!(list.last(), Some(12));
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn a_group_goes_with_its_last_member() {
        let mut g = Grouped::default();
        let a = g.push(7u64, 'a');
        g.push(7, 'b');
        g.push(9, 'c');
        assert_eq!(g.group(7), ['a', 'b']);
        assert_eq!(g.remove(7, 'a', a), Some(('b', 0)));
        assert_eq!(g.remove(7, 'b', 0), None);
        assert_eq!(g.group(7), [] as [char; 0]);
        assert_eq!(g.groups.len(), 1, "an emptied group is dropped");
        assert_eq!(g.iter().collect::<Vec<_>>(), ['c']);
    }
}
