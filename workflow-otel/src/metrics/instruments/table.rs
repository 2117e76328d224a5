//! Finding the point (the aggregate of one attribute set) of a measurement:
//! the hot path of every `Counter::add` and `Histogram::record`.
//!
//! A measurement arrives with a slice of attributes in whatever order the
//! caller wrote them. The table hashes the slice as it is and probes an
//! open-addressing array of aliases (the slice as first seen, and its
//! point) without taking a lock: entries are only ever added, and nothing
//! is freed before the table, so a reader can follow any pointer it loads.
//! A miss takes the writer's lock, puts the attributes in their canonical
//! form (sorted by key, the last value of a repeated key kept, as the
//! specification's attribute rules say), finds or makes that set's point,
//! and adds the alias. Different orders of the same set share one point.
//!
//! Bounded as the metrics SDK specification asks: at most `limit` points per
//! instrument, the last of them the overflow point
//! (`otel.metric.overflow = true`) that every further set is folded into,
//! reported once. Aliases are bounded too (twice the limit); past that a
//! new spelling is looked up under the lock each time, slower but exact.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, Ordering};

use opentelemetry::{Array, KeyValue, Value};

/// The attribute a set folded into the overflow point carries.
pub(crate) const OVERFLOW_ATTRIBUTE: &str = "otel.metric.overflow";

/// Aliases kept per point, at most, on average.
const ALIASES_PER_POINT: usize = 2;

/// Most bytes of text (keys and values) an attribute set may hold to get a
/// point of its own; a longer one is counted in the overflow point, so that
/// values taken from requests cannot fill memory even within the limit.
pub const MAX_ATTRIBUTE_SET_BYTES: usize = 4096;

/// The bytes of text of a set, as [`MAX_ATTRIBUTE_SET_BYTES`] counts them.
fn text_bytes(attributes: &[KeyValue]) -> usize {
    attributes
        .iter()
        .map(|attribute| {
            attribute.key.as_str().len()
                + match &attribute.value {
                    Value::String(text) => text.as_str().len(),
                    Value::Array(Array::String(texts)) => {
                        texts.iter().map(|text| text.as_str().len()).sum()
                    }
                    _ => 8,
                }
        })
        .sum()
}

/// The points of one instrument, by attribute set.
pub(crate) struct PointTable<P> {
    /// The alias found last: a caller that measures one set again and again
    /// (the usual hot loop) finds it with one comparison and no hash.
    last: AtomicPtr<Alias<P>>,
    /// The current probe array; replaced (never freed before the table) when it grows.
    slots: AtomicPtr<Slots<P>>,
    writer: Mutex<Writer<P>>,
    limit: usize,
    seed: u64,
}

/// One point and its attribute set in canonical form.
#[derive(Debug)]
pub(crate) struct Entry<P> {
    pub(crate) attributes: Box<[KeyValue]>,
    pub(crate) point: P,
}

struct Slots<P> {
    mask: usize,
    aliases: Box<[AtomicPtr<Alias<P>>]>,
}

struct Alias<P> {
    hash: u64,
    attributes: Box<[KeyValue]>,
    entry: *const Entry<P>,
}

// Boxed on purpose: readers hold pointers to aliases, entries and probe
// arrays, so each must keep its address while the vectors grow.
#[allow(clippy::vec_box)]
struct Writer<P> {
    entries: Vec<Box<Entry<P>>>,
    /// Entries by the hash of their canonical set.
    canonical: HashMap<u64, Vec<usize>>,
    overflow: Option<usize>,
    aliases: Vec<Box<Alias<P>>>,
    current: Box<Slots<P>>,
    retired: Vec<Box<Slots<P>>>,
}

// SAFETY: the raw pointers point into boxes the writer owns (entries,
// aliases, probe arrays), which are never freed or moved before the table is
// dropped, and are published with release stores after they are complete.
// Shared access to them is shared access to `P` and `KeyValue`, which are
// `Sync`.
unsafe impl<P: Send + Sync> Send for PointTable<P> {}
// SAFETY: as for `Send`.
unsafe impl<P: Send + Sync> Sync for PointTable<P> {}

