//! TPM attestation for Keel's `--agent-admission tpm`
//! (`docs/design/0006-trust.md`), the master's side, in pure Rust (no
//! tpm2-tss: the master links only libc).
//!
//! - [`wire`]: the TPM's marshalled structures, read within bounds;
//! - [`key`]: a TPM key as a `SubjectPublicKeyInfo` and its fingerprint;
//! - [`public`]: `TPMT_PUBLIC`, names, the attributes of EKs and AKs;
//! - [`credential`]: TPM2_MakeCredential for RSA and P-256 EKs;
//! - [`quote`]: `TPMS_ATTEST` quotes and their signatures;
//! - [`challenge`]: one attestation, credential and quote checked
//!   together;
//! - [`policy`]: the EK allow-list and the manufacturers' CAs;
//! - [`soft`] (feature `soft`): a software TPM for tests.

pub mod challenge;
pub mod credential;
pub mod key;
pub mod policy;
pub mod public;
pub mod quote;
#[cfg(any(test, feature = "soft"))]
pub mod soft;
pub mod wire;

pub use challenge::{AttestError, Attested, BOOT_PCRS, Challenge, ChallengeMessage};
pub use credential::{MadeCredential, make_credential};
pub use key::PublicKey;
pub use policy::{AllowList, EkCertificate, EkRoots, PolicyError, parse_fingerprint};
pub use public::TpmPublic;
