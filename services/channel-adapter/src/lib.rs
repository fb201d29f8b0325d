//! channel-adapter role.
