//! conversation (to be written).
