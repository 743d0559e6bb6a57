//! Hardware discovery (being written).
