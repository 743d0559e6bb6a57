//! The agent's TPM admission against a real TPM 2.0 (swtpm over tpm2-tss's
//! swtpm TCTI), checked by the master's pure-Rust side (keel-attest):
//! TPM2_ActivateCredential recovers what keel-attest's MakeCredential
//! protected, the quote verifies, the EK fingerprint is discovery's; a
//! replayed quote and an AK not bound to the EK are refused. Skipped,
//! saying so, without swtpm.
//!
//! `KEEL_CAPTURE_TPM=DIR` writes what the TPM produced into DIR
//! (keel-attest's `testdata/swtpm/`).

use std::path::Path;

use keel_agent::discovery::tpm::{self as discovery, Esapi, TpmConnector};
use keel_agent::trust::EsapiAttestor;
use keel_agent::trust::tpm::{Answer, Attestor, ChallengeIn, Evidence};
use keel_attest::challenge::{AttestError, BOOT_PCRS, Challenge, ChallengeMessage};
use keel_attest::quote::QuoteError;
use keel_hardware_tests::swtpm::Swtpm;

fn swtpm(dir: &Path) -> Option<Swtpm> {
    if !Swtpm::installed() {
        eprintln!("skipped: swtpm is not installed (Debian package swtpm)");
        return None;
    }
    Some(Swtpm::start_tcp(dir).expect("swtpm"))
}

fn challenge(ev: &Evidence) -> (Challenge, ChallengeMessage) {
    Challenge::new(&ev.ek_public, &ev.ak_public, &BOOT_PCRS).expect("challenge")
}

fn to_agent(msg: &ChallengeMessage) -> ChallengeIn {
    ChallengeIn {
        credential_blob: msg.credential.credential_blob.clone(),
        encrypted_secret: msg.credential.encrypted_secret.clone(),
        nonce: msg.nonce.clone(),
        pcrs: msg.pcrs.clone(),
    }
}

fn verify(c: &Challenge, a: &Answer) -> Result<keel_attest::Attested, AttestError> {
    c.verify(&a.secret, &a.attest, &a.signature, &a.pcr_values)
}

#[test]
fn the_masters_credential_activates_and_the_quote_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(tpm) = swtpm(&tmp.path().join("tpm")) else {
        return;
    };
    let tcti = tpm.tcti().unwrap();
    let agent = EsapiAttestor::new(&tcti, &tmp.path().join("tls"));
    let ev = agent.evidence().unwrap();
    assert!(tmp.path().join("tls/ak.pub").exists());
    let (c, msg) = challenge(&ev);
    let answer = agent.answer(&to_agent(&msg)).unwrap();
    let attested = verify(&c, &answer).unwrap();
    assert_eq!(answer.pcr_values.len(), 8);

    // The fingerprint the master checks is the one discovery shows.
    let mut session = Esapi.connect(&tcti).unwrap();
    let info = discovery::read_session(session.as_mut());
    assert_eq!(
        info.ek.as_ref().map(|k| k.sha256.clone()),
        Some(attested.ek_fingerprint.clone())
    );

    // The kept AK is used again: same evidence.
    assert_eq!(agent.evidence().unwrap(), ev);

    if let Ok(dir) = std::env::var("KEEL_CAPTURE_TPM") {
        let dir = Path::new(&dir);
        std::fs::create_dir_all(dir).unwrap();
        for (name, bytes) in [
            ("ek.pub", &ev.ek_public),
            ("ak.pub", &ev.ak_public),
            ("quote.attest", &answer.attest),
            ("quote.sig", &answer.signature),
            ("nonce", &msg.nonce),
        ] {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        let pcrs: Vec<String> = answer
            .pcr_values
            .iter()
            .map(|v| keel_attest::wire::hex(v))
            .collect();
        std::fs::write(dir.join("pcrs"), pcrs.join("\n")).unwrap();
        std::fs::write(dir.join("ek.sha256"), &attested.ek_fingerprint).unwrap();
    }
}

