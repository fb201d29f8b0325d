//! scheduler role.