impl<P> std::fmt::Debug for PointTable<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointTable")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<P> Slots<P> {
    fn with_capacity(capacity: usize) -> Box<Slots<P>> {
        let capacity = capacity.next_power_of_two().max(8);
        Box::new(Slots {
            mask: capacity - 1,
            aliases: (0..capacity)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
        })
    }

    /// The alias of `attributes`, if it has one here.
    #[inline]
    fn find(&self, hash: u64, attributes: &[KeyValue]) -> Option<*const Alias<P>> {
        let mut index = hash as usize & self.mask;
        loop {
            let alias = self.aliases[index].load(Ordering::Acquire);
            if alias.is_null() {
                return None;
            }
            // SAFETY: see `unsafe impl Send for PointTable`.
            let alias = unsafe { &*alias };
            if alias.hash == hash && same(&alias.attributes, attributes) {
                return Some(alias);
            }
            index = (index + 1) & self.mask;
        }
    }

    /// Puts `alias` in the first free slot of its probe sequence; the
    /// writer's lock is held, and the array is at most half full.
    fn place(&self, alias: *const Alias<P>, hash: u64) {
        let mut index = hash as usize & self.mask;
        while !self.aliases[index].load(Ordering::Relaxed).is_null() {
            index = (index + 1) & self.mask;
        }
        self.aliases[index].store(alias.cast_mut(), Ordering::Release);
    }
}

impl<P> PointTable<P> {
    /// A table of at most `limit` points (at least 1: the overflow point).
    pub(crate) fn new(limit: usize) -> PointTable<P> {
        let current = Slots::with_capacity(16);
        PointTable {
            last: AtomicPtr::new(std::ptr::null_mut()),
            slots: AtomicPtr::new((&*current as *const Slots<P>).cast_mut()),
            writer: Mutex::new(Writer {
                entries: Vec::new(),
                canonical: HashMap::new(),
                overflow: None,
                aliases: Vec::new(),
                current,
                retired: Vec::new(),
            }),
            limit: limit.max(1),
            seed: crate::record::ids::random_u64(),
        }
    }

    /// The point of `attributes`, made by `make` if the set is new. The
    /// second value is true when this call folded a new set into the
    /// overflow point for the first time (the caller reports it once).
    #[inline]
    pub(crate) fn find(&self, attributes: &[KeyValue], make: impl FnOnce() -> P) -> (&P, bool) {
        let last = self.last.load(Ordering::Acquire);
        // SAFETY: see `unsafe impl Send for PointTable`; `last` is null or
        // an alias the writer owns.
        if let Some(alias) = unsafe { last.as_ref() }
            && same(&alias.attributes, attributes)
        {
            // SAFETY: as above; entries live as long as the table.
            return (unsafe { &(*alias.entry).point }, false);
        }
        let hash = hash_attributes(self.seed, attributes);
        // SAFETY: as above.
        let slots = unsafe { &*self.slots.load(Ordering::Acquire) };
        if let Some(alias) = slots.find(hash, attributes) {
            self.last.store(alias.cast_mut(), Ordering::Release);
            // SAFETY: as above.
            return (unsafe { &(*(*alias).entry).point }, false);
        }
        self.insert(hash, attributes, make)
    }

    #[cold]
    #[inline(never)]
    fn insert(&self, hash: u64, attributes: &[KeyValue], make: impl FnOnce() -> P) -> (&P, bool) {
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(alias) = writer.current.find(hash, attributes) {
            // SAFETY: as in `find`.
            return (unsafe { &(*(*alias).entry).point }, false);
        }
        let too_long = text_bytes(attributes) > MAX_ATTRIBUTE_SET_BYTES;
        let canonical = if too_long {
            Vec::new()
        } else {
            canonical(attributes)
        };
        let canonical_hash = hash_attributes(self.seed, &canonical);
        let known = writer.canonical.get(&canonical_hash).and_then(|indices| {
            indices
                .iter()
                .copied()
                .find(|index| same(&writer.entries[*index].attributes, &canonical))
        });
        let mut overflowed = false;
        let index = match known {
            Some(index) if !too_long => index,
            _ if too_long
                || writer.entries.len() - usize::from(writer.overflow.is_some())
                    >= self.limit - 1 =>
            {
                match writer.overflow {
                    Some(index) => index,
                    None => {
                        overflowed = true;
                        let overflow: Box<[KeyValue]> =
                            Box::new([KeyValue::new(OVERFLOW_ATTRIBUTE, true)]);
                        let index = writer.push(overflow, None, make());
                        writer.overflow = Some(index);
                        index
                    }
                }
            }
            _ => writer.push(canonical.into_boxed_slice(), Some(canonical_hash), make()),
        };
        let entry: *const Entry<P> = &*writer.entries[index];
        if !too_long && writer.aliases.len() < self.limit * ALIASES_PER_POINT {
            let alias = Box::new(Alias {
                hash,
                attributes: attributes.into(),
                entry,
            });
            // Kept at most half full, so a probe always ends at a free slot.
            if (writer.aliases.len() + 1) * 2 > writer.current.aliases.len() {
                let grown = Slots::with_capacity(writer.current.aliases.len() * 2);
                for alias in &writer.aliases {
                    grown.place(&**alias, alias.hash);
                }
                self.slots
                    .store((&*grown as *const Slots<P>).cast_mut(), Ordering::Release);
                let old = std::mem::replace(&mut writer.current, grown);
                writer.retired.push(old);
            }
            writer.current.place(&*alias, hash);
            writer.aliases.push(alias);
        }
        // SAFETY: as in `find`.
        (unsafe { &(*entry).point }, overflowed)
    }

