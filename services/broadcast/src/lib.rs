//! broadcast role.
