//! A TPM key's public part as the rest of the world names it: a DER
//! `SubjectPublicKeyInfo` (RFC 5280, RFC 3279, RFC 5480), and the SHA-256
//! of that, the fingerprint `openssl pkey -pubin -outform DER | sha256sum`
//! gives for the same key. An endorsement key is known by this
//! fingerprint everywhere: the agent's inventory, `--tpm-ek-allow`, the
//! pending list, the agent's certificate.

use sha2::{Digest, Sha256};

use crate::wire::hex;

/// The public part of a TPM key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Big-endian modulus; an exponent of 0 is the TPM's way of saying
    /// the default, 65537.
    Rsa { modulus: Vec<u8>, exponent: u32 },
    /// A NIST P-256 point, big-endian coordinates.
    EccP256 { x: Vec<u8>, y: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("malformed public key: {0}")]
    Malformed(String),
}

impl PublicKey {
    /// The RSA exponent, 65537 for the TPM's 0.
    pub fn rsa_exponent(exponent: u32) -> u32 {
        if exponent == 0 { 65537 } else { exponent }
    }

    /// The uncompressed SEC1 point of a P-256 key (`04 || x || y`).
    pub fn p256_point(x: &[u8], y: &[u8]) -> Result<Vec<u8>, KeyError> {
        Ok([vec![0x04], coordinate(x)?, coordinate(y)?].concat())
    }
}

/// rsaEncryption, 1.2.840.113549.1.1.1.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-ecPublicKey, 1.2.840.10045.2.1.
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 (secp256r1), 1.2.840.10045.3.1.7.
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

const P256_BYTES: usize = 32;

/// SHA-256 of the key's DER `SubjectPublicKeyInfo`, lower-case hex.
pub fn fingerprint(key: &PublicKey) -> Result<String, KeyError> {
    let der = spki_der(key)?;
    Ok(hex(&Sha256::digest(&der)))
}

/// The key as a DER `SubjectPublicKeyInfo`.
pub fn spki_der(key: &PublicKey) -> Result<Vec<u8>, KeyError> {
    match key {
        PublicKey::Rsa { modulus, exponent } => {
            if modulus.iter().all(|b| *b == 0) {
                return Err(KeyError::Malformed("empty RSA modulus".into()));
            }
            let e = PublicKey::rsa_exponent(*exponent);
            let rsa_key = tlv(
                0x30,
                &[integer(modulus), integer(&e.to_be_bytes())].concat(),
            );
            let algorithm = tlv(0x30, &[tlv(0x06, OID_RSA), vec![0x05, 0x00]].concat());
            Ok(tlv(0x30, &[algorithm, bit_string(&rsa_key)].concat()))
        }
        PublicKey::EccP256 { x, y } => {
            let point = PublicKey::p256_point(x, y)?;
            let algorithm = tlv(0x30, &[tlv(0x06, OID_EC), tlv(0x06, OID_P256)].concat());
            Ok(tlv(0x30, &[algorithm, bit_string(&point)].concat()))
        }
    }
}

/// A P-256 coordinate as exactly 32 bytes (a TPM may drop leading zeros).
fn coordinate(c: &[u8]) -> Result<Vec<u8>, KeyError> {
    let c = strip_zeros(c);
    if c.len() > P256_BYTES {
        return Err(KeyError::Malformed(format!(
            "P-256 coordinate of {} bytes",
            c.len()
        )));
    }
    let mut out = vec![0; P256_BYTES - c.len()];
    out.extend_from_slice(c);
    Ok(out)
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[first..]
}

/// A DER INTEGER holding the unsigned big-endian number `n`.
fn integer(n: &[u8]) -> Vec<u8> {
    let n = strip_zeros(n);
    let mut body = Vec::with_capacity(n.len() + 1);
    if n.is_empty() || n[0] & 0x80 != 0 {
        body.push(0);
    }
    body.extend_from_slice(n);
    tlv(0x02, &body)
}

/// A DER BIT STRING of whole bytes.
fn bit_string(bytes: &[u8]) -> Vec<u8> {
    tlv(0x03, &[&[0][..], bytes].concat())
}

