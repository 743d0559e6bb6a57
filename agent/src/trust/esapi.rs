//! The real [`Attestor`]: tss-esapi over tpm2-tss, as discovery reads the
//! TPM (`discovery/tpm/esapi.rs`). Each call opens the TPM, makes the EK
//! from its default template (deterministic over the endorsement seed:
//! the same key every time until the TPM is cleared), loads the AK under
//! it, and flushes every object and session it made before it returns (a
//! raw `/dev/tpm0` or swtpm has no resource manager to do it).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use tss_esapi::Context;
use tss_esapi::abstraction::{AsymmetricAlgorithmSelection, ak, ek};
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::{CapabilityType, SessionType};
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, SignatureSchemeAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::session_handles::PolicySession;
use tss_esapi::structures::{
    CapabilityData, Data, EncryptedSecret, IdObject, PcrSelectionList, PcrSlot, Private, Public,
    SignatureScheme, SymmetricDefinition,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};

use super::tpm::{Answer, Attestor, AttestorError, ChallengeIn, Evidence, ak_paths};

/// The TPM at `tcti`, its AK kept in `dir` (`<work_dir>/tls`).
#[derive(Debug, Clone)]
pub struct EsapiAttestor {
    tcti: String,
    dir: PathBuf,
    /// The EK templates tried, in order.
    templates: Vec<AsymmetricAlgorithmSelection>,
}

impl EsapiAttestor {
    /// The RSA-2048 EK, else the P-256 one (as discovery reads it).
    pub fn new(tcti: &str, dir: &Path) -> EsapiAttestor {
        EsapiAttestor {
            tcti: tcti.to_string(),
            dir: dir.to_path_buf(),
            templates: vec![
                AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
                AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
            ],
        }
    }

    /// The P-256 EK only (and a P-256 ECDSA AK): for TPMs whose RSA EK is
    /// not wanted, and to test that path on a TPM that has both.
    pub fn ecc(tcti: &str, dir: &Path) -> EsapiAttestor {
        EsapiAttestor {
            templates: vec![AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256)],
            ..EsapiAttestor::new(tcti, dir)
        }
    }

    fn open(&self) -> Result<Context, AttestorError> {
        let open = |reason: String| AttestorError::Open {
            tcti: self.tcti.clone(),
            reason,
        };
        let conf = TctiNameConf::from_str(&self.tcti).map_err(|e| open(e.to_string()))?;
        Context::new(conf).map_err(|e| open(e.to_string()))
    }
}

type Tss = tss_esapi::Error;

/// The EK of the first of `templates` the TPM makes, and which it is.
fn endorsement_key(
    ctx: &mut Context,
    templates: &[AsymmetricAlgorithmSelection],
) -> Result<(KeyHandle, AsymmetricAlgorithmSelection), AttestorError> {
    let mut errors = Vec::new();
    for alg in templates {
        match ek::create_ek_object_2(ctx, *alg, None) {
            Ok(key) => return Ok((key, *alg)),
            Err(e) => errors.push(format!("{alg:?}: {e}")),
        }
    }
    Err(AttestorError::EndorsementKey(errors.join("; ")))
}

/// The EK certificate from its NV index (TCG EK Credential Profile 2.2.1.5),
/// empty when there is none: most software TPMs, and some chips, have
/// none (asked first, so that tpm2-tss logs no error for it).
fn ek_certificate(ctx: &mut Context, alg: AsymmetricAlgorithmSelection) -> Vec<u8> {
    let index: u32 = match alg {
        AsymmetricAlgorithmSelection::Rsa(_) => 0x01c0_0002,
        AsymmetricAlgorithmSelection::Ecc(_) => 0x01c0_000a,
    };
    let defined = ctx
        .execute_without_session(|c| c.get_capability(CapabilityType::Handles, index, 1))
        .map(|(data, _)| match data {
            CapabilityData::Handles(list) => list
                .iter()
                .any(|h| tss_esapi::tss2_esys::TPM2_HANDLE::from(*h) == index),
            _ => false,
        })
        .unwrap_or(false);
    match defined {
        true => ek::retrieve_ek_pubcert(ctx, alg).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the EK certificate");
            Vec::new()
        }),
        false => Vec::new(),
    }
}

