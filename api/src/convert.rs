//! Protobuf <-> domain conversions (written next).