#[test]
fn a_replayed_quote_and_an_unbound_ak_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(tpm) = swtpm(&tmp.path().join("tpm")) else {
        return;
    };
    let tcti = tpm.tcti().unwrap();
    let a = EsapiAttestor::new(&tcti, &tmp.path().join("a"));
    let ev = a.evidence().unwrap();
    let (first, msg) = challenge(&ev);
    let old = a.answer(&to_agent(&msg)).unwrap();
    verify(&first, &old).unwrap();

    // Replay: the next session's secret is activated, the old quote sent.
    let (second, msg2) = challenge(&ev);
    let fresh = a.answer(&to_agent(&msg2)).unwrap();
    let replayed = Answer {
        secret: fresh.secret.clone(),
        ..old.clone()
    };
    assert_eq!(
        verify(&second, &replayed).unwrap_err(),
        AttestError::Quote(QuoteError::WrongNonce)
    );
    // Or the old secret: not this session's.
    let stale = Answer {
        secret: old.secret.clone(),
        ..fresh.clone()
    };
    assert_eq!(
        verify(&second, &stale).unwrap_err(),
        AttestError::NotActivated
    );

    // A second AK in the same TPM (its own work dir).
    let b = EsapiAttestor::new(&tcti, &tmp.path().join("b"));
    let ev_b = b.evidence().unwrap();
    assert_ne!(ev_b.ak_public, ev.ak_public);
    assert_eq!(ev_b.ek_public, ev.ek_public);

    // Evidence naming AK B, activated with AK A: the TPM refuses.
    let claims_b = Evidence {
        ak_public: ev_b.ak_public.clone(),
        ..ev.clone()
    };
    let (for_b, msg_b) = challenge(&claims_b);
    let err = a.answer(&to_agent(&msg_b)).unwrap_err();
    assert!(err.to_string().contains("activating"), "{err}");

    // Evidence naming AK A, activated with A, quoted with B over the
    // same nonce (B activating a credential of its own): the signature
    // is not A's.
    let (for_a, msg_a) = challenge(&ev);
    let secret = a.answer(&to_agent(&msg_a)).unwrap().secret;
    let b_quote = b
        .answer(&ChallengeIn {
            nonce: msg_a.nonce.clone(),
            ..to_agent(&msg_b)
        })
        .unwrap();
    let mixed = Answer {
        secret,
        ..b_quote.clone()
    };
    assert_eq!(
        verify(&for_a, &mixed).unwrap_err(),
        AttestError::Quote(QuoteError::BadSignature)
    );
    // B answering for B is bound, and verified.
    verify(&for_b, &b.answer(&to_agent(&msg_b)).unwrap()).unwrap();
}

#[test]
fn an_ecc_endorsement_key_works_too() {
    // P-256 EK: the seed comes from ECDH with the EK and KDFe; the AK
    // signs with ECDSA.
    let tmp = tempfile::tempdir().unwrap();
    let Some(tpm) = swtpm(&tmp.path().join("tpm")) else {
        return;
    };
    let agent = EsapiAttestor::ecc(&tpm.tcti().unwrap(), &tmp.path().join("tls"));
    let ev = agent.evidence().unwrap();
    let ek = keel_attest::TpmPublic::parse(&ev.ek_public).unwrap();
    assert!(matches!(ek.key, keel_attest::PublicKey::EccP256 { .. }));
    let (c, msg) = challenge(&ev);
    let answer = agent.answer(&to_agent(&msg)).unwrap();
    verify(&c, &answer).unwrap();
    // Another session's quote is refused here too.
    let (next, msg2) = challenge(&ev);
    let fresh = agent.answer(&to_agent(&msg2)).unwrap();
    let replayed = Answer {
        secret: fresh.secret,
        ..answer
    };
    assert_eq!(
        verify(&next, &replayed).unwrap_err(),
        AttestError::Quote(QuoteError::WrongNonce)
    );
}
