//! A node's pool: its connections, the round-robin cursor, and how many of
//! its connections are still to be opened.

/// The connections to one node that take new commands, the cursor that
/// spreads commands over them, and the rest of the pool's size: connections
/// not opened yet (the loop opens them a few at a time, in pool order).
#[derive(Debug)]
pub struct Pool<C> {
    conns: Vec<C>,
    cursor: usize,
    unopened: usize,
}

impl<C: Copy> Pool<C> {
    /// A pool of `conns`, the cursor at the first.
    pub fn new(conns: Vec<C>) -> Self {
        Pool {
            conns,
            cursor: 0,
            unopened: 0,
        }
    }

    /// A pool of `size` connections, none opened yet (and no memory for
    /// them yet: a topology update adds thousands of pools in one call).
    pub fn unopened(size: usize) -> Self {
        Pool {
            conns: Vec::new(),
            cursor: 0,
            unopened: size,
        }
    }

    /// How many connections are open (and take new commands when ready).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether the pool has no open connection.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The pool's size: open connections and those still to open.
    pub fn size(&self) -> usize {
        self.conns.len() + self.unopened
    }

    /// How many connections are still to open.
    pub fn to_open(&self) -> usize {
        self.unopened
    }

    /// Grows the pool's size to `size` (never shrinks it); the new
    /// connections are to open.
    pub fn grow_to(&mut self, size: usize) {
        self.unopened = self.unopened.max(size.saturating_sub(self.conns.len()));
    }

    /// Puts `conn` in the place of the next connection to open (at the end
    /// of the open ones). Nothing happens to a pool with none to open.
    pub fn fill_one(&mut self, conn: C) -> bool {
        if self.unopened == 0 {
            return false;
        }
        self.unopened -= 1;
        self.conns.push(conn);
        true
    }

    /// The connections, in pool order.
    pub fn conns(&self) -> &[C] {
        &self.conns
    }

    /// The first connection, which speaks for the pool (endpoint, state).
    pub fn first(&self) -> Option<C> {
        self.conns.first().copied()
    }

    /// The round-robin cursor.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The next connection that `ready` accepts, looking at each at most once
    /// from the cursor and moving the cursor past every one looked at, as
    /// `conn.c` does.
    #[inline]
    pub fn pick(&mut self, mut ready: impl FnMut(C) -> bool) -> Option<C> {
        let n = self.conns.len();
        for _ in 0..n {
            let c = self.conns[self.cursor];
            self.cursor += 1;
            if self.cursor == n {
                self.cursor = 0;
            }
            if ready(c) {
                return Some(c);
            }
        }
        None
    }

    /// Keeps the first `num` connections and appends the open ones of the
    /// rest to `surplus`, in order (one copy: a `Shrink` collects thousands
    /// of pools' surplus inside its call); those still to open are
    /// forgotten. The cursor wraps into the new size. `num == 0` empties the
    /// pool.
    pub fn shrink_into(&mut self, num: usize, surplus: &mut Vec<C>) {
        self.unopened = self.unopened.min(num.saturating_sub(self.conns.len()));
        let keep = num.min(self.conns.len());
        surplus.extend_from_slice(&self.conns[keep..]);
        self.conns.truncate(keep);
        self.cursor = if self.conns.is_empty() {
            0
        } else {
            self.cursor % self.conns.len()
        };
    }

    /// Keeps the first `num` connections and hands back the open ones of
    /// the rest, as [`Pool::shrink_into`].
    pub fn shrink(&mut self, num: usize) -> Vec<C> {
        let mut surplus = Vec::new();
        self.shrink_into(num, &mut surplus);
        surplus
    }

    /// Empties the pool, handing back every connection.
    pub fn take_all(&mut self) -> Vec<C> {
        self.shrink(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_unready_and_advances_past_them() {
        let mut p = Pool::new(vec![0, 1, 2, 3]);
        let ready = |c: i32| c != 1;
        assert_eq!(p.pick(ready), Some(0));
        assert_eq!(p.pick(ready), Some(2));
        assert_eq!(p.cursor(), 3);
        assert_eq!(p.pick(ready), Some(3));
        assert_eq!(p.pick(ready), Some(0));
        assert_eq!(p.pick(|_| false), None);
        // A full fruitless lap leaves the cursor where it started.
        assert_eq!(p.cursor(), 1);
    }

    #[test]
    fn shrink_keeps_the_head_and_wraps_the_cursor() {
        let mut p = Pool::new(vec![10, 11, 12, 13, 14]);
        for _ in 0..3 {
            p.pick(|_| true);
        }
        assert_eq!(p.shrink(2), vec![12, 13, 14]);
        assert_eq!(p.conns(), &[10, 11]);
        assert_eq!(p.cursor(), 1);
        assert_eq!(p.shrink(7), Vec::<i32>::new());
        assert!(!p.fill_one(15), "nothing to open");
        p.grow_to(3);
        assert!(p.fill_one(15));
        assert_eq!(p.conns(), &[10, 11, 15]);
        assert_eq!(p.take_all(), vec![10, 11, 15]);
        assert!(p.is_empty());
        assert_eq!(p.pick(|_| true), None);
    }

    #[test]
    fn connections_to_open_count_in_the_size_and_shrink_first() {
        let mut p = Pool::unopened(4);
        assert_eq!((p.len(), p.size(), p.to_open()), (0, 4, 4));
        assert_eq!(p.pick(|_| true), None);
        assert!(p.fill_one(1));
        assert!(p.fill_one(2));
        assert_eq!((p.len(), p.size()), (2, 4));
        // Shrinking to 3 forgets one to open and hands back none.
        assert_eq!(p.shrink(3), Vec::<i32>::new());
        assert_eq!((p.size(), p.to_open()), (3, 1));
        // Shrinking below the open ones forgets the rest.
        assert_eq!(p.shrink(1), vec![2]);
        assert_eq!((p.size(), p.to_open()), (1, 0));
        // Growing never shrinks.
        p.grow_to(5);
        p.grow_to(2);
        assert_eq!((p.size(), p.to_open()), (5, 4));
        assert_eq!(p.take_all(), vec![1]);
        assert_eq!(p.size(), 0);
    }
}
