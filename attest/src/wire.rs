//! The TPM's wire format (TPM 2.0 Part 2, "marshalled" structures):
//! big-endian integers and `TPM2B_*` buffers (a 16-bit size, then that
//! many bytes). A [`Reader`] over a peer's bytes refuses to read past the
//! end; [`put_2b`] writes a buffer.

/// What is wrong with bytes that should hold a TPM structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{what}: {needed} bytes needed at offset {at}, {left} left")]
    Short {
        what: &'static str,
        at: usize,
        needed: usize,
        left: usize,
    },
    #[error("{what}: {extra} bytes left over")]
    Trailing { what: &'static str, extra: usize },
    #[error("{what}: {size} bytes, at most {max}")]
    TooLong {
        what: &'static str,
        size: usize,
        max: usize,
    },
}

/// Reads a marshalled structure front to back.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    /// How far it has read.
    pub fn position(&self) -> usize {
        self.at
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let left = self.bytes.len() - self.at;
        if n > left {
            return Err(WireError::Short {
                what,
                at: self.at,
                needed: n,
                left,
            });
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        let b = self.take(8, what)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A `TPM2B_*`: its size, then its bytes; at most `max` of them.
    pub fn tpm2b(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let size = usize::from(self.u16(what)?);
        if size > max {
            return Err(WireError::TooLong { what, size, max });
        }
        self.take(size, what)
    }

    /// Everything read: nothing may be left over.
    pub fn finish(&self, what: &'static str) -> Result<(), WireError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            extra => Err(WireError::Trailing { what, extra }),
        }
    }
}

/// Appends `bytes` as a `TPM2B_*` (callers keep them under 64 KiB).
pub fn put_2b(out: &mut Vec<u8>, bytes: &[u8]) {
    let size = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(size)]);
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex (either case); `None` when it is not hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_sized_buffers() {
        let bytes = [0, 1, 0, 0, 0, 2, 0, 3, 0xaa, 0xbb, 0xcc, 9];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u16("a"), Ok(1));
        assert_eq!(r.u32("b"), Ok(2));
        assert_eq!(r.tpm2b("c", 3), Ok(&[0xaa, 0xbb, 0xcc][..]));
        assert!(matches!(
            r.finish("x"),
            Err(WireError::Trailing { extra: 1, .. })
        ));
        assert_eq!(r.u8("d"), Ok(9));
        assert_eq!(r.finish("x"), Ok(()));
        assert!(matches!(r.u8("e"), Err(WireError::Short { at: 12, .. })));
    }

    #[test]
    fn sized_buffers_are_bounded() {
        let bytes = [0, 3, 1, 2, 3];
        assert!(matches!(
            Reader::new(&bytes).tpm2b("c", 2),
            Err(WireError::TooLong {
                size: 3,
                max: 2,
                ..
            })
        ));
        let short = [0, 9, 1];
        assert!(matches!(
            Reader::new(&short).tpm2b("c", 64),
            Err(WireError::Short { needed: 9, .. })
        ));
        let mut out = Vec::new();
        put_2b(&mut out, &[7, 8]);
        assert_eq!(out, [0, 2, 7, 8]);
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(unhex("00AB10"), Some(vec![0, 0xab, 0x10]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
