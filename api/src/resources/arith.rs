//! Resource arithmetic (`add`, `checked_sub`, `contains`) and the
//! fixed-point and range-set helpers behind it.

use std::collections::HashSet;

use super::{Range, Resources, Value};

impl Resources {
    /// Adds `other` per (name, role): scalars add, ranges and sets unite.
    pub fn add(&mut self, other: &Resources) {
        for r in &other.0 {
            self.push(r.clone());
        }
        self.0.retain(|r| !r.value.is_empty());
    }

    /// `self - other` per (name, role), or `None` when `self` does not contain
    /// `other`. Entries that become empty are dropped.
    pub fn checked_sub(&self, other: &Resources) -> Option<Resources> {
        let mut out = self.normalized();
        for r in other.normalized().0 {
            if r.value.is_empty() {
                continue;
            }
            let entry = out.0.iter_mut().find(|e| e.matches(&r))?;
            entry.value = sub_value(&entry.value, &r.value)?;
        }
        out.0.retain(|r| !r.value.is_empty());
        Some(out)
    }

    /// Whether every resource in `other` is available in `self` under the same
    /// name and role.
    pub fn contains(&self, other: &Resources) -> bool {
        self.checked_sub(other).is_some()
    }

    fn normalized(&self) -> Resources {
        self.0.iter().cloned().collect()
    }
}

// ---- arithmetic -----------------------------------------------------------

/// Mesos fixed point: three decimal digits (and no negative zero).
pub(crate) fn round3(v: f64) -> f64 {
    let r = (v * 1000.0).round() / 1000.0;
    if r == 0.0 { 0.0 } else { r }
}

pub(super) fn same_kind(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Sorts and merges overlapping or adjacent ranges.
pub(super) fn coalesce(mut ranges: Vec<Range>) -> Vec<Range> {
    ranges.sort();
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.begin <= last.end.saturating_add(1) => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The first pair of overlapping ranges of two sorted lists (one sweep).
pub(super) fn first_overlap(a: &[Range], b: &[Range]) -> Option<(Range, Range)> {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x.begin <= y.end && y.begin <= x.end {
            return Some((x, y));
        }
        if x.end < y.end {
            i += 1;
        } else {
            j += 1;
        }
    }
    None
}

/// `a += b` for values of the same kind (others are left alone).
pub(super) fn add_value(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => *x = round3(*x + *y),
        (Value::Ranges(x), Value::Ranges(y)) => {
            x.extend_from_slice(y);
            *x = coalesce(std::mem::take(x));
        }
        (Value::Set(x), Value::Set(y)) => {
            let mut have: HashSet<String> = x.iter().cloned().collect();
            for item in y {
                if have.insert(item.clone()) {
                    x.push(item.clone());
                }
            }
        }
        _ => {}
    }
}

/// Whether every range of `inner` lies inside one range of `outer`; both
/// sorted and coalesced (one sweep).
fn covers(outer: &[Range], inner: &[Range]) -> bool {
    let mut i = 0;
    for r in inner {
        while i < outer.len() && outer[i].end < r.begin {
            i += 1;
        }
        match outer.get(i) {
            Some(o) if o.begin <= r.begin && r.end <= o.end => {}
            _ => return false,
        }
    }
    true
}

/// `a - b`, or `None` when `b` is not contained in `a`. Both normalized.
fn sub_value(a: &Value, b: &Value) -> Option<Value> {
    match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => {
            let d = round3(x - y);
            (d >= 0.0).then_some(Value::Scalar(d))
        }
        (Value::Ranges(x), Value::Ranges(y)) => {
            covers(x, y).then(|| Value::Ranges(ranges_minus(x, y)))
        }
        (Value::Set(x), Value::Set(y)) => {
            let have: HashSet<&String> = x.iter().collect();
            let gone: HashSet<&String> = y.iter().collect();
            gone.iter()
                .all(|i| have.contains(i))
                .then(|| Value::Set(x.iter().filter(|i| !gone.contains(i)).cloned().collect()))
        }
        _ => None,
    }
}

