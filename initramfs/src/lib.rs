//! The PXE boot bundle builder.
