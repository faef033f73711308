//! Every tool `finch` adds to the engine's `tool` node: the finance tools and `chart`.

use std::sync::Arc;

use engine::nodes::{HostTool, ToolSpec};

use crate::{charts, finance};

/// Every tool, for an engine.
pub fn all() -> Vec<Arc<dyn HostTool>> {
    let mut tools = finance::tools::all();
    tools.push(Arc::new(charts::Chart));
    tools
}

/// What graphs are checked with.
pub fn specs() -> Vec<&'static ToolSpec> {
    let mut specs = finance::tools::specs();
    specs.push(&charts::CHART);
    specs
}
