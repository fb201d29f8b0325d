//! router role.
