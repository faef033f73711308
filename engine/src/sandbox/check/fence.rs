//! What PostgreSQL's planner may not do with a checked query: flatten it.
//!
//! A subquery used several times by the level above, nested a few levels deep, is copied into
//! every use when PostgreSQL pulls subqueries and CTEs up into their parent: a query of a few
//! hundred bytes becomes a plan of billions of nodes, built before `statement_timeout` is
//! looked at. Every CTE is therefore printed `AS MATERIALIZED` and every nested query gets
//! `OFFSET 0` (when it has no limit of its own), so each level is computed once, row by row.

use std::ops::ControlFlow;

use sqlparser::ast::{
    CteAsMaterialized, Expr, LimitClause, Offset, OffsetRows, Query, Value, VisitMut, VisitorMut,
};

/// Fences every nested query and CTE of `query` (itself included for its CTEs).
pub(super) fn fence(query: &mut Query) {
    let mut fence = Fence { depth: 0 };
    let _ = VisitMut::visit(query, &mut fence);
}

struct Fence {
    depth: usize,
}

impl VisitorMut for Fence {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &mut query.with {
            for cte in &mut with.cte_tables {
                cte.materialized = Some(CteAsMaterialized::Materialized);
            }
        }
        if self.depth > 0 && query.limit_clause.is_none() && query.fetch.is_none() {
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: None,
                offset: Some(Offset {
                    value: Expr::value(Value::Number("0".to_owned(), false)),
                    rows: OffsetRows::None,
                }),
                limit_by: Vec::new(),
            });
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}
