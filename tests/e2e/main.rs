//! End-to-end tests: real components, real engine, real SQLite. Every
//! scenario runs with the hot cache and in forced-replay mode.

#[path = "../common/mod.rs"]
mod common;

mod activities;
mod basics;
mod bench;
mod entities;
mod examples;
mod golden;
mod guest_io;
mod js;
mod layering;
mod primitives;
mod python;
mod replay;
mod sandbox;
mod store;
mod timetravel;
