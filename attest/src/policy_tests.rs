use super::*;

#[test]
fn allow_lists_take_fingerprints_and_comments() {
    let a = "ab".repeat(32);
    let text = format!(
        "# lab TPMs\nsha256:{}\n\n  sha256:{a}  # again\n",
        "CD".repeat(32)
    );
    let list = AllowList::parse(&text).unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.contains(&a));
    assert!(list.contains(&"cd".repeat(32)));
    for bad in ["ab", "sha256:abc", &"ab".repeat(32), "sha1:00"] {
        assert!(
            matches!(
                AllowList::parse(bad),
                Err(PolicyError::AllowLine { line: 1, .. })
            ),
            "{bad}"
        );
    }
    assert_eq!(
        parse_fingerprint(&format!("sha256:{}", "AB".repeat(32))),
        Some(a.clone())
    );
    assert_eq!(parse_fingerprint(&a), Some(a));
    assert_eq!(parse_fingerprint("sha256:zz"), None);
}

/// A manufacturer CA and an EK certificate it signed for `ek`.
fn issue(ek: &PublicKey, ca_name: &str) -> (rcgen::Certificate, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let spki = key::spki_der(ek).unwrap();
    let ek_key = rcgen::SubjectPublicKeyInfo::from_der(&spki).unwrap();
    let params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let cert = params.signed_by(&ek_key, &issuer).unwrap();
    (ca, cert.der().to_vec())
}

fn ek() -> PublicKey {
    let tpm = crate::soft::SoftTpm::new().unwrap();
    crate::public::TpmPublic::parse(tpm.ek_public())
        .unwrap()
        .key
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn ek_certificates_chain_to_a_configured_ca() {
    let ek = ek();
    let (ca, cert) = issue(&ek, "TPM Manufacturer CA");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("maker.pem"), ca.pem()).unwrap();
    let roots = EkRoots::load_dir(dir.path()).unwrap();
    assert_eq!(roots.len(), 1);
    let ok = roots.verify(&cert, &ek, now()).unwrap();
    assert!(ok.issuer.contains("TPM Manufacturer CA"), "{ok:?}");

    // Another key than the TPM's.
    let other = PublicKey::EccP256 {
        x: vec![1; 32],
        y: vec![2; 32],
    };
    assert!(matches!(
        roots.verify(&cert, &other, now()),
        Err(PolicyError::OtherKey)
    ));
    // A CA of the same name that did not sign it.
    let (impostor, _) = issue(&ek, "TPM Manufacturer CA");
    let roots = EkRoots::from_der(vec![impostor.der().to_vec()]);
    assert!(matches!(
        roots.verify(&cert, &ek, now()),
        Err(PolicyError::UnknownIssuer(_))
    ));
    // Outside its validity (rcgen's default runs from 1975 to 4096).
    let roots = EkRoots::from_der(vec![ca.der().to_vec()]);
    assert!(matches!(
        roots.verify(&cert, &ek, 0),
        Err(PolicyError::Expired)
    ));
    assert!(matches!(
        roots.verify(b"junk", &ek, now()),
        Err(PolicyError::EkCertificate(_))
    ));
}

#[test]
fn ca_directories_take_pem_and_der_and_refuse_junk() {
    let ek = ek();
    let (a, _) = issue(&ek, "A");
    let (b, _) = issue(&ek, "B");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ab.pem"), format!("{}{}", a.pem(), b.pem())).unwrap();
    std::fs::write(dir.path().join("a.der"), a.der()).unwrap();
    assert_eq!(EkRoots::load_dir(dir.path()).unwrap().len(), 3);
    std::fs::write(dir.path().join("junk.crt"), "not a certificate").unwrap();
    assert!(EkRoots::load_dir(dir.path()).is_err());
    assert!(matches!(
        EkRoots::load_dir(&dir.path().join("missing")),
        Err(PolicyError::Io { .. })
    ));
}
