use super::*;
use crate::quote::QuoteError;
use crate::soft::SoftTpm;

fn exchange(tpm: &SoftTpm) -> (Challenge, ChallengeMessage) {
    Challenge::new(tpm.ek_public(), tpm.ak_public(), &BOOT_PCRS).unwrap()
}

#[test]
fn an_honest_tpm_is_attested() {
    let tpm = SoftTpm::new().unwrap();
    let (challenge, msg) = exchange(&tpm);
    let name = TpmPublic::parse(tpm.ak_public()).unwrap().name();
    let secret = tpm
        .activate(
            &name,
            &msg.credential.credential_blob,
            &msg.credential.encrypted_secret,
        )
        .unwrap();
    let (attest, sig, pcrs) = tpm.quote(&msg.nonce, &msg.pcrs).unwrap();
    let attested = challenge.verify(&secret, &attest, &sig, &pcrs).unwrap();
    assert_eq!(
        attested.ek_fingerprint,
        TpmPublic::parse(tpm.ek_public()).unwrap().fingerprint()
    );
    assert_eq!(attested.quote.pcr_values.len(), 8);
}

#[test]
fn an_old_quote_is_refused() {
    let tpm = SoftTpm::new().unwrap();
    let (first, msg) = exchange(&tpm);
    let name = TpmPublic::parse(tpm.ak_public()).unwrap().name();
    let (attest, sig, pcrs) = tpm.quote(&msg.nonce, &msg.pcrs).unwrap();
    let secret = tpm
        .activate(
            &name,
            &msg.credential.credential_blob,
            &msg.credential.encrypted_secret,
        )
        .unwrap();
    first.verify(&secret, &attest, &sig, &pcrs).unwrap();
    // The next session: the secret is activated anew, the old quote
    // replayed.
    let (second, msg2) = exchange(&tpm);
    let secret2 = tpm
        .activate(
            &name,
            &msg2.credential.credential_blob,
            &msg2.credential.encrypted_secret,
        )
        .unwrap();
    assert_eq!(
        second.verify(&secret2, &attest, &sig, &pcrs),
        Err(AttestError::Quote(QuoteError::WrongNonce))
    );
    // And the old secret with a fresh quote.
    let (attest2, sig2, _) = tpm.quote(&msg2.nonce, &msg2.pcrs).unwrap();
    assert_eq!(
        second.verify(&secret, &attest2, &sig2, &pcrs),
        Err(AttestError::NotActivated)
    );
}

#[test]
fn an_attestation_key_of_another_tpm_is_not_bound() {
    // The agent shows TPM B's AK with TPM A's EK: the credential is made
    // for B's AK under A's EK; A cannot activate it for its own AK.
    let a = SoftTpm::new().unwrap();
    let b = SoftTpm::new().unwrap();
    let (challenge, msg) = Challenge::new(a.ek_public(), b.ak_public(), &BOOT_PCRS).unwrap();
    let a_name = TpmPublic::parse(a.ak_public()).unwrap().name();
    assert_eq!(
        a.activate(
            &a_name,
            &msg.credential.credential_blob,
            &msg.credential.encrypted_secret
        ),
        Err(crate::soft::SoftError::Integrity)
    );
    // Had it got the secret some other way, a quote by A's AK is not B's.
    let b_name = TpmPublic::parse(b.ak_public()).unwrap().name();
    let secret = a
        .activate(
            &b_name,
            &msg.credential.credential_blob,
            &msg.credential.encrypted_secret,
        )
        .unwrap();
    let (attest, sig, pcrs) = a.quote(&msg.nonce, &msg.pcrs).unwrap();
    assert_eq!(
        challenge.verify(&secret, &attest, &sig, &pcrs),
        Err(AttestError::Quote(QuoteError::BadSignature))
    );
}

#[test]
fn keys_without_the_attributes_are_refused() {
    let tpm = SoftTpm::new().unwrap();
    let ak = TpmPublic::parse(tpm.ak_public()).unwrap();
    let crate::key::PublicKey::EccP256 { x, y } = &ak.key else {
        panic!("a P-256 AK");
    };
    // An AK that may decrypt, or that is not restricted, or not fixed to
    // its TPM.
    for drop in [
        crate::public::attr::RESTRICTED,
        crate::public::attr::FIXED_TPM,
    ] {
        let public = crate::soft::ecc_ak_public(x, y, crate::soft::AK_ATTRIBUTES & !drop);
        assert!(matches!(
            Challenge::new(tpm.ek_public(), &public, &BOOT_PCRS),
            Err(AttestError::AttestationKey(_))
        ));
    }
    // The AK where the EK should be.
    assert!(matches!(
        Challenge::new(tpm.ak_public(), tpm.ak_public(), &BOOT_PCRS),
        Err(AttestError::EndorsementKey(_))
    ));
}
