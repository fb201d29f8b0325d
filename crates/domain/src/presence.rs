//! presence (to be written).
