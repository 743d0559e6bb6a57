//! The Mesos text syntax of `--resources`, its `Display` form, and the
//! validation shared with the JSON reader.

use std::fmt;

use super::arith::{coalesce, first_overlap, round3, same_kind};
use super::{Range, Resource, Resources, ResourcesError, UNRESERVED, Value, invalid};

/// The Mesos text syntax: `cpus:4;mem:2048;ports:[31000-32000];disk(role):100`
/// (`text` is the whole input, for messages).
pub(super) fn parse_text(trimmed: &str, text: &str) -> Result<Resources, ResourcesError> {
    let mut raw = Vec::new();
    for segment in trimmed.split([';', '\n']).map(str::trim) {
        if segment.is_empty() {
            continue;
        }
        let resource =
            parse_segment(segment).map_err(|e| invalid(text, format!("{segment:?}: {e}")))?;
        raw.push(resource);
    }
    assemble(raw, text)
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.begin, self.end)
    }
}

/// The text form used in `--resources`: `4`, `[1-2,5-9]`, `{a,b}`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Scalar(v) => write!(f, "{v}"),
            Value::Ranges(r) => f.write_str(&fmt_ranges(r, ",")),
            Value::Set(items) => write!(f, "{{{}}}", items.join(",")),
        }
    }
}

/// `name:value`, or `name(role):value` when reserved.
impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.role != UNRESERVED {
            write!(f, "({})", self.role)?;
        }
        write!(f, ":{}", self.value)
    }
}

/// `cpus:4;mem:2048;ports:[31000-32000];disk(eng):100`.
impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

// ---- text syntax ----------------------------------------------------------

/// One `name(role):value` segment.
fn parse_segment(segment: &str) -> Result<Resource, String> {
    let (key, value) = segment
        .split_once(':')
        .ok_or("missing ':' between name and value")?;
    if value.contains(':') {
        return Err("more than one ':'".to_string());
    }
    let key = key.trim();
    let (name, role) = match key.find('(') {
        None => (key, UNRESERVED),
        Some(open) => {
            let inner = key[open + 1..]
                .strip_suffix(')')
                .ok_or_else(|| format!("role in {key:?} must be closed by ')'"))?;
            (key[..open].trim(), inner.trim())
        }
    };
    validate_name(name)?;
    validate_role(role)?;
    Ok(Resource {
        name: name.to_string(),
        role: role.to_string(),
        value: parse_value(value.trim())?,
    })
}

fn parse_value(text: &str) -> Result<Value, String> {
    if text.is_empty() {
        Err("missing value".to_string())
    } else if text.starts_with('[') {
        Ok(Value::Ranges(parse_ranges(text)?))
    } else if let Some(inner) = text.strip_prefix('{') {
        let inner = inner
            .strip_suffix('}')
            .ok_or_else(|| format!("set {text:?} must end with '}}'"))?
            .trim();
        let items = if inner.is_empty() {
            Vec::new()
        } else {
            inner.split(',').map(|i| i.trim().to_string()).collect()
        };
        Ok(Value::Set(validated_set(items)?))
    } else {
        let v: f64 = text.parse().map_err(|_| {
            format!("{text:?} is not a number, ranges [begin-end,...] or a set {{a,...}}")
        })?;
        Ok(Value::Scalar(validated_scalar(v)?))
    }
}

/// Ranges text `[31000-32000,33000-34000]` (`[]` is empty), validated and
/// coalesced.
pub(crate) fn parse_ranges(text: &str) -> Result<Vec<Range>, String> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("ranges {text:?} must be enclosed in '[' and ']'"))?
        .trim();
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    let mut ranges = Vec::new();
    for piece in inner.split(',').map(str::trim) {
        let (begin, end) = piece
            .split_once('-')
            .ok_or_else(|| format!("range {piece:?} is not of the form begin-end"))?;
        let bound = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("range {piece:?}: {t:?} is not a non-negative integer"))
        };
        ranges.push(Range::new(bound(begin)?, bound(end)?));
    }
    validated_ranges(ranges)
}

