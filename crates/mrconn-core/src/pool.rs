//! A node's pool: its connections and the round-robin cursor.

/// The connections to one node that take new commands, and the cursor that
/// spreads commands over them.
#[derive(Debug)]
pub struct Pool<C> {
    conns: Vec<C>,
    cursor: usize,
}

impl<C: Copy> Pool<C> {
    /// A pool of `conns`, the cursor at the first.
    pub fn new(conns: Vec<C>) -> Self {
        Pool { conns, cursor: 0 }
    }

    /// How many connections take new commands.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether the pool has no connection at all.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
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

    /// Keeps the first `num` connections and hands back the rest, in order.
    /// The cursor wraps into the new size. `num == 0` empties the pool.
    pub fn shrink(&mut self, num: usize) -> Vec<C> {
        let surplus = self.conns.split_off(num.min(self.conns.len()));
        self.cursor = if self.conns.is_empty() {
            0
        } else {
            self.cursor % self.conns.len()
        };
        surplus
    }

    /// Appends a connection at the end of the pool.
    pub fn push(&mut self, conn: C) {
        self.conns.push(conn);
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
        p.push(15);
        assert_eq!(p.conns(), &[10, 11, 15]);
        assert_eq!(p.take_all(), vec![10, 11, 15]);
        assert!(p.is_empty());
        assert_eq!(p.pick(|_| true), None);
    }
}
