//! The endorsement key's identity: its public key as a DER
//! `SubjectPublicKeyInfo` and the SHA-256 of that, the fingerprint
//! `openssl pkey -pubin -outform DER | sha256sum` gives for the same key.
//! The one encoding is keel-attest's (`keel_attest::key`), the master's
//! for `--tpm-ek-allow` and the pending list: the agent shows the value
//! the master checks. Pure: the TPM's answer comes in as [`EkPublic`].

use super::TpmError;

/// The public part of an endorsement key, as the TPM returned it.
pub use keel_attest::key::PublicKey as EkPublic;

/// SHA-256 of the key's DER `SubjectPublicKeyInfo`, lower-case hex.
pub fn fingerprint(key: &EkPublic) -> Result<String, TpmError> {
    keel_attest::key::fingerprint(key).map_err(|e| TpmError::EndorsementKey(e.to_string()))
}

/// The key as a DER `SubjectPublicKeyInfo`.
pub fn spki_der(key: &EkPublic) -> Result<Vec<u8>, TpmError> {
    keel_attest::key::spki_der(key).map_err(|e| TpmError::EndorsementKey(e.to_string()))
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
        let key = EkPublic::Rsa {
            modulus: hex(RSA_MODULUS),
            exponent: 0,
        };
        assert_eq!(fingerprint(&key).unwrap(), RSA_SHA256);
        // 0 is the default exponent.
        let explicit = EkPublic::Rsa {
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
        let key = EkPublic::EccP256 {
            x: point[1..33].to_vec(),
            y: point[33..].to_vec(),
        };
        assert_eq!(fingerprint(&key).unwrap(), EC_SHA256);
        assert_eq!(spki_der(&key).unwrap().len(), 91);

        let short = EkPublic::EccP256 {
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
        let empty = EkPublic::Rsa {
            modulus: vec![0; 4],
            exponent: 0,
        };
        assert!(fingerprint(&empty).is_err());
        let long = EkPublic::EccP256 {
            x: vec![1; 33],
            y: vec![1; 32],
        };
        assert!(fingerprint(&long).is_err());
    }
}