/// `[1-2,5-9]` with the given separator (Mesos prints `", "` in JSON).
pub(crate) fn fmt_ranges(ranges: &[Range], separator: &str) -> String {
    let parts: Vec<String> = ranges.iter().map(Range::to_string).collect();
    format!("[{}]", parts.join(separator))
}

// ---- validation -----------------------------------------------------------

/// Names must survive the text syntax: no whitespace, control characters or
/// any of `():;,[]{}`.
pub(super) fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("resource name is empty".to_string());
    }
    match name
        .chars()
        .find(|&c| is_reserved_char(c) || "[]{},".contains(c))
    {
        Some(c) => Err(format!("resource name {name:?} contains {c:?}")),
        None => Ok(()),
    }
}

fn is_reserved_char(c: char) -> bool {
    c.is_whitespace() || c.is_control() || "():;".contains(c)
}

/// Mesos role rules: `*`, or `/`-separated path components, none of them
/// empty, `.`, `..`, `*` or starting with `-`; no whitespace or control
/// characters (nor `():;`, which the text syntax cannot carry).
pub(super) fn validate_role(role: &str) -> Result<(), String> {
    if role == UNRESERVED {
        return Ok(());
    }
    if role.is_empty() {
        return Err("role is empty".to_string());
    }
    if role.starts_with('/') || role.ends_with('/') {
        return Err(format!("role {role:?} starts or ends with '/'"));
    }
    if let Some(c) = role.chars().find(|&c| is_reserved_char(c)) {
        return Err(format!("role {role:?} contains {c:?}"));
    }
    for component in role.split('/') {
        match component {
            "" => return Err(format!("role {role:?} contains '//'")),
            "." | ".." | "*" => {
                return Err(format!("role {role:?} has a {component:?} component"));
            }
            c if c.starts_with('-') => {
                return Err(format!("role {role:?} has a component starting with '-'"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The largest scalar Keel takes: Mesos keeps scalars in fixed point with
/// three decimals in 64 bits; this leaves room to add many of them.
pub const MAX_SCALAR: f64 = 1e15;

pub(super) fn validated_scalar(v: f64) -> Result<f64, String> {
    if !v.is_finite() {
        Err(format!("scalar {v} is not finite"))
    } else if v < 0.0 {
        Err(format!("scalar {v} is negative"))
    } else if v > MAX_SCALAR {
        Err(format!("scalar {v} is larger than {MAX_SCALAR:e}"))
    } else {
        Ok(round3(v))
    }
}

/// Rejects a range with begin > end and overlapping ranges; returns them
/// sorted and coalesced (adjacent ranges merge, as in Mesos).
pub(crate) fn validated_ranges(ranges: Vec<Range>) -> Result<Vec<Range>, String> {
    if let Some(r) = ranges.iter().find(|r| r.begin > r.end) {
        return Err(format!("range {r} has begin greater than end"));
    }
    let mut sorted = ranges;
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w[1].begin <= w[0].end) {
        return Err(format!("ranges {} and {} overlap", w[0], w[1]));
    }
    Ok(coalesce(sorted))
}

pub(super) fn validated_set(items: Vec<String>) -> Result<Vec<String>, String> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    for item in &items {
        if item.is_empty() {
            return Err("set has an empty item".to_string());
        }
        if let Some(c) = item
            .chars()
            .find(|&c| is_reserved_char(c) || "[]{},".contains(c))
        {
            return Err(format!("set item {item:?} contains {c:?}"));
        }
        if !seen.insert(item.as_str()) {
            return Err(format!("set item {item:?} appears twice"));
        }
    }
    Ok(items)
}

/// Merges individually valid resources, rejecting what cannot describe one
/// machine: a name with two types, or ranges or set items claimed twice (in
/// any role). Scalars of the same name and role add up.
pub(super) fn assemble(raw: Vec<Resource>, input: &str) -> Result<Resources, ResourcesError> {
    let mut out = Resources::new();
    for r in raw {
        for e in out.0.iter().filter(|e| e.name == r.name) {
            let reason = match (&e.value, &r.value) {
                (a, b) if !same_kind(a, b) => Some(format!(
                    "resource {} is both {} and {}",
                    r.name,
                    a.type_name(),
                    b.type_name()
                )),
                (Value::Ranges(a), Value::Ranges(b)) => first_overlap(a, b)
                    .map(|(x, y)| format!("{} ranges {x} and {y} overlap", r.name)),
                (Value::Set(a), Value::Set(b)) => {
                    let have: std::collections::HashSet<&String> = a.iter().collect();
                    b.iter()
                        .find(|i| have.contains(i))
                        .map(|i| format!("{} set item {i:?} appears twice", r.name))
                }
                _ => None,
            };
            if let Some(reason) = reason {
                return Err(invalid(input, reason));
            }
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{parse, ports, reason};
    use super::*;

    fn set(items: &[&str]) -> Value {
        Value::Set(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn parses_the_reference_flag_example() {
        let r = parse(
            "cpus:24;mem:24576;disk:409600;ports:[21000-24000,30000-34000];bugs(debug_role):{a,b,c}",
        );
        assert_eq!(r.0.len(), 5);
        assert_eq!(r.scalar("cpus"), 24.0);
        assert_eq!(r.scalar("mem"), 24576.0);
        assert_eq!(r.scalar("disk"), 409600.0);
        assert_eq!(r.0[3].value, ports(&[(21000, 24000), (30000, 34000)]));
        assert_eq!(r.0[3].role, "*");
        assert_eq!(r.0[4].name, "bugs");
        assert_eq!(r.0[4].role, "debug_role");
        assert_eq!(r.0[4].value, set(&["a", "b", "c"]));
    }

    #[test]
    fn tolerates_whitespace_empty_segments_and_newlines() {
        let r = parse("  cpus : 4 ;; mem(eng) :2048;\n ports: [ 1-2 , 5 - 9 ];  ");
        assert_eq!(r.to_string(), "cpus:4;mem(eng):2048;ports:[1-2,5-9]");
        assert!(parse("").0.is_empty());
        assert!(parse(" ; ;").0.is_empty());
    }

    #[test]
    fn rounds_scalars_to_three_decimals() {
        let r = parse("cpus:0.12345;mem:1.0005");
        assert_eq!(r.scalar("cpus"), 0.123);
        assert_eq!(r.scalar("mem"), 1.001);
        assert_eq!(parse("cpus:0.0001").0[0].value, Value::Scalar(0.0));
    }

    #[test]
    fn merges_repeated_names_per_role_and_coalesces_ranges() {
        let r =
            parse("cpus:1;cpus:2.5;cpus(eng):1;ports:[1-2,3-4];ports:[10-10];bugs:{a};bugs:{b}");
        assert_eq!(
            r.to_string(),
            "cpus:3.5;cpus(eng):1;ports:[1-4,10-10];bugs:{a,b}"
        );
        assert_eq!(r.scalar("cpus"), 4.5);
    }

    #[test]
    fn accepts_single_value_ranges_and_empty_containers() {
        assert_eq!(parse("ports:[80-80]").0[0].value, ports(&[(80, 80)]));
        assert_eq!(parse("ports:[]").0[0].value, ports(&[]));
        assert_eq!(parse("bugs:{}").0[0].value, set(&[]));
        assert_eq!(
            parse("x:[0-18446744073709551615]").0[0].value,
            ports(&[(0, u64::MAX)])
        );
    }

    #[test]
    fn rejects_bad_values() {
        assert!(reason("cpus:-1").contains("scalar -1 is negative"));
        assert!(reason("cpus:inf").contains("not finite"));
        assert!(reason("cpus:NaN").contains("not finite"));
        assert!(reason("cpus:1e999").contains("not finite"));
        assert!(reason("cpus:four").contains("\"four\" is not a number"));
        assert!(reason("cpus:").contains("missing value"));
        assert!(reason("ports:[5-1]").contains("range 5-1 has begin greater than end"));
        assert!(reason("ports:[80]").contains("range \"80\" is not of the form begin-end"));
        assert!(reason("ports:[1-2,]").contains("range \"\" is not of the form"));
        assert!(reason("ports:[-1-5]").contains("\"\" is not a non-negative integer"));
        assert!(reason("ports:[a-5]").contains("\"a\" is not a non-negative integer"));
        assert!(reason("ports:[1-5").contains("must be enclosed in '[' and ']'"));
        assert!(reason("ports:[1-5]x").contains("must be enclosed"));
        assert!(reason("ports:[1-10,5-15]").contains("ranges 1-10 and 5-15 overlap"));
        assert!(reason("bugs:{a,b").contains("must end with '}'"));
        assert!(reason("bugs:{a,,b}").contains("empty item"));
        assert!(reason("bugs:{a,a}").contains("\"a\" appears twice"));
        assert!(reason("bugs:{a b}").contains("contains ' '"));
    }

    #[test]
    fn rejects_bad_structure() {
        assert!(reason("cpus").contains("missing ':'"));
        assert!(reason("cpus:4:5").contains("more than one ':'"));
        assert!(reason(":4").contains("resource name is empty"));
        assert!(reason("cp us:4").contains("contains ' '"));
        assert!(reason("cpus(eng:4").contains("must be closed by ')'"));
        assert!(reason("cpus)eng:4").contains("contains ')'"));
        let r = reason("cpus:4;mem:x");
        assert!(r.starts_with("\"mem:x\": "), "{r}");
    }

    #[test]
    fn rejects_conflicts_between_segments() {
        assert!(reason("ports:[1-10];ports:[5-15]").contains("ports ranges 1-10 and 5-15 overlap"));
        assert!(reason("ports:[1-10];ports(eng):[10-12]").contains("overlap"));
        assert!(reason("cpus:1;cpus:[1-2]").contains("resource cpus is both SCALAR and RANGES"));
        assert!(reason("cpus:1;cpus(eng):{a}").contains("both SCALAR and SET"));
        assert!(reason("bugs:{a,b};bugs(x):{b}").contains("bugs set item \"b\" appears twice"));
    }

    #[test]
    fn validates_roles_like_mesos() {
        for good in ["eng", "eng/dev", "a.b", "a-b", "x_1", "*"] {
            assert_eq!(parse(&format!("cpus({good}):1")).0[0].role, good);
        }
        let cases = [
            ("cpus():1", "role is empty"),
            ("cpus(.):1", "\".\" component"),
            ("cpus(..):1", "\"..\" component"),
            ("cpus(a/../b):1", "\"..\" component"),
            ("cpus(a/*):1", "\"*\" component"),
            ("cpus(-eng):1", "starting with '-'"),
            ("cpus(a/-b):1", "starting with '-'"),
            ("cpus(/eng):1", "starts or ends with '/'"),
            ("cpus(eng/):1", "starts or ends with '/'"),
            ("cpus(a//b):1", "contains '//'"),
            ("cpus(e ng):1", "contains ' '"),
            ("cpus(e\tng):1", "contains '\\t'"),
        ];
        for (text, want) in cases {
            let got = reason(text);
            assert!(got.contains(want), "{text}: {got}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "cpus:4;mem:2048;ports:[31000-32000]",
            "disk(eng):100",
            "cpus:0.5;gpus:0;bugs(debug_role):{a,b,c};ports:[21000-24000,30000-34000]",
            "cpus(eng/dev):1.125;mem(eng/dev):1;x:[0-18446744073709551615];s:{}",
        ] {
            let r = parse(text);
            assert_eq!(r.to_string(), text);
            assert_eq!(parse(&r.to_string()), r);
        }
        let r = parse(" cpus : 1.0 ; ports:[3-4,1-2] ;");
        assert_eq!(r.to_string(), "cpus:1;ports:[1-4]");
        assert_eq!(parse(&r.to_string()), r);
    }
}
