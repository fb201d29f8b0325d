//! e2e sandbox.
