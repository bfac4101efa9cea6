//! Portico's integration tests: one binary, a real server per test. Set
//! `PORTICO_TEST_DATABASE_URL` to run every test on PostgreSQL instead of SQLite.

mod access;
mod admin;
mod auth;
mod cli;
mod connections;
mod datapoints;
mod durability;
mod helpers;
mod history;
mod idp;
mod idp_flows;
mod jose_tokens;
mod jose_vectors;
mod journal;
mod layering;
mod merkle;
mod openapi;
mod openendpoints;
mod operations;
mod series;
mod shutdown;
mod sse;
mod store;
mod store_identity;
mod tls;
mod webhooks;
mod xrtc;
