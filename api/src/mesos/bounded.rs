//! Mesos JSON read straight from a peer's bytes, within limits.
//!
//! [`prepare`] makes one pass over the text before anything is allocated
//! for it: it checks the nesting depth, the number of values and the items
//! of every list (by the list's path, `accept.operations.launch.task_infos`:
//! object keys joined by dots, list positions left out), and it drops every
//! `null` (Mesos reads `null` as unset, in objects and in lists). The text
//! it returns is then parsed by serde straight into the typed message
//! ([`parse_slice`]), with no `serde_json::Value` in between except for the
//! fields kept as sent.
//!
//! The pass allocates nothing but its stack (bounded by the depth limit)
//! and, only when the text has nulls, one copy of the text without them.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::de::{DeserializeOwned, IgnoredAny};

/// The most items one list at `path` may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLimit {
    /// Object keys from the top, joined by dots (`decline.offer_ids`).
    pub path: &'static str,
    pub max: usize,
    /// What the items are, for the refusal (`offer ids per DECLINE`).
    pub what: &'static str,
}

/// What one message may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Objects and lists nested in one another.
    pub max_depth: usize,
    /// Values of any kind (objects, lists, strings, numbers, ...), all
    /// levels together.
    pub max_values: usize,
    /// Items of a list that [`JsonLimits::lists`] does not name.
    pub max_list_items: usize,
    pub lists: &'static [ListLimit],
}

/// Limits for one Mesos message from a peer that has no limits of its own
/// (a task an agent reports).
pub const MESSAGE_LIMITS: JsonLimits = JsonLimits {
    max_depth: 32,
    max_values: 100_000,
    max_list_items: 10_000,
    lists: &[],
};

impl JsonLimits {
    fn list(&self, path: &str) -> (usize, &'static str) {
        self.lists
            .iter()
            .find(|l| l.path == path)
            .map(|l| (l.max, l.what))
            .unwrap_or((self.max_list_items, "items per list"))
    }
}

/// A message over one of its [`JsonLimits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("objects and lists nested deeper than {max} levels (the limit)")]
    Depth { max: usize },
    #[error("more than {max} JSON values (the limit per message)")]
    Values { max: usize },
    #[error("'{path}' has more than {max} items (the limit of {what})")]
    List {
        path: String,
        max: usize,
        what: &'static str,
    },
}

/// Why a text was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not JSON (serde's message, with the position).
    #[error("{0}")]
    Syntax(serde_json::Error),
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// JSON, but not the message (Mesos' wording where it has one).
    #[error("{0}")]
    Invalid(String),
}

/// Checks `text` against `limits` and drops its nulls; the text comes back
/// untouched (borrowed) when it has none.
pub fn prepare<'a>(text: &'a [u8], limits: &JsonLimits) -> Result<Cow<'a, [u8]>, ReadError> {
    match walk(text, limits, None)? {
        Walked::Valid { nulls: false } => Ok(Cow::Borrowed(text)),
        Walked::Valid { nulls: true } => {
            let mut out = Vec::with_capacity(text.len());
            walk(text, limits, Some(&mut out))?;
            Ok(Cow::Owned(out))
        }
        // serde says where and what; it allocates nothing for IgnoredAny.
        Walked::Invalid => match serde_json::from_slice::<IgnoredAny>(text) {
            Err(e) => Err(ReadError::Syntax(e)),
            Ok(_) => Err(ReadError::Invalid(
                "JSON that Keel cannot read within its limits".into(),
            )),
        },
    }
}

/// Reads a Mesos message from `text` within `limits` (see [`prepare`]).
pub fn parse_slice<T: DeserializeOwned>(text: &[u8], limits: &JsonLimits) -> Result<T, ReadError> {
    let text = prepare(text, limits)?;
    from_prepared(&text)
}

/// Reads a message from a text [`prepare`] returned.
pub fn from_prepared<T: DeserializeOwned>(text: &[u8]) -> Result<T, ReadError> {
    serde_json::from_slice(text).map_err(|e| ReadError::Invalid(super::describe(&e.to_string())))
}

enum Walked {
    Valid { nulls: bool },
    Invalid,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    List,
}