    /// Calls `visit` with every point so far, in the order they were made.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(&Entry<P>)) {
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for entry in &writer.entries {
            visit(entry);
        }
    }
}

impl<P> Writer<P> {
    /// Adds an entry; `canonical_hash` is its set's, `None` for the overflow point.
    fn push(
        &mut self,
        attributes: Box<[KeyValue]>,
        canonical_hash: Option<u64>,
        point: P,
    ) -> usize {
        let index = self.entries.len();
        self.entries.push(Box::new(Entry { attributes, point }));
        if let Some(hash) = canonical_hash {
            self.canonical.entry(hash).or_default().push(index);
        }
        index
    }
}

/// `attributes` as the specification identifies a set: sorted by key, the
/// last value of a repeated key kept.
pub(crate) fn canonical(attributes: &[KeyValue]) -> Vec<KeyValue> {
    let mut canonical: Vec<KeyValue> = attributes.iter().rev().cloned().collect();
    // Stable, so of each key the first here (the last given) leads.
    canonical.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    canonical.dedup_by(|later, earlier| later.key == earlier.key);
    canonical
}

/// Whether two attribute lists are the same, in the same order. Floats
/// compare by their bits, so a NaN attribute finds its own point.
#[inline(always)]
pub(crate) fn same(a: &[KeyValue], b: &[KeyValue]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // The common case first: keys and text values at the same addresses
    // (literals, kept as they were cloned); anything else is compared in
    // full, out of line.
    for (a, b) in a.iter().zip(b) {
        let (key_a, key_b) = (a.key.as_str(), b.key.as_str());
        let same_address = key_a.as_ptr() == key_b.as_ptr()
            && key_a.len() == key_b.len()
            && match (&a.value, &b.value) {
                (Value::String(x), Value::String(y)) => {
                    let (x, y) = (x.as_str(), y.as_str());
                    x.as_ptr() == y.as_ptr() && x.len() == y.len()
                }
                _ => false,
            };
        if !same_address && !same_in_full(a, b) {
            return false;
        }
    }
    true
}

#[cold]
#[inline(never)]
fn same_in_full(a: &KeyValue, b: &KeyValue) -> bool {
    same_text(a.key.as_str(), b.key.as_str()) && same_value(&a.value, &b.value)
}

/// Two texts are the same; the same address is the common case (a
/// literal, kept as it was cloned), which needs no comparison of bytes.
#[inline(always)]
fn same_text(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

#[inline(always)]
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => same_text(a.as_str(), b.as_str()),
        (Value::F64(a), Value::F64(b)) => a.to_bits() == b.to_bits(),
        (Value::Array(Array::F64(a)), Value::Array(Array::F64(b))) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
        }
        (a, b) => a == b,
    }
}

/// A multiply-xor hash over whole words, seeded per table: a few
/// instructions per attribute, which is what a measurement can afford.
/// Attribute values may come from peers; the random seed and the bounded
/// table keep a crafted set from costing more than a longer probe.
const MULTIPLIER: u64 = 0xf135_7aea_2e62_a9c5;

#[inline(always)]
fn mix(hash: u64, word: u64) -> u64 {
    (hash ^ word).wrapping_mul(MULTIPLIER)
}

/// `bytes` as words: whole ones, then the last (overlapping) one, or for
/// short texts the first and last four, or three bytes; with the length.
#[inline(always)]
fn mix_bytes(mut hash: u64, bytes: &[u8]) -> u64 {
    let length = bytes.len();
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    let half = |at: usize| {
        u64::from(u32::from_le_bytes(
            bytes[at..at + 4].try_into().unwrap_or_default(),
        ))
    };
    let last = if length >= 8 {
        let mut at = 0;
        while at + 8 < length {
            hash = mix(hash, word(at));
            at += 8;
        }
        word(length - 8)
    } else if length >= 4 {
        half(0) | (half(length - 4) << 32)
    } else if length > 0 {
        u64::from(bytes[0]) | u64::from(bytes[length / 2]) << 8 | u64::from(bytes[length - 1]) << 16
    } else {
        0
    };
    mix(hash, last ^ ((length as u64) << 56))
}

