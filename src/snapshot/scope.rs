//! The widest correct ECS scope: address space cut into the largest aligned blocks
//! (CIDRs) over which an answer is the same, so that a reply can say "this answer holds
//! for this whole /N" and resolvers cache one answer per region instead of one per GeoIP
//! network (RFC 7871 section 7.3.1: the scope is how much of the address the answer
//! depends on).
//!
//! Two levels, both built off the query path (`answer::scope` computes them):
//! - the `PlaceMap`: every address, IPv4 and IPv6, in blocks whose clients are placed
//!   alike: the same ranking of every cluster, pin, country, continent and
//!   per-geography-order network. It is built once per config and GeoIP database (the
//!   expensive pass over every network of the database).
//! - a `ScopeMap` per decision (the eligible clusters of a name and its policy): the
//!   place blocks whose answer is the same are merged into their widest supernets. It is
//!   built from the place map, not the database, in one pass over its blocks.
//!
//! A block may be "opaque": its answer cannot be told from the map (address ranges the
//! database aliases, clients whose answer depends on their own network). A lookup there
//! says nothing, and the reply's scope stays the locating network's prefix.

use std::net::IpAddr;

use ipnet::IpNet;

use super::locate::{ClusterId, Located};

/// Class number of an opaque block.
pub const OPAQUE: u32 = u32::MAX;

/// A cover of one address family: blocks in address order, each an aligned CIDR, with
/// no gap and no overlap. `A` is `u32` for IPv4 and `u128` for IPv6.
#[derive(Debug, Default, Clone)]
pub struct Cover<A> {
    pub starts: Vec<A>,
    pub prefixes: Vec<u8>,
    pub classes: Vec<u32>,
}

/// An address as a number: IPv4 in `u32`, IPv6 in `u128`.
pub trait Bits: Copy + Ord + Default + std::fmt::Debug {
    const BITS: u8;
    fn to_u128(self) -> u128;
    fn from_u128(v: u128) -> Self;
}

impl Bits for u32 {
    const BITS: u8 = 32;
    fn to_u128(self) -> u128 {
        u128::from(self)
    }
    fn from_u128(v: u128) -> Self {
        v as u32
    }
}

impl Bits for u128 {
    const BITS: u8 = 128;
    fn to_u128(self) -> u128 {
        self
    }
    fn from_u128(v: u128) -> Self {
        v
    }
}

/// Number of addresses in a block of `prefix` bits, minus one (the last offset in it).
fn span<A: Bits>(prefix: u8) -> u128 {
    let host = A::BITS - prefix;
    if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    }
}

/// Builds a cover from blocks given in address order, merging two sibling blocks of the
/// same class into their parent, again and again: the result is the cover with the
/// fewest blocks, each the widest aligned block that holds one class. Opaque blocks
/// never merge.
#[derive(Debug, Default)]
pub struct Merger<A> {
    cover: Cover<A>,
}

impl<A: Bits> Merger<A> {
    pub fn push(&mut self, start: A, prefix: u8, class: u32) {
        let c = &mut self.cover;
        c.starts.push(start);
        c.prefixes.push(prefix);
        c.classes.push(class);
        loop {
            let n = c.starts.len();
            if n < 2 {
                return;
            }
            let (a, b) = (n - 2, n - 1);
            let p = c.prefixes[b];
            let mergeable = p > 0
                && c.prefixes[a] == p
                && c.classes[a] == c.classes[b]
                && c.classes[a] != OPAQUE
                // `a` is the lower half of its parent, and `b` the upper.
                && c.starts[a].to_u128() & (span::<A>(p) + 1) == 0
                && c.starts[b].to_u128() == c.starts[a].to_u128() + span::<A>(p) + 1;
            if !mergeable {
                return;
            }
            c.starts.pop();
            c.prefixes.pop();
            c.classes.pop();
            c.prefixes[a] = p - 1;
        }
    }

    /// Blocks for the range `[from, to]` (inclusive), all of one class: the aligned CIDRs
    /// that tile it, in order.
    pub fn push_range(&mut self, from: u128, to: u128, class: u32) {
        let mut at = from;
        loop {
            // The widest block that starts at `at` and stays within `to`.
            let mut prefix = A::BITS - (at.trailing_zeros().min(u32::from(A::BITS)) as u8);
            while at.checked_add(span::<A>(prefix)).is_none_or(|end| end > to) {
                prefix += 1;
            }
            self.push(A::from_u128(at), prefix, class);
            let end = at + span::<A>(prefix);
            if end >= to {
                return;
            }
            at = end + 1;
        }
    }

    pub fn finish(self) -> Cover<A> {
        self.cover
    }
}