fn flush(ctx: &mut Context, handle: impl Into<ObjectHandle>) {
    if let Err(e) = ctx.flush_context(handle.into()) {
        tracing::debug!(error = %e, "flushing a tpm handle");
    }
}

fn read(path: &Path) -> Result<Vec<u8>, AttestorError> {
    std::fs::read(path).map_err(|source| AttestorError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), AttestorError> {
    super::write_private(path, bytes).map_err(|source| AttestorError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl EsapiAttestor {
    /// The kept AK, loaded under `ek`; `None` when there is none or the
    /// TPM does not take it (cleared, or another TPM).
    fn load_kept(&self, ctx: &mut Context, ek: KeyHandle) -> Option<(KeyHandle, Public)> {
        let (public_path, private_path) = ak_paths(&self.dir);
        let public = Public::unmarshall(&read(&public_path).ok()?).ok()?;
        let private = Private::try_from(read(&private_path).ok()?).ok()?;
        match ak::load_ak(ctx, ek, None, private, public.clone()) {
            Ok(handle) => Some((handle, public)),
            Err(e) => {
                tracing::warn!(error = %e, "the tpm does not load the kept attestation key");
                None
            }
        }
    }

    /// The kept AK, or a new one (kept).
    fn attestation_key(
        &self,
        ctx: &mut Context,
        ek: KeyHandle,
        alg: AsymmetricAlgorithmSelection,
    ) -> Result<(KeyHandle, Public), AttestorError> {
        if let Some(kept) = self.load_kept(ctx, ek) {
            return Ok(kept);
        }
        let err = |e: Tss| AttestorError::AttestationKey(e.to_string());
        let scheme = match alg {
            AsymmetricAlgorithmSelection::Rsa(_) => SignatureSchemeAlgorithm::RsaSsa,
            AsymmetricAlgorithmSelection::Ecc(_) => SignatureSchemeAlgorithm::EcDsa,
        };
        let made = ak::create_ak_2(ctx, ek, HashingAlgorithm::Sha256, alg, scheme, None, None)
            .map_err(err)?;
        let (public_path, private_path) = ak_paths(&self.dir);
        write(&private_path, made.out_private.value())?;
        write(&public_path, &made.out_public.marshall().map_err(err)?)?;
        tracing::info!(dir = %self.dir.display(), "attestation key made and kept");
        let handle =
            ak::load_ak(ctx, ek, None, made.out_private, made.out_public.clone()).map_err(err)?;
        Ok((handle, made.out_public))
    }
}

impl Attestor for EsapiAttestor {
    fn evidence(&self) -> Result<Evidence, AttestorError> {
        let mut ctx = self.open()?;
        let (ek_handle, alg) = endorsement_key(&mut ctx, &self.templates)?;
        let result = (|| {
            let (ek_public, _, _) = ctx
                .read_public(ek_handle)
                .map_err(|e| AttestorError::EndorsementKey(e.to_string()))?;
            let ek_public = ek_public
                .marshall()
                .map_err(|e| AttestorError::EndorsementKey(e.to_string()))?;
            let ek_certificate = ek_certificate(&mut ctx, alg);
            let (ak_handle, ak_public) = self.attestation_key(&mut ctx, ek_handle, alg)?;
            flush(&mut ctx, ak_handle);
            let ak_public = ak_public
                .marshall()
                .map_err(|e| AttestorError::AttestationKey(e.to_string()))?;
            Ok(Evidence {
                ek_public,
                ek_certificate,
                ak_public,
            })
        })();
        flush(&mut ctx, ek_handle);
        result
    }

    fn answer(&self, challenge: &ChallengeIn) -> Result<Answer, AttestorError> {
        let bad = |e: Tss| AttestorError::Challenge(e.to_string());
        let blob = IdObject::try_from(challenge.credential_blob.clone()).map_err(bad)?;
        let secret = EncryptedSecret::try_from(challenge.encrypted_secret.clone()).map_err(bad)?;
        let nonce = Data::try_from(challenge.nonce.clone()).map_err(bad)?;
        let selection = pcr_selection(&challenge.pcrs)?;
        let mut ctx = self.open()?;
        let (ek_handle, _alg) = endorsement_key(&mut ctx, &self.templates)?;
        let result = (|| {
            let (ak_handle, _) = self
                .load_kept(&mut ctx, ek_handle)
                .ok_or_else(|| AttestorError::AttestationKey("none kept".into()))?;
            let answer = activate(&mut ctx, ek_handle, ak_handle, blob, secret)
                .and_then(|secret| quote(&mut ctx, ak_handle, nonce, selection, secret));
            flush(&mut ctx, ak_handle);
            answer
        })();
        flush(&mut ctx, ek_handle);
        result
    }
}

fn pcr_selection(pcrs: &[u32]) -> Result<PcrSelectionList, AttestorError> {
    let bad = |e: String| AttestorError::Challenge(e);
    let slots = pcrs
        .iter()
        .map(|p| {
            let bit = 1u32.checked_shl(*p).filter(|_| *p < 24);
            bit.ok_or_else(|| bad(format!("PCR {p}")))
                .and_then(|b| PcrSlot::try_from(b).map_err(|e| bad(e.to_string())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionList::builder()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(|e| bad(e.to_string()))
}

/// TPM2_ActivateCredential: the AK's authorization (empty) in an HMAC
/// session, the EK's policy (PolicySecret of the endorsement hierarchy)
/// in a policy session.
fn activate(
    ctx: &mut Context,
    ek: KeyHandle,
    ak: KeyHandle,
    blob: IdObject,
    secret: EncryptedSecret,
) -> Result<Vec<u8>, AttestorError> {
    let err = |e: Tss| AttestorError::Activate(e.to_string());
    let mut start = |kind| {
        ctx.start_auth_session(
            None,
            None,
            None,
            kind,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(err)?
        .ok_or_else(|| AttestorError::Activate("the tpm started no session".into()))
    };
    let hmac = start(SessionType::Hmac)?;
    let policy = match start(SessionType::Policy) {
        Ok(p) => p,
        Err(e) => {
            flush(ctx, SessionHandle::from(hmac));
            return Err(e);
        }
    };
    let result = (|| {
        let (attrs, mask) = SessionAttributesBuilder::new().build();
        for s in [hmac, policy] {
            ctx.tr_sess_set_attributes(s, attrs, mask).map_err(err)?;
        }
        let policy_session = PolicySession::try_from(policy).map_err(err)?;
        ctx.execute_with_session(Some(hmac), |ctx| {
            ctx.policy_secret(
                policy_session,
                AuthHandle::Endorsement,
                Default::default(),
                Default::default(),
                Default::default(),
                None,
            )
        })
        .map_err(err)?;
        ctx.set_sessions((Some(hmac), Some(policy), None));
        let activated = ctx.activate_credential(ak, ek, blob, secret);
        ctx.clear_sessions();
        Ok(activated.map_err(err)?.value().to_vec())
    })();
    for s in [hmac, policy] {
        flush(ctx, SessionHandle::from(s));
    }
    result
}

/// TPM2_Quote with the AK's own scheme, and the PCR values it covers.
fn quote(
    ctx: &mut Context,
    ak: KeyHandle,
    nonce: Data,
    selection: PcrSelectionList,
    secret: Vec<u8>,
) -> Result<Answer, AttestorError> {
    let err = |e: Tss| AttestorError::Quote(e.to_string());
    let (attest, signature) = ctx
        .execute_with_nullauth_session(|ctx| {
            ctx.quote(ak, nonce, SignatureScheme::Null, selection.clone())
        })
        .map_err(err)?;
    let (_, read, digests) = ctx
        .execute_without_session(|ctx| ctx.pcr_read(selection.clone()))
        .map_err(err)?;
    if read != selection {
        return Err(AttestorError::Quote(
            "the tpm read other PCRs than it quoted".into(),
        ));
    }
    Ok(Answer {
        secret,
        attest: attest.marshall().map_err(err)?,
        signature: signature.marshall().map_err(err)?,
        pcr_values: digests.value().iter().map(|d| d.value().to_vec()).collect(),
    })
}
