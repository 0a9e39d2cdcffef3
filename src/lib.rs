//! kmirror
