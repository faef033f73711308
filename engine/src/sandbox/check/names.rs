//! The column names a query may use after a dot (`t.amount`): the views' columns, and the
//! names the query itself gives (aliases, CTE and subquery column lists, and the names
//! PostgreSQL gives unaliased columns: a column's own, or an allowed function's).
//!
//! PostgreSQL reads `t.name` as the call `name(t)` when `t` has no column `name`, so a name
//! after a dot that is none of these could call a function no allowlist saw.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, Select, SelectItem, TableFactor, Visit, Visitor};

use super::{FUNCTIONS, normalized};

/// Every column name `query` gives, besides the views' `columns`.
pub(super) fn known_columns(query: &Query, columns: &BTreeSet<String>) -> BTreeSet<String> {
    let mut names = Names(columns.clone());
    names.0.extend(FUNCTIONS.iter().map(|name| (*name).to_owned()));
    let _ = query.visit(&mut names);
    names.0
}

struct Names(BTreeSet<String>);

impl Visitor for Names {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let ctes = query.with.iter().flat_map(|with| &with.cte_tables);
        for cte in ctes {
            self.0
                .extend(cte.alias.columns.iter().map(|column| normalized(&column.name)));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        for item in &select.projection {
            match item {
                SelectItem::ExprWithAlias { alias, .. } => {
                    self.0.insert(normalized(alias));
                }
                SelectItem::ExprWithAliases { aliases, .. } => self.0.extend(aliases.iter().map(normalized)),
                SelectItem::UnnamedExpr(Expr::Identifier(ident)) => {
                    self.0.insert(normalized(ident));
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Derived {
            alias: Some(alias), ..
        }
        | TableFactor::Table {
            alias: Some(alias), ..
        } = factor
        {
            self.0
                .extend(alias.columns.iter().map(|column| normalized(&column.name)));
        }
        ControlFlow::Continue(())
    }
}
