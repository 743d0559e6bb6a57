//! QEMU lab harness.