#[inline]
fn hash_attributes(seed: u64, attributes: &[KeyValue]) -> u64 {
    let mut hash = seed;
    for attribute in attributes {
        hash = mix_bytes(hash, attribute.key.as_str().as_bytes());
        hash = match &attribute.value {
            Value::String(text) => mix_bytes(hash, text.as_str().as_bytes()),
            Value::I64(number) => mix(hash, *number as u64 ^ 1),
            Value::F64(number) => mix(hash, number.to_bits() ^ 2),
            Value::Bool(flag) => mix(hash, u64::from(*flag) ^ 3),
            other => mix_bytes(hash, other.to_string().as_bytes()),
        };
    }
    // The low bits index the table: fold the well-mixed high ones in.
    hash ^ (hash >> 29) ^ (hash >> 47)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_repeated_keys_of_one_set_share_a_point() {
        let table: PointTable<u32> = PointTable::new(10);
        let mut made = 0;
        let a = table
            .find(&[KeyValue::new("a", 1), KeyValue::new("b", "x")], || {
                made += 1;
                1
            })
            .0 as *const u32;
        let b = table
            .find(
                &[
                    KeyValue::new("b", "y"),
                    KeyValue::new("a", 1),
                    KeyValue::new("b", "x"),
                ],
                || 2,
            )
            .0 as *const u32;
        let c = table
            .find(&[KeyValue::new("b", "x"), KeyValue::new("a", 1)], || 3)
            .0 as *const u32;
        assert_eq!(made, 1);
        assert_eq!(a, b);
        assert_eq!(a, c);
        let mut sets = Vec::new();
        table.for_each(|entry| sets.push(entry.attributes.to_vec()));
        assert_eq!(
            sets,
            vec![vec![KeyValue::new("a", 1), KeyValue::new("b", "x")]]
        );
    }

    #[test]
    fn past_the_limit_sets_fold_into_one_overflow_point_reported_once() {
        let table: PointTable<usize> = PointTable::new(4);
        let mut reports = 0;
        for value in 0..100 {
            let (_, overflowed) = table.find(&[KeyValue::new("user", value)], || value as usize);
            reports += usize::from(overflowed);
        }
        let mut sets = Vec::new();
        table.for_each(|entry| sets.push((entry.attributes.to_vec(), entry.point)));
        assert_eq!(reports, 1);
        assert_eq!(
            sets,
            vec![
                (vec![KeyValue::new("user", 0)], 0),
                (vec![KeyValue::new("user", 1)], 1),
                (vec![KeyValue::new("user", 2)], 2),
                (vec![KeyValue::new(OVERFLOW_ATTRIBUTE, true)], 3),
            ]
        );
        // A known set keeps its own point after the overflow began.
        assert_eq!(*table.find(&[KeyValue::new("user", 1)], || 99).0, 1);
        assert_eq!(*table.find(&[KeyValue::new("user", 50)], || 99).0, 3);
    }

    #[test]
    fn a_set_of_too_much_text_is_counted_in_the_overflow_point_and_not_kept() {
        let table: PointTable<u8> = PointTable::new(100);
        let long = "x".repeat(MAX_ATTRIBUTE_SET_BYTES);
        let (_, overflowed) = table.find(&[KeyValue::new("path", long.clone())], || 1);
        assert!(overflowed);
        let (point, overflowed) = table.find(&[KeyValue::new("path", long)], || 2);
        assert_eq!((*point, overflowed), (1, false));
        let fits = "x".repeat(MAX_ATTRIBUTE_SET_BYTES - 4);
        assert_eq!(*table.find(&[KeyValue::new("path", fits)], || 3).0, 3);
        let mut sets = Vec::new();
        table.for_each(|entry| sets.push(entry.attributes.len()));
        // The overflow point and the set that fits: no copy of the long text.
        assert_eq!(sets, [1, 1]);
    }

    #[test]
    fn many_sets_grow_the_table_and_every_one_is_found_again() {
        let table: PointTable<i64> = PointTable::new(5000);
        for value in 0..3000_i64 {
            table.find(
                &[KeyValue::new("k", value), KeyValue::new("f", 0.5)],
                || value,
            );
        }
        for value in 0..3000_i64 {
            let (point, _) =
                table.find(&[KeyValue::new("k", value), KeyValue::new("f", 0.5)], || -1);
            assert_eq!(*point, value);
        }
        let nan = [KeyValue::new("x", f64::NAN)];
        let first = table.find(&nan, || 7).0 as *const i64;
        assert_eq!(first, table.find(&nan, || 8).0 as *const i64);
    }

    #[test]
    fn threads_racing_on_new_sets_agree_on_their_points() {
        let table: PointTable<std::sync::atomic::AtomicU64> = PointTable::new(2000);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for value in 0..500_i64 {
                        table
                            .find(&[KeyValue::new("k", value % 100)], Default::default)
                            .0
                            .fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        let mut total = 0;
        let mut sets = 0;
        table.for_each(|entry| {
            sets += 1;
            total += entry.point.load(Ordering::Relaxed);
        });
        assert_eq!((sets, total), (100, 2000));
    }
}
