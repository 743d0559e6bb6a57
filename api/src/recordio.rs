//! RecordIO: `<decimal length>\n<that many bytes>` records back to back,
//! as the Mesos scheduler and operator event streams send them. [`encode`]
//! makes one record; [`Decoder`] takes them apart.

/// One record of `message` as compact JSON, every non-ASCII character
/// escaped as `\uXXXX` (clients compare byte lengths with character
/// counts), with no trailing newline.
pub fn encode(message: &impl serde::Serialize) -> String {
    let body = ascii_json(message);
    format!("{}\n{}", body.len(), body)
}

/// Compact JSON with non-ASCII escaped.
pub fn ascii_json(message: &impl serde::Serialize) -> String {
    // Serializing plain data (maps with string keys) cannot fail.
    let text = serde_json::to_string(message).unwrap_or_default();
    if text.is_ascii() {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecordIoError {
    #[error("invalid record length {0:?}")]
    Length(String),
    #[error("record of {0} bytes exceeds the limit")]
    TooLarge(usize),
}

/// Incremental decoder: feed bytes as they arrive, take whole records.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    limit: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::with_limit(MAX_RECORD)
    }
}

/// Records larger than this are refused (a corrupt length, most likely).
const MAX_RECORD: usize = 64 << 20;

impl Decoder {
    /// A decoder that refuses records longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Decoder {
            buf: Vec::new(),
            limit,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, RecordIoError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            let Some(nl) = self.buf.iter().position(|b| *b == b'\n') else {
                if self.buf.len() > 20 {
                    return Err(RecordIoError::Length(
                        String::from_utf8_lossy(&self.buf[..20]).into(),
                    ));
                }
                break;
            };
            let text = std::str::from_utf8(&self.buf[..nl]).unwrap_or("");
            let len: usize = text
                .trim()
                .parse()
                .map_err(|_| RecordIoError::Length(text.to_string()))?;
            if len > self.limit {
                return Err(RecordIoError::TooLarge(len));
            }
            if self.buf.len() < nl + 1 + len {
                break;
            }
            out.push(self.buf[nl + 1..nl + 1 + len].to_vec());
            self.buf.drain(..nl + 1 + len);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_length_prefixed_without_trailing_newline() {
        let r = encode(&serde_json::json!({"type": "HEARTBEAT"}));
        assert_eq!(r, "20\n{\"type\":\"HEARTBEAT\"}");
    }

    #[test]
    fn non_ascii_is_escaped_and_lengths_count_bytes() {
        let e = serde_json::json!({"message": "caf\u{e9} \u{1F600}"});
        let r = encode(&e);
        assert!(r.is_ascii());
        assert!(r.contains("caf\\u00e9 \\ud83d\\ude00"));
        let (len, body) = r.split_once('\n').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), body.len());
        let mut d = Decoder::default();
        let back = d.push(r.as_bytes()).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&back[0]).unwrap(),
            e
        );
    }

    #[test]
    fn records_split_anywhere() {
        let stream = b"20\n{\"type\":\"HEARTBEAT\"}5\nhello";
        for split in 0..stream.len() {
            let mut d = Decoder::default();
            let mut got = d.push(&stream[..split]).unwrap();
            got.extend(d.push(&stream[split..]).unwrap());
            assert_eq!(
                got,
                vec![b"{\"type\":\"HEARTBEAT\"}".to_vec(), b"hello".to_vec()]
            );
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert!(Decoder::default().push(b"x1\nab").is_err());
        assert!(Decoder::default().push(b"999999999999\n").is_err());
        assert_eq!(
            Decoder::with_limit(4).push(b"5\nhello"),
            Err(RecordIoError::TooLarge(5))
        );
    }
}
