//! kmirror

pub mod config;
