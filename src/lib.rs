//! Portico: a self-hosted, secure data-exchange server for devices and applications.
//!
//! See `ARCHITECTURE.md` for the map. The entry point for embedding and tests is
//! [`server::Server`]; the binary's is [`cli::main`].

pub mod access;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod datapoint;
pub mod events;
pub mod idp;
pub mod jose;
pub mod mail;
pub mod merkle;
pub mod metrics;
pub mod net;
pub mod openendpoints;
pub mod portal;
pub mod ratelimit;
pub mod secrets;
pub mod series;
pub mod server;
pub mod share;
pub mod store;
pub mod telemetry;
pub mod timefmt;
pub mod tls;
pub mod webhooks;
pub mod xrtc;