struct Frame {
    kind: Kind,
    /// Length of this container's own path (the start of its members').
    own_path: usize,
    items: usize,
    max_items: usize,
    what: &'static str,
    /// Items written to the output so far (nulls dropped).
    written: usize,
}

/// What comes next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    /// A value (a list item, a member's value, or the whole text).
    Value,
    /// A key or `}` (just after `{`).
    FirstKey,
    /// A key (after a `,` in an object).
    Key,
    /// An item or `]` (just after `[`).
    FirstItem,
    /// `,` or the end of the innermost container.
    Separator,
}

fn ws(text: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = text.get(i) {
        i += 1;
    }
    i
}

/// The end of the string starting at `i` (after its closing quote).
fn string_end(text: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match text.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

fn scalar_end(text: &[u8], i: usize) -> Option<usize> {
    let literal = |word: &[u8]| text[i..].starts_with(word).then_some(i + word.len());
    match text[i] {
        b't' => literal(b"true"),
        b'f' => literal(b"false"),
        b'-' | b'0'..=b'9' => {
            let mut j = i + 1;
            while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = text.get(j) {
                j += 1;
            }
            Some(j)
        }
        _ => None,
    }
}

/// A key's text (escapes decoded), or `None` when it is not a string.
fn key(raw: &[u8]) -> Option<Cow<'_, str>> {
    if raw.contains(&b'\\') {
        serde_json::from_slice::<String>(raw).ok().map(Cow::Owned)
    } else {
        std::str::from_utf8(&raw[1..raw.len() - 1])
            .ok()
            .map(Cow::Borrowed)
    }
}

