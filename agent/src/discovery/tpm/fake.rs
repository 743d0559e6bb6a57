//! A scripted TPM for the unit tests: answers like swtpm unless told to
//! fail, and records which TCTIs were opened.

use std::cell::RefCell;
use std::rc::Rc;

use super::{EkAlgorithm, EkPublic, TpmConnector, TpmError, TpmSession, props};

/// The fixed properties swtpm 0.7.1 (libtpms 0.9.6) answers, as read by
/// `agent/tests/tpm_swtpm.rs`.
pub(crate) fn swtpm_properties() -> Vec<(u32, u32)> {
    let chars = |s: &[u8; 4]| u32::from_be_bytes(*s);
    vec![
        (props::PT_FAMILY_INDICATOR, chars(b"2.0\0")),
        (props::PT_LEVEL, 0),
        (props::PT_REVISION, 164),
        (0x103, 75),
        (0x104, 2021),
        (props::PT_MANUFACTURER, chars(b"IBM\0")),
        (0x106, chars(b"SW  ")),
        (0x107, chars(b" TPM")),
        (0x108, 0),
        (0x109, 0),
        (0x10a, 1),
        (props::PT_FIRMWARE_VERSION_1, 0x2019_1023),
        (props::PT_FIRMWARE_VERSION_2, 0x0016_3636),
    ]
}

#[derive(Clone, Default)]
pub(crate) struct FakeTpm {
    /// TCTIs containing one of these fail to open.
    refuse: Vec<String>,
    no_properties: bool,
    no_ek: Vec<EkAlgorithm>,
    opened: Rc<RefCell<Vec<String>>>,
}

impl FakeTpm {
    pub(crate) fn working() -> Self {
        FakeTpm::default()
    }

    pub(crate) fn refusing(mut self, tcti_part: &str) -> Self {
        self.refuse.push(tcti_part.to_string());
        self
    }

    pub(crate) fn without_properties(mut self) -> Self {
        self.no_properties = true;
        self
    }

    pub(crate) fn without_ek(mut self, alg: EkAlgorithm) -> Self {
        self.no_ek.push(alg);
        self
    }

    pub(crate) fn opened(&self) -> Vec<String> {
        self.opened.borrow().clone()
    }

    pub(crate) fn rsa_key() -> EkPublic {
        EkPublic::Rsa {
            modulus: (0..=255u8).map(|b| b | 0x80).collect(),
            exponent: 0,
        }
    }

    fn ecc_key() -> EkPublic {
        EkPublic::EccP256 {
            x: vec![7; 32],
            y: vec![9; 32],
        }
    }
}

impl TpmConnector for FakeTpm {
    fn connect(&self, tcti: &str) -> Result<Box<dyn TpmSession>, TpmError> {
        self.opened.borrow_mut().push(tcti.to_string());
        if self.refuse.iter().any(|r| tcti.contains(r.as_str())) {
            return Err(TpmError::Open {
                tcti: tcti.to_string(),
                reason: "refused by the fake".into(),
            });
        }
        Ok(Box::new(self.clone()))
    }
}

impl TpmSession for FakeTpm {
    fn fixed_properties(&mut self) -> Result<Vec<(u32, u32)>, TpmError> {
        if self.no_properties {
            return Err(TpmError::Properties("tpm error".into()));
        }
        Ok(swtpm_properties())
    }

    fn endorsement_key(&mut self, alg: EkAlgorithm) -> Result<EkPublic, TpmError> {
        if self.no_ek.contains(&alg) {
            return Err(TpmError::EndorsementKey(format!(
                "no {} template",
                alg.as_str()
            )));
        }
        Ok(match alg {
            EkAlgorithm::Rsa2048 => FakeTpm::rsa_key(),
            EkAlgorithm::EccP256 => FakeTpm::ecc_key(),
        })
    }
}
