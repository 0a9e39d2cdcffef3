//! Group commit and interval flushing (to be written).
