//! RecordIO decoding: `<decimal length>\n<that many bytes>` records back to
//! back, as the Mesos scheduler and operator event streams send them.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecordIoError {
    #[error("invalid record length {0:?}")]
    Length(String),
    #[error("record of {0} bytes exceeds the limit")]
    TooLarge(usize),
}

/// Incremental decoder: feed bytes as they arrive, take whole records.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

/// Records larger than this are refused (a corrupt length, most likely).
const MAX_RECORD: usize = 64 << 20;

impl Decoder {
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
            if len > MAX_RECORD {
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
    }
}
