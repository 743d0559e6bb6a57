//! One record of a segment: `len: u32 LE | crc32: u32 LE | entry`, the
//! checksum over the length and the entry. Pure: bytes in, bytes out.

/// Bytes before a record's entry.
pub(super) const HEADER: u64 = 8;

/// What the bytes at an offset hold.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record<'a> {
    Ok(&'a [u8]),
    /// A zero header: nothing was written here.
    End,
    /// Cut short or partly unwritten: what a crash leaves.
    Torn,
    /// Damaged.
    Bad(String),
}

/// Appends the record of `raw` to `buf`.
pub(super) fn encode(raw: &[u8], buf: &mut Vec<u8>) {
    let len = (raw.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(raw);
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.extend_from_slice(raw);
}

/// The record at `at` in `bytes`. A checksum failure over bytes that
/// include zeros is a torn write (JSON has no zero bytes: part of it never
/// reached the disk); over written bytes it is damage.
pub(super) fn decode(bytes: &[u8], at: u64) -> Record<'_> {
    let at = at as usize;
    let Some(header) = bytes.get(at..at + HEADER as usize) else {
        return Record::End;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 {
        return if crc == 0 { Record::End } else { Record::Torn };
    }
    let start = at + HEADER as usize;
    let Some(raw) = bytes.get(start..start + len as usize) else {
        return Record::Torn;
    };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..4]);
    hasher.update(raw);
    if hasher.finalize() == crc {
        Record::Ok(raw)
    } else if raw.contains(&0) {
        Record::Torn
    } else {
        Record::Bad("fails its checksum".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_end_at_zeros() {
        let mut buf = Vec::new();
        encode(b"{\"a\":1}", &mut buf);
        encode(b"[]", &mut buf);
        buf.extend_from_slice(&[0; 16]);
        assert_eq!(decode(&buf, 0), Record::Ok(b"{\"a\":1}"));
        let second = HEADER + 7;
        assert_eq!(decode(&buf, second), Record::Ok(b"[]"));
        assert_eq!(decode(&buf, second + HEADER + 2), Record::End);
        // Past the end of the bytes: nothing more either.
        assert_eq!(decode(&buf, buf.len() as u64), Record::End);
    }

    #[test]
    fn torn_and_damaged_records_are_told_apart() {
        let mut buf = Vec::new();
        encode(b"{\"a\":1}", &mut buf);
        // Cut short.
        assert_eq!(decode(&buf[..buf.len() - 1], 0), Record::Torn);
        // Part of the entry never written (zeros).
        let mut torn = buf.clone();
        torn[HEADER as usize + 3] = 0;
        assert_eq!(decode(&torn, 0), Record::Torn);
        // A length without its checksum.
        let mut header_only = buf.clone();
        header_only[..4].copy_from_slice(&[0; 4]);
        assert_eq!(decode(&header_only, 0), Record::Torn);
        // A flipped byte in written data.
        let mut bad = buf.clone();
        bad[HEADER as usize + 3] = b'X';
        assert_eq!(decode(&bad, 0), Record::Bad("fails its checksum".into()));
    }
}