/// One pass over `text`: the limits, whether it has nulls, and (with
/// `out`) the text without them.
fn walk(
    text: &[u8],
    limits: &JsonLimits,
    mut out: Option<&mut Vec<u8>>,
) -> Result<Walked, LimitError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut path = String::new();
    let mut values = 0usize;
    let mut nulls = false;
    let mut next = Next::Value;
    // The key of the member whose value comes next: where its text starts
    // and ends (with the colon), written only when the value is no null.
    let mut pending_key: Option<(usize, usize)> = None;
    let mut i = ws(text, 0);
    macro_rules! emit {
        ($bytes:expr) => {
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice($bytes);
            }
        };
    }
    loop {
        match next {
            Next::Value => {
                let Some(&c) = text.get(i) else {
                    return Ok(Walked::Invalid);
                };
                values += 1;
                if values > limits.max_values {
                    return Err(LimitError::Values {
                        max: limits.max_values,
                    });
                }
                if let Some(f) = stack.last_mut()
                    && f.kind == Kind::List
                {
                    f.items += 1;
                    if f.items > f.max_items {
                        return Err(LimitError::List {
                            path: path.clone(),
                            max: f.max_items,
                            what: f.what,
                        });
                    }
                }
                if text[i..].starts_with(b"null") && !stack.is_empty() {
                    // Unset: neither the member nor the item is written.
                    nulls = true;
                    pending_key = None;
                    i = ws(text, i + 4);
                    next = Next::Separator;
                    continue;
                }
                if let Some(f) = stack.last_mut() {
                    if f.written > 0 {
                        emit!(b",");
                    }
                    f.written += 1;
                }
                if let Some((start, end)) = pending_key.take() {
                    emit!(&text[start..end]);
                    emit!(b":");
                }
                match c {
                    b'{' | b'[' => {
                        if stack.len() >= limits.max_depth {
                            return Err(LimitError::Depth {
                                max: limits.max_depth,
                            });
                        }
                        let kind = if c == b'{' { Kind::Object } else { Kind::List };
                        let (max_items, what) = match kind {
                            Kind::List => limits.list(&path),
                            Kind::Object => (0, ""),
                        };
                        stack.push(Frame {
                            kind,
                            own_path: path.len(),
                            items: 0,
                            max_items,
                            what,
                            written: 0,
                        });
                        emit!(&[c]);
                        i = ws(text, i + 1);
                        next = if kind == Kind::Object {
                            Next::FirstKey
                        } else {
                            Next::FirstItem
                        };
                    }
                    b'"' => {
                        let Some(end) = string_end(text, i) else {
                            return Ok(Walked::Invalid);
                        };
                        emit!(&text[i..end]);
                        i = ws(text, end);
                        next = Next::Separator;
                    }
                    _ => {
                        // `null` only as the whole text: serde refuses it.
                        let end = if text[i..].starts_with(b"null") {
                            Some(i + 4)
                        } else {
                            scalar_end(text, i)
                        };
                        let Some(end) = end else {
                            return Ok(Walked::Invalid);
                        };
                        emit!(&text[i..end]);
                        i = ws(text, end);
                        next = Next::Separator;
                    }
                }
            }
            Next::FirstKey | Next::Key => {
                if next == Next::FirstKey && text.get(i) == Some(&b'}') {
                    next = Next::Separator;
                    match close(&mut stack, &mut path, text, i, Kind::Object) {
                        Some(j) => i = j,
                        None => return Ok(Walked::Invalid),
                    }
                    emit!(b"}");
                    continue;
                }
                if text.get(i) != Some(&b'"') {
                    return Ok(Walked::Invalid);
                }
                let Some(end) = string_end(text, i) else {
                    return Ok(Walked::Invalid);
                };
                let Some(name) = key(&text[i..end]) else {
                    return Ok(Walked::Invalid);
                };
                let colon = ws(text, end);
                if text.get(colon) != Some(&b':') {
                    return Ok(Walked::Invalid);
                }
                // The member's value lives at `<object's path>.<key>`.
                let own = stack.last().map_or(0, |f| f.own_path);
                path.truncate(own);
                if !path.is_empty() {
                    path.push('.');
                }
                let _ = write!(path, "{name}");
                pending_key = Some((i, end));
                i = ws(text, colon + 1);
                next = Next::Value;
            }
            Next::FirstItem => {
                if text.get(i) == Some(&b']') {
                    next = Next::Separator;
                    match close(&mut stack, &mut path, text, i, Kind::List) {
                        Some(j) => i = j,
                        None => return Ok(Walked::Invalid),
                    }
                    emit!(b"]");
                    continue;
                }
                next = Next::Value;
            }
            Next::Separator => {
                let Some(top) = stack.last() else {
                    // The whole text was read: only blanks may follow.
                    return Ok(if i == text.len() {
                        Walked::Valid { nulls }
                    } else {
                        Walked::Invalid
                    });
                };
                let kind = top.kind;
                match text.get(i) {
                    Some(b',') => {
                        i = ws(text, i + 1);
                        next = if kind == Kind::Object {
                            Next::Key
                        } else {
                            Next::Value
                        };
                    }
                    Some(b'}') if kind == Kind::Object => {
                        match close(&mut stack, &mut path, text, i, kind) {
                            Some(j) => i = j,
                            None => return Ok(Walked::Invalid),
                        }
                        emit!(b"}");
                    }
                    Some(b']') if kind == Kind::List => {
                        match close(&mut stack, &mut path, text, i, kind) {
                            Some(j) => i = j,
                            None => return Ok(Walked::Invalid),
                        }
                        emit!(b"]");
                    }
                    _ => return Ok(Walked::Invalid),
                }
            }
        }
    }
}

