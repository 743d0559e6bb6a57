use super::*;
use crate::soft;

fn modulus() -> Vec<u8> {
    (0..256u32).map(|i| (i as u8) | 0x80).collect()
}

#[test]
fn an_ek_template_reads_back() {
    let bytes = soft::rsa_ek_public(&modulus());
    let ek = TpmPublic::parse(&bytes).unwrap();
    assert_eq!(ek.name_alg, ALG_SHA256);
    assert_eq!(
        ek.symmetric,
        Some(Symmetric {
            alg: ALG_AES,
            key_bits: 128,
            mode: ALG_CFB
        })
    );
    assert_eq!(ek.scheme, None);
    assert_eq!(ek.auth_policy, soft::EK_POLICY_A_SHA256);
    assert_eq!(
        ek.key,
        PublicKey::Rsa {
            modulus: modulus(),
            exponent: 0
        }
    );
    ek.check_endorsement_key().unwrap();
    assert!(ek.check_attestation_key().is_err());
    // The name is nameAlg || SHA-256 of the bytes.
    let name = ek.name();
    assert_eq!(&name[..2], &[0x00, 0x0b]);
    assert_eq!(&name[2..], Sha256::digest(&bytes).as_slice());
    assert_eq!(
        ek.fingerprint(),
        key::fingerprint(&PublicKey::Rsa {
            modulus: modulus(),
            exponent: 65537
        })
        .unwrap()
    );
}

#[test]
fn an_ak_reads_back() {
    let bytes = soft::ecc_ak_public(&[1; 32], &[2; 32], soft::AK_ATTRIBUTES);
    let ak = TpmPublic::parse(&bytes).unwrap();
    assert_eq!(
        ak.scheme,
        Some(Scheme {
            alg: ALG_ECDSA,
            hash: ALG_SHA256
        })
    );
    ak.check_attestation_key().unwrap();
    let err = TpmPublic::parse(&soft::ecc_ak_public(
        &[1; 32],
        &[2; 32],
        soft::AK_ATTRIBUTES | attr::DECRYPT,
    ))
    .unwrap()
    .check_attestation_key()
    .unwrap_err();
    assert!(err.to_string().contains("not decrypt"), "{err}");
}

#[test]
fn malformed_areas_are_errors() {
    let good = soft::rsa_ek_public(&modulus());
    // Every truncation is an error, none a panic.
    for n in 0..good.len() {
        assert!(TpmPublic::parse(&good[..n]).is_err(), "{n}");
    }
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(
        TpmPublic::parse(&long),
        Err(PublicError::Wire(WireError::Trailing { .. }))
    ));
    let mut sha1 = good.clone();
    sha1[3] = 0x04;
    assert!(matches!(
        TpmPublic::parse(&sha1),
        Err(PublicError::Unsupported {
            what: "name algorithm",
            ..
        })
    ));
    assert!(matches!(
        TpmPublic::parse(&vec![0; 2000]),
        Err(PublicError::TooLong(2000))
    ));
    let zero = soft::rsa_ek_public(&[0; 256]);
    assert!(matches!(TpmPublic::parse(&zero), Err(PublicError::Key(_))));
}
