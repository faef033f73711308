//! The subcommands, one module per group.

pub(crate) mod graph;
