//! session role.
