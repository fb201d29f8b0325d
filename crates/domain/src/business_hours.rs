//! business_hours (to be written).