/// Interval-set difference of two sorted, coalesced range lists.
fn ranges_minus(a: &[Range], cuts: &[Range]) -> Vec<Range> {
    let mut out = Vec::new();
    for r in a {
        let mut begin = r.begin;
        let mut rest = true;
        for cut in cuts.iter().filter(|c| c.end >= r.begin && c.begin <= r.end) {
            if cut.begin > begin {
                out.push(Range::new(begin, cut.begin - 1));
            }
            if cut.end >= r.end {
                rest = false;
                break;
            }
            begin = cut.end + 1;
        }
        if rest {
            out.push(Range::new(begin, r.end));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Resource;
    use super::super::tests::parse;
    use super::*;

    #[test]
    fn scalar_arithmetic_is_fixed_point() {
        let mut r = parse("cpus:0.1");
        r.add(&parse("cpus:0.2"));
        assert_eq!(r.scalar("cpus"), 0.3);
        let left = r.checked_sub(&parse("cpus:0.1")).unwrap();
        assert_eq!(left.scalar("cpus"), 0.2);
        let none = left.checked_sub(&parse("cpus:0.2")).unwrap();
        assert!(none.0.is_empty(), "{none:?}");
        assert_eq!(left.checked_sub(&parse("cpus:0.201")), None);
        let mut sum = Resources::new();
        for _ in 0..10 {
            sum.add(&parse("cpus:0.1"));
        }
        assert_eq!(sum.scalar("cpus"), 1.0);
    }

    #[test]
    fn subtracting_ranges_splits_them() {
        let total = parse("ports:[31000-32000]");
        let left = total.checked_sub(&parse("ports:[31500-31500]")).unwrap();
        assert_eq!(left.to_string(), "ports:[31000-31499,31501-32000]");
        let left = left
            .checked_sub(&parse("ports:[31000-31010,31990-32000]"))
            .unwrap();
        assert_eq!(left.to_string(), "ports:[31011-31499,31501-31989]");
        assert_eq!(left.checked_sub(&parse("ports:[31499-31501]")), None);
        assert_eq!(left.checked_sub(&parse("ports:[1-1]")), None);
        let all = left.checked_sub(&left).unwrap();
        assert!(all.0.is_empty());

        let mut back = all;
        back.add(&parse("ports:[31011-31499]"));
        back.add(&parse("ports:[31500-31500,31501-31989]"));
        assert_eq!(back.to_string(), "ports:[31011-31989]");

        let edge = parse("x:[0-18446744073709551615]");
        let cut = edge.checked_sub(&parse("x:[0-0,18446744073709551615-18446744073709551615]"));
        assert_eq!(cut.unwrap().to_string(), "x:[1-18446744073709551614]");
    }

    #[test]
    fn set_arithmetic_and_roles() {
        let total = parse("bugs:{a,b,c};cpus:4;cpus(eng):2");
        let left = total.checked_sub(&parse("bugs:{b};cpus(eng):2")).unwrap();
        assert_eq!(left.to_string(), "bugs:{a,c};cpus:4");
        assert_eq!(left.checked_sub(&parse("bugs:{b}")), None);
        // Reserved resources are not interchangeable with unreserved ones.
        assert!(!left.contains(&parse("cpus(eng):1")));
        assert!(!total.contains(&parse("cpus:5")));
        assert!(total.contains(&parse("cpus:4;cpus(eng):2;bugs:{c,a}")));
        assert!(total.contains(&Resources::new()));
        assert!(total.contains(&parse("gpus:0;ports:[]")));
        assert!(!total.contains(&parse("gpus:1")));
        // A same-named resource of another type is not a match.
        assert!(!total.contains(&Resources(vec![Resource::ranges(
            "cpus",
            vec![Range::new(1, 1)]
        )])));

        let mut u = parse("bugs:{a}");
        u.add(&parse("bugs:{b,a};gpus:0"));
        assert_eq!(u.to_string(), "bugs:{a,b}");
    }

    /// Random sorted, coalesced range lists.
    fn ranges() -> impl proptest::strategy::Strategy<Value = Vec<Range>> {
        use proptest::prelude::*;
        proptest::collection::vec((0u64..60, 0u64..6), 0..8).prop_map(|v| {
            coalesce(
                v.into_iter()
                    .map(|(b, len)| Range::new(b, b + len))
                    .collect(),
            )
        })
    }

    proptest::proptest! {
        #[test]
        fn the_sweeps_agree_with_the_definitions(a in ranges(), b in ranges()) {
            let naive_cover = b
                .iter()
                .all(|r| a.iter().any(|o| o.begin <= r.begin && r.end <= o.end));
            proptest::prop_assert_eq!(covers(&a, &b), naive_cover);
            let naive_overlap = a
                .iter()
                .any(|x| b.iter().any(|y| x.begin <= y.end && y.begin <= x.end));
            proptest::prop_assert_eq!(first_overlap(&a, &b).is_some(), naive_overlap);
        }
    }
}
