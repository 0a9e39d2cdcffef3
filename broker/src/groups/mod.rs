//! The group coordinator: classic consumer groups and committed offsets.

pub mod state;
pub mod store;
