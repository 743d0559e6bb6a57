use super::*;
use crate::challenge::BOOT_PCRS;
use crate::soft::SoftTpm;

fn ak(tpm: &SoftTpm) -> TpmPublic {
    TpmPublic::parse(tpm.ak_public()).unwrap()
}

#[test]
fn a_quote_reads_back_and_verifies() {
    let tpm = SoftTpm::new().unwrap();
    let (attest, sig, pcrs) = tpm.quote(b"nonce", &BOOT_PCRS).unwrap();
    let q = Quote::parse(&attest).unwrap();
    assert_eq!(q.extra_data, b"nonce");
    assert_eq!(
        q.selection,
        [PcrSelection {
            hash: ALG_SHA256,
            pcrs: BOOT_PCRS.to_vec()
        }]
    );
    assert_eq!(q.qualified_signer, ak(&tpm).name());
    let v = verify_quote(&ak(&tpm), &attest, &sig, b"nonce", &BOOT_PCRS, &pcrs).unwrap();
    assert_eq!(v.quote, q);
}

#[test]
fn tampering_is_refused() {
    let tpm = SoftTpm::new().unwrap();
    let key = ak(&tpm);
    let (attest, sig, pcrs) = tpm.quote(b"nonce", &BOOT_PCRS).unwrap();
    let mut changed = attest.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    assert_eq!(
        verify_quote(&key, &changed, &sig, b"nonce", &BOOT_PCRS, &pcrs),
        Err(QuoteError::BadSignature)
    );
    assert_eq!(
        verify_quote(&key, &attest, &sig, b"other", &BOOT_PCRS, &pcrs),
        Err(QuoteError::WrongNonce)
    );
    assert_eq!(
        verify_quote(&key, &attest, &sig, b"nonce", &[0, 1], &pcrs),
        Err(QuoteError::WrongPcrs(vec![0, 1]))
    );
    let mut lied = pcrs.clone();
    lied[7] = vec![0; 32];
    assert_eq!(
        verify_quote(&key, &attest, &sig, b"nonce", &BOOT_PCRS, &lied),
        Err(QuoteError::PcrDigest)
    );
    assert_eq!(
        verify_quote(&key, &attest, &sig, b"nonce", &BOOT_PCRS, &pcrs[..7]),
        Err(QuoteError::PcrDigest)
    );
    // Another TPM's AK did not sign it.
    let other = SoftTpm::new().unwrap();
    assert_eq!(
        verify_quote(&ak(&other), &attest, &sig, b"nonce", &BOOT_PCRS, &pcrs),
        Err(QuoteError::BadSignature)
    );
}

#[test]
fn malformed_quotes_are_errors() {
    let tpm = SoftTpm::new().unwrap();
    let (attest, sig, _) = tpm.quote(b"n", &BOOT_PCRS).unwrap();
    for n in 0..attest.len() {
        assert!(Quote::parse(&attest[..n]).is_err(), "{n}");
    }
    for n in 0..sig.len() {
        assert!(Signature::parse(&sig[..n]).is_err(), "{n}");
    }
    let mut magic = attest.clone();
    magic[0] = 0;
    assert!(matches!(
        Quote::parse(&magic),
        Err(QuoteError::NotGenerated(_))
    ));
    let mut kind = attest.clone();
    kind[5] = 0x17; // TPM_ST_ATTEST_CERTIFY
    assert_eq!(Quote::parse(&kind), Err(QuoteError::NotAQuote(0x8017)));
}

/// What swtpm 0.7 (libtpms 0.9) produced, captured by the agent's
/// `tests/tpm_attest.rs` with `KEEL_CAPTURE_TPM`: an RSA-2048 EK of the
/// default template, an RSASSA-SHA-256 AK made under it, a quote of PCRs
/// 0-7 over a nonce.
mod swtpm {
    use super::*;
    use crate::wire::unhex;

    fn read(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/swtpm/");
        std::fs::read(format!("{dir}{name}")).unwrap()
    }

    fn pcrs() -> Vec<Vec<u8>> {
        String::from_utf8(read("pcrs"))
            .unwrap()
            .lines()
            .map(|l| unhex(l).unwrap())
            .collect()
    }

    #[test]
    fn its_keys_read_back() {
        let ek = TpmPublic::parse(&read("ek.pub")).unwrap();
        ek.check_endorsement_key().unwrap();
        assert_eq!(
            ek.fingerprint(),
            String::from_utf8(read("ek.sha256")).unwrap()
        );
        let ak = TpmPublic::parse(&read("ak.pub")).unwrap();
        ak.check_attestation_key().unwrap();
        assert!(matches!(
            ak.scheme,
            Some(crate::public::Scheme {
                alg: ALG_RSASSA,
                hash: ALG_SHA256
            })
        ));
        assert_eq!(ak.name().len(), 34);
    }

    #[test]
    fn its_quote_verifies_and_nothing_else_does() {
        let ak = TpmPublic::parse(&read("ak.pub")).unwrap();
        let (attest, sig, nonce) = (read("quote.attest"), read("quote.sig"), read("nonce"));
        let v = verify_quote(&ak, &attest, &sig, &nonce, &BOOT_PCRS, &pcrs()).unwrap();
        assert_eq!(v.quote.qualified_signer.len(), 34);
        assert!(matches!(
            Signature::parse(&sig).unwrap(),
            Signature::RsaSsa {
                hash: ALG_SHA256,
                ..
            }
        ));
        assert_eq!(
            verify_quote(&ak, &attest, &sig, &[0; 32], &BOOT_PCRS, &pcrs()),
            Err(QuoteError::WrongNonce)
        );
        let mut forged = attest.clone();
        forged[10] ^= 0xff;
        assert_eq!(
            verify_quote(&ak, &forged, &sig, &nonce, &BOOT_PCRS, &pcrs()),
            Err(QuoteError::BadSignature)
        );
        let ek = TpmPublic::parse(&read("ek.pub")).unwrap();
        assert!(verify_quote(&ek, &attest, &sig, &nonce, &BOOT_PCRS, &pcrs()).is_err());
    }
}
