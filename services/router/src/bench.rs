//! Routing benchmark (filled in below).