/// Ends the innermost container (of `kind`, at `i`); returns where the
/// text goes on.
fn close(
    stack: &mut Vec<Frame>,
    path: &mut String,
    text: &[u8],
    i: usize,
    kind: Kind,
) -> Option<usize> {
    let frame = stack.pop().filter(|f| f.kind == kind)?;
    path.truncate(frame.own_path);
    Some(ws(text, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const LOOSE: JsonLimits = JsonLimits {
        max_depth: 64,
        max_values: 1 << 20,
        max_list_items: 1 << 20,
        lists: &[],
    };

    fn stripped(text: &str) -> String {
        String::from_utf8(prepare(text.as_bytes(), &LOOSE).unwrap().into_owned()).unwrap()
    }

    #[test]
    fn nulls_go_as_strip_nulls_drops_them() {
        for v in [
            json!({"a": null, "b": [null, 1, {"c": null}], "d": {"e": null}}),
            json!([null, null, 1, null, [null], {"x": null, "y": null}, null]),
            json!({"k": [null], "l": {}, "m": [], "n": "null", "o": null}),
            json!({"a\"b": null, "c\\d": 1, "e": ["null", null]}),
        ] {
            let mut expected = v.clone();
            super::super::strip_nulls(&mut expected);
            let got: Value = serde_json::from_str(&stripped(&v.to_string())).unwrap();
            assert_eq!(got, expected, "{v}");
            // Spaces and newlines around everything read the same.
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            let got: Value = serde_json::from_str(&stripped(&pretty)).unwrap();
            assert_eq!(got, expected, "{pretty}");
        }
    }

    #[test]
    fn text_without_nulls_is_not_copied() {
        let text = br#"{"a": [1, 2.5e3, -3, true, false, "x\"y"], "b": {}}"#;
        assert!(matches!(prepare(text, &LOOSE).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn broken_text_gets_serdes_message() {
        for text in [
            &b""[..],
            b"{",
            b"{\"a\" 1}",
            b"{\"a\": 1,}",
            b"[1 2]",
            b"{\"a\": tru}",
            b"{} x",
            b"{\"a\": \"unterminated",
            b"]",
        ] {
            match prepare(text, &LOOSE) {
                Err(ReadError::Syntax(_)) => {}
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(text)),
            }
        }
        // A top-level null is JSON; the message type refuses it later.
        assert_eq!(stripped("null"), "null");
    }

    #[test]
    fn lists_are_limited_by_path() {
        const LISTS: JsonLimits = JsonLimits {
            max_depth: 8,
            max_values: 1000,
            max_list_items: 5,
            lists: &[
                ListLimit {
                    path: "a.b",
                    max: 2,
                    what: "bees",
                },
                ListLimit {
                    path: "a.c.d",
                    max: 10,
                    what: "dees",
                },
            ],
        };
        let check = |v: Value| prepare(v.to_string().as_bytes(), &LISTS).map(|_| ());
        check(json!({"a": {"b": [1, 2], "c": [{"d": [1, 2, 3, 4, 5, 6]}]}})).unwrap();
        let err = check(json!({"a": {"b": [1, 2, 3]}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "'a.b' has more than 2 items (the limit of bees)"
        );
        // Nulls count: they cost reading all the same.
        assert!(check(json!({"a": {"b": [1, null, null]}})).is_err());
        // The path goes through lists; keys are read with their escapes.
        let err = check(json!({"a": {"c": [{}, {"d": (0..11).collect::<Vec<_>>()}]}}));
        assert!(err.unwrap_err().to_string().contains("'a.c.d'"));
        let escaped = br#"{"a": {"\u0062": [1, 2, 3]}}"#;
        assert!(matches!(
            prepare(escaped, &LISTS),
            Err(ReadError::Limit(LimitError::List { max: 2, .. }))
        ));
        // Lists nobody named get the general limit.
        let err = check(json!({"x": [[1, 2, 3, 4, 5, 6]]})).unwrap_err();
        assert!(err.to_string().contains("'x' has more than 5"), "{err}");
        // After a named list, its siblings are themselves again.
        check(json!({"a": {"b": [1], "e": [1, 2, 3, 4]}})).unwrap();
    }

    #[test]
    fn depth_and_values_are_limited() {
        let tight = JsonLimits {
            max_depth: 3,
            max_values: 6,
            ..LOOSE
        };
        assert!(prepare(b"[[[1]]]", &tight).is_ok());
        assert!(matches!(
            prepare(b"[[[[1]]]]", &tight),
            Err(ReadError::Limit(LimitError::Depth { max: 3 }))
        ));
        assert!(prepare(b"[1,2,3,4,5]", &tight).is_ok());
        assert!(matches!(
            prepare(b"[1,2,3,4,5,6]", &tight),
            Err(ReadError::Limit(LimitError::Values { max: 6 }))
        ));
        // Limits apply before a syntax error further on.
        assert!(matches!(
            prepare(b"[1,2,3,4,5,6,", &tight),
            Err(ReadError::Limit(_))
        ));
    }

    #[test]
    fn typed_parse_reads_mesos_leniency() {
        let id: crate::mesos::Id =
            parse_slice(br#"{"value": "x", "other": null, "more": [null]}"#, &LOOSE).unwrap();
        assert_eq!(id.value, "x");
        let err = parse_slice::<crate::mesos::Id>(br#"{"value": null}"#, &LOOSE).unwrap_err();
        assert_eq!(err.to_string(), "Missing required fields: value");
    }
}
