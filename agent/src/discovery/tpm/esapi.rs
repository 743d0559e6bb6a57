//! The real TPM: tss-esapi over tpm2-tss (libtss2-esys, libtss2-tctildr
//! and, loaded by it at run time, libtss2-tcti-device; the appliance's
//! initramfs ships them, see `initramfs/bundle.conf`). The only code that
//! talks to a TPM; checked against swtpm by `agent/tests/tpm_swtpm.rs`.

use std::str::FromStr;

use tss_esapi::Context;
use tss_esapi::abstraction::{AsymmetricAlgorithmSelection, ek};
use tss_esapi::constants::CapabilityType;
use tss_esapi::handles::ObjectHandle;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::structures::{CapabilityData, Public};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::tss2_esys::TPM2_PT;

use super::{EkAlgorithm, EkPublic, TpmConnector, TpmError, TpmSession, props};

/// Opens TPMs with tss-esapi.
#[derive(Debug, Clone, Copy, Default)]
pub struct Esapi;

struct EsapiSession(Context);

impl TpmConnector for Esapi {
    fn connect(&self, tcti: &str) -> Result<Box<dyn TpmSession>, TpmError> {
        let open = |reason: String| TpmError::Open {
            tcti: tcti.to_string(),
            reason,
        };
        let conf = TctiNameConf::from_str(tcti).map_err(|e| open(e.to_string()))?;
        let context = Context::new(conf).map_err(|e| open(e.to_string()))?;
        Ok(Box::new(EsapiSession(context)))
    }
}

impl TpmSession for EsapiSession {
    fn fixed_properties(&mut self) -> Result<Vec<(u32, u32)>, TpmError> {
        let (data, _more) = self
            .0
            .execute_without_session(|ctx| {
                ctx.get_capability(CapabilityType::TpmProperties, props::FIRST, props::COUNT)
            })
            .map_err(|e| TpmError::Properties(e.to_string()))?;
        let CapabilityData::TpmProperties(list) = data else {
            return Err(TpmError::Properties(
                "the tpm answered with another capability".into(),
            ));
        };
        Ok(list
            .iter()
            .map(|p| (TPM2_PT::from(p.property()), p.value()))
            .collect())
    }

    fn endorsement_key(&mut self, alg: EkAlgorithm) -> Result<EkPublic, TpmError> {
        let err = |e: tss_esapi::Error| TpmError::EndorsementKey(e.to_string());
        let selection = match alg {
            EkAlgorithm::Rsa2048 => AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            EkAlgorithm::EccP256 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
        };
        let key = ek::create_ek_object_2(&mut self.0, selection, None).map_err(err)?;
        let public = self.0.read_public(key);
        // A transient object: a raw /dev/tpm0 has no resource manager to
        // drop it when the context closes.
        let flushed = self.0.flush_context(ObjectHandle::from(key));
        let (public, _name, _qualified) = public.map_err(err)?;
        flushed.map_err(err)?;
        match public {
            Public::Rsa {
                parameters, unique, ..
            } => Ok(EkPublic::Rsa {
                modulus: unique.value().to_vec(),
                exponent: parameters.exponent().value(),
            }),
            Public::Ecc { unique, .. } => Ok(EkPublic::EccP256 {
                x: unique.x().value().to_vec(),
                y: unique.y().value().to_vec(),
            }),
            _ => Err(TpmError::EndorsementKey(format!(
                "the {} template made a key of another type",
                alg.as_str()
            ))),
        }
    }
}
