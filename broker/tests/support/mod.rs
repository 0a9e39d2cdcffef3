//! Support for the third-party client tests that drive a real `kmirror-broker` process:
//! [`process::BrokerProcess`] (start, kill -9, SIGTERM, restart on the same data dir and
//! address) and [`clients`] (kcat and the Python clients, run with timeouts).
#![allow(dead_code)]

pub mod clients;
pub mod process;
