//! In-memory log for tests (to be written).