impl<A: Bits> Cover<A> {
    /// The block that holds `addr`: its index.
    pub fn find(&self, addr: A) -> Option<usize> {
        self.starts.partition_point(|s| *s <= addr).checked_sub(1)
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Bytes its blocks take.
    pub fn bytes(&self) -> usize {
        self.starts.capacity() * std::mem::size_of::<A>()
            + self.prefixes.capacity()
            + self.classes.capacity() * 4
    }

    /// A new cover with each block's class mapped by `f`, merged again.
    pub fn remap(&self, f: &dyn Fn(u32) -> u32) -> Cover<A> {
        let mut m = Merger::default();
        for i in 0..self.len() {
            let class = match self.classes[i] {
                OPAQUE => OPAQUE,
                c => f(c),
            };
            m.push(self.starts[i], self.prefixes[i], class);
        }
        m.finish()
    }
}

/// How one group of place blocks places its clients; every block of the map belongs to
/// one. The answer function, run for `located` and `address`, gives what any client of
/// these blocks gets.
#[derive(Debug, Clone)]
pub struct PlaceClass {
    /// Every cluster of the snapshot, best first for these clients (pin first, then by
    /// distance scaled by each cluster's bias; the fallback order when unlocated).
    pub ranking: Box<[ClusterId]>,
    pub located: Located,
    /// An address of the first block of the class (a network per-geography order matches
    /// it as it matches every address of the class).
    pub address: IpAddr,
}

/// Level one: where clients are, in blocks (see the module's doc).
#[derive(Debug, Default)]
pub struct PlaceMap {
    pub v4: Cover<u32>,
    pub v6: Cover<u128>,
    pub classes: Vec<PlaceClass>,
    /// What it was built from, to tell whether a new snapshot can share it: the GeoIP
    /// database's identity, the clusters' places and biases, the overrides, the fallback
    /// order and the networks of per-geography orders.
    pub inputs: String,
    /// The networks of per-geography orders it is cut along (part of `inputs`).
    pub cuts: Vec<IpNet>,
    /// The scope maps of a snapshot of this map reached their memory budget (said once).
    pub over_budget: std::sync::atomic::AtomicBool,
}

impl PlaceMap {
    pub fn bytes(&self) -> usize {
        self.v4.bytes()
            + self.v6.bytes()
            + self.classes.capacity() * std::mem::size_of::<PlaceClass>()
            + self
                .classes
                .iter()
                .map(|c| c.ranking.len() * 2)
                .sum::<usize>()
    }
}

/// Level two: the widest blocks with one answer, for one decision.
#[derive(Debug, Default)]
pub struct ScopeMap {
    pub v4: Cover<u32>,
    pub v6: Cover<u128>,
}

impl ScopeMap {
    /// The prefix length of the widest block around `ip` whose clients all get the same
    /// answer; None where the map cannot tell (an opaque block).
    pub fn prefix(&self, ip: IpAddr) -> Option<u8> {
        let (prefix, class) = match ip.to_canonical() {
            IpAddr::V4(a) => {
                let i = self.v4.find(u32::from(a))?;
                (self.v4.prefixes[i], self.v4.classes[i])
            }
            IpAddr::V6(a) => {
                let i = self.v6.find(u128::from(a))?;
                (self.v6.prefixes[i], self.v6.classes[i])
            }
        };
        (class != OPAQUE).then_some(prefix)
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        self.v4.bytes() + self.v6.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(c: &Cover<u32>) -> Vec<(String, u32)> {
        (0..c.len())
            .map(|i| {
                (
                    format!(
                        "{}/{}",
                        std::net::Ipv4Addr::from(c.starts[i]),
                        c.prefixes[i]
                    ),
                    c.classes[i],
                )
            })
            .collect()
    }

    #[test]
    fn siblings_of_one_class_merge_into_their_parent_and_no_further() {
        let mut m = Merger::<u32>::default();
        // 0.0.0.0/0 as four /2s: classes 1, 1, 2, 1.
        m.push_range(0, (1 << 31) - 1, 1);
        m.push_range(1 << 31, (3 << 30) - 1, 2);
        m.push_range(3 << 30, u128::from(u32::MAX), 1);
        let c = m.finish();
        assert_eq!(
            blocks(&c),
            [
                ("0.0.0.0/1".to_owned(), 1),
                ("128.0.0.0/2".to_owned(), 2),
                ("192.0.0.0/2".to_owned(), 1)
            ]
        );
        // Mapping 2 to 1 makes one class: the whole space.
        let all = c.remap(&|_| 1);
        assert_eq!(blocks(&all), [("0.0.0.0/0".to_owned(), 1)]);
        // Opaque blocks stay as they are.
        let mut m = Merger::<u32>::default();
        m.push_range(0, (1 << 31) - 1, OPAQUE);
        m.push_range(1 << 31, u128::from(u32::MAX), OPAQUE);
        assert_eq!(m.finish().len(), 2);
    }

    #[test]
    fn the_whole_space_is_one_block() {
        let mut m = Merger::<u128>::default();
        m.push_range(0, u128::MAX, OPAQUE);
        let c = m.finish();
        assert_eq!((c.len(), c.prefixes[0]), (1, 0));
        let mut m = Merger::<u32>::default();
        m.push_range(0, u128::from(u32::MAX), 3);
        assert_eq!(m.finish().prefixes, [0]);
    }

    #[test]
    fn an_odd_range_is_tiled_by_aligned_blocks() {
        let mut m = Merger::<u32>::default();
        m.push_range(0, 9, 7);
        m.push_range(10, u128::from(u32::MAX), 8);
        let c = m.finish();
        let b = blocks(&c);
        assert_eq!(b[0], ("0.0.0.0/29".to_owned(), 7));
        assert_eq!(b[1], ("0.0.0.8/31".to_owned(), 7));
        assert_eq!(b[2], ("0.0.0.10/31".to_owned(), 8));
        // Every address is in exactly one block, in order.
        for w in c.starts.windows(2) {
            assert!(w[0] < w[1]);
        }
        let last = c.len() - 1;
        assert_eq!(
            u128::from(c.starts[last]) + span::<u32>(c.prefixes[last]),
            u128::from(u32::MAX)
        );
        assert_eq!(c.find(9), Some(1));
        assert_eq!(c.find(10), Some(2));
    }
}
