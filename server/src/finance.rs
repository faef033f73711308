//! The finance domain, below HTTP: what must hold whichever door a change comes through (the
//! API, the assistant's tools, the demo generator) — balances, budget alerts, recurring income,
//! the audit log.

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod csv_import;
pub mod demo;
pub mod income;
pub mod ledger;
pub mod password;
pub mod tools;
