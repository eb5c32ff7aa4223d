//! # Cairn — a durable orchestration host for WebAssembly components
//!
//! Orchestrators and activities are components written against the
//! `cairn:durable@0.1.0` WIT package (`wit/`). The host keeps their
//! event-sourced histories in SQLite and replays them deterministically.
//!
//! # Layout
//! - [`ids`]      — validated instance ids and names
//! - [`history`]  — PURE: history events (DTFx names) and their codec
//! - [`replay`]   — PURE: history + guest calls → new events; non-determinism detection
//! - [`decide`]   — PURE: the decision core (episode / activity result / rewind → what to store)
//! - [`store`]    — the provider boundary (trait, neutral types and errors); [`store::sqlite`] the SQLite backend, [`store::postgres`] the PostgreSQL one (many hosts)
//! - [`sandbox`]  — wasmtime: one engine config, limits, host imports, virtual WASI
//! - [`engine`]   — dispatcher, hot instance cache, activity workers, leases, retries
//! - [`hub`]      — the operations people use (deploy, start, status, ...), shared by CLI and API
//! - [`manage`]   — the management interface (`cairn_client::Management`) on a task hub: the CLI's local side and the server's own routes
//! - [`admin`]    — management operations: purge, restart, paged listing, delete task hub, remove component
//! - [`api`]      — the HTTP management API (Durable Functions routes + Cairn's own), hyper
//! - [`metrics`]  — Prometheus metrics (`prometheus-client`): histograms, per-function and per-route counters
//! - [`status`]   — status and history documents in the Durable Functions JSON shapes
//! - [`cli`]      — the `cairn` command, one function per verb
//! - [`bench`]    — the `cairn bench` workloads
//! - [`timeline`] — PURE: a history as Gantt bars (activities, timers, children, HTTP, event waits, locks)
//! - [`timetravel`] — the orchestrator replayed up to any history event (open tasks, custom status, logs)
//! - [`traces`]   — OpenTelemetry traces over OTLP/HTTP: one trace per execution (start, episodes, attempts, timers)
//! - [`upgrade`]  — upgrade checks: replay running instances against a candidate version
//! - [`crash`]    — named crash points for crash tests (`CAIRN_CRASH_AT`)
//! - [`clock`]    — the wall clock and ISO 8601 formatting

pub mod admin;
pub mod api;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod crash;
pub mod decide;
pub mod engine;
pub mod entities;
pub mod history;
pub mod hub;
pub mod ids;
pub mod manage;
pub mod metrics;
pub mod replay;
pub mod sandbox;
pub mod status;
pub mod store;
pub mod timeline;
pub mod timetravel;
pub mod traces;
pub mod upgrade;