/// Tag, definite length, value.
fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let len_bytes = strip_zeros(&bytes);
        out.push(0x80 | len_bytes.len() as u8);
        out.extend_from_slice(len_bytes);
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // A throwaway key made with `openssl genrsa 2048`; the expected value
    // is `openssl rsa -pubout -outform DER | sha256sum`.
    const RSA_MODULUS: &str = "
        8d3353cb63bc01f513683ebf9449750a0d7de28071fe3c400998bcadb3d3f88f
        8d579bfb2b8be72ea1be07fee663cd52c4eb1839fcba736271b6a159c641f900
        b4e76f953d6aa09e9ca1041976010804804ae8f94909b38135626168b9bdee7a
        465c0571280cb85a8096bea11c0f4dd0da1ef7e1c4bbdbc3edf5eac635730097
        0a2d6acfe15d7d27917b0c5b816545e54e0966dfdea882e278a2d7a01b59b4ae
        54c93fc069f9c1c804dbdd16d3051f0d99cf283847304f6ce6dd1acb31a27eb3
        c835e85881df14ae14a23fa7734d5f3c03d7e930e68a5b34b4bd4c525594c7ac
        c403e739ec735aaddeb8fe6d5d33dca88590bd30e2dd35c2f15250e6f2b6c223";
    const RSA_SHA256: &str = "09a8e50b38ea2976aa7d04f070719db5dcb0042d62876ccf974c29262f655c8c";

    // `openssl ecparam -name prime256v1 -genkey`, then `openssl ec -pubout
    // -outform DER`: the point is its last 65 bytes.
    const EC_POINT: &str = "04
        63c697ef14e76fec25d21be77006ef513852bc871f777f34cebf0eec2a823576
        da04231e62941a5448f191354e1db10f3323920578b4c25ac448768cacc03798";
    const EC_SHA256: &str = "78def18e3bdac3470e2ef257f1e64680482e218ac4dc9561fe2b5ce9d82cbda3";

    #[test]
    fn rsa_fingerprint_matches_openssl() {
        let key = PublicKey::Rsa {
            modulus: hex(RSA_MODULUS),
            exponent: 0,
        };
        assert_eq!(fingerprint(&key).unwrap(), RSA_SHA256);
        // 0 is the default exponent.
        let explicit = PublicKey::Rsa {
            modulus: hex(RSA_MODULUS),
            exponent: 65537,
        };
        assert_eq!(fingerprint(&explicit).unwrap(), RSA_SHA256);
        let der = spki_der(&key).unwrap();
        assert_eq!(der.len(), 294, "the size of every RSA-2048 SPKI");
        assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x22]);
    }

    #[test]
    fn ecc_fingerprint_matches_openssl_and_pads_short_coordinates() {
        let point = hex(EC_POINT);
        let key = PublicKey::EccP256 {
            x: point[1..33].to_vec(),
            y: point[33..].to_vec(),
        };
        assert_eq!(fingerprint(&key).unwrap(), EC_SHA256);
        assert_eq!(spki_der(&key).unwrap().len(), 91);

        let short = PublicKey::EccP256 {
            x: vec![1],
            y: vec![0, 0, 2],
        };
        let der = spki_der(&short).unwrap();
        assert_eq!(&der[der.len() - 65..der.len() - 63], &[0x04, 0]);
        assert_eq!(der[der.len() - 33], 1);
        assert_eq!(der[der.len() - 1], 2);
    }

    #[test]
    fn malformed_keys_are_errors() {
        let empty = PublicKey::Rsa {
            modulus: vec![0; 4],
            exponent: 0,
        };
        assert!(fingerprint(&empty).is_err());
        let long = PublicKey::EccP256 {
            x: vec![1; 33],
            y: vec![1; 32],
        };
        assert!(fingerprint(&long).is_err());
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(integer(&[0, 0, 0x7f]), [0x02, 1, 0x7f]);
        assert_eq!(integer(&[0x80]), [0x02, 2, 0, 0x80]);
        assert_eq!(integer(&[0, 0]), [0x02, 1, 0]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
    }
}
