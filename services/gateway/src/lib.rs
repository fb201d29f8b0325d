//! gateway role.
