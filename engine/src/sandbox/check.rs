//! The parser allowlist: SQL written by a model is parsed (PostgreSQL dialect) and accepted
//! only if every part of it is on a list, deny by default. What runs is the re-printed parse
//! tree with a row limit, never the text the model wrote.
//!
//! This layer gives the model specific reasons to repair its query ("function `pg_sleep` is
//! not allowed"); the database layers behind it hold even when it is wrong.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    AccessExpr, Expr, Ident, LimitClause, ObjectName, ObjectNamePart, Query, SetExpr, Statement, TableFactor,
    Value, ValueWithSpan, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

mod allow;
mod fence;
mod names;

pub use allow::FUNCTIONS;
use allow::{SESSION_NAMES, looks_like_number, small_number};

/// Longest SQL text taken, in bytes.
pub const MAX_SQL_BYTES: usize = 8 * 1024;
/// Parser nesting depth (parentheses, subqueries) before giving up.
const MAX_DEPTH: usize = 50;
/// Relations (views, CTE references, subqueries) in one query: bounds its joins.
pub const MAX_RELATIONS: usize = 12;
/// Expressions in one query.
const MAX_EXPRESSIONS: usize = 2_000;
/// Queries nested in one another (subqueries, CTEs), the outer one included.
const MAX_NESTING: usize = 6;

/// SQL that passed every check, as it will run: re-printed from its parse tree, with a limit.
/// Only [`check`] makes one, so only checked SQL reaches the sandbox's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSql(String);

impl CheckedSql {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// SQL that did not go through [`check`]: only for tests that show the database layers
    /// hold on their own.
    #[cfg(feature = "testing")]
    pub fn unchecked(sql: &str) -> CheckedSql {
        CheckedSql(sql.to_owned())
    }
}

/// Why a query was refused, worded for the model that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

pub(super) fn reject<T>(message: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection(message.into()))
}

/// What a query may name: the views, and their columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub relations: BTreeSet<String>,
    pub columns: BTreeSet<String>,
}

/// Checks `sql` against the allowlist, with `names` the only views (and columns) it may read,
/// and returns what to run: at most `row_limit` rows.
pub fn check(sql: &str, names: &Names, row_limit: u64) -> Result<CheckedSql, Rejection> {
    if sql.trim().is_empty() {
        return reject("the query is empty");
    }
    if sql.contains('\0') {
        return reject("the query contains a NUL character");
    }
    if sql.len() > MAX_SQL_BYTES {
        return reject(format!("the query is longer than {MAX_SQL_BYTES} bytes"));
    }
    let dialect = PostgreSqlDialect {};
    refuse_custom_operators(&dialect, sql)?;
    let mut statements = Parser::new(&dialect)
        .with_recursion_limit(MAX_DEPTH)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements())
        .or_else(|err| reject(format!("the query does not parse: {err}")))?;
    let mut statement = match statements.len() {
        1 => statements.remove(0),
        n => return reject(format!("write exactly one statement, found {n}")),
    };
    let Statement::Query(query) = &mut statement else {
        let keyword = statement.to_string();
        let keyword = keyword
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_uppercase();
        return reject(format!("only SELECT queries are allowed, found {keyword}"));
    };
    let columns = names::known_columns(query, &names.columns);
    let mut checker = Checker {
        relations: &names.relations,
        columns: &columns,
        ctes: Vec::new(),
        depth: 0,
        table_factors: 0,
        expressions: 0,
    };
    if let ControlFlow::Break(rejection) = query.visit(&mut checker) {
        return Err(rejection);
    }
    fence::fence(query);
    limit_rows(query, row_limit)?;
    let canonical = statement.to_string();
    // PostgreSQL starts a comment at `--` or `/*` wherever it finds one; what runs must hold
    // none, so that it cannot read what was checked as text (or as an operator) as code.
    if canonical.contains("--") || canonical.contains("/*") {
        return reject("the query may not contain `--` or `/*`, not even inside text");
    }
    // The printer must give back the same tree, or what runs is not what was checked.
    let reparsed = Parser::parse_sql(&dialect, &canonical);
    if reparsed.as_deref() != Ok(std::slice::from_ref(&statement)) {
        return reject("the query uses syntax that cannot be checked; write it more plainly");
    }
    Ok(CheckedSql(canonical))
}

/// Refuses operators sqlparser does not know. Its tokenizer takes `~/*` or `||--` for one
/// operator where PostgreSQL sees an operator and a comment, so what follows would be checked
/// as one thing and run as another.
fn refuse_custom_operators(dialect: &PostgreSqlDialect, sql: &str) -> Result<(), Rejection> {
    let tokens = Tokenizer::new(dialect, sql)
        .tokenize()
        .or_else(|err| reject(format!("the query does not parse: {err}")))?;
    match tokens.iter().find_map(|token| match token {
        Token::CustomBinaryOperator(operator) => Some(operator),
        _ => None,
    }) {
        Some(operator) => reject(format!("operator `{operator}` is not allowed")),
        None => Ok(()),
    }
}

/// Makes the outer query return at most `row_limit` rows (one more, so that the caller can
/// tell the rows were cut).
fn limit_rows(query: &mut Query, row_limit: u64) -> Result<(), Rejection> {
    if query.fetch.is_some() {
        return reject("FETCH FIRST is not allowed; use LIMIT");
    }
    let cap = row_limit + 1;
    let limit = Expr::value(Value::Number(cap.to_string(), false));
    match &mut query.limit_clause {
        None => {
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: Some(limit),
                offset: None,
                limit_by: Vec::new(),
            })
        }
        Some(LimitClause::LimitOffset {
            limit: current,
            limit_by,
            ..
        }) if limit_by.is_empty() => {
            let within = matches!(current, Some(Expr::Value(ValueWithSpan { value: Value::Number(n, _), .. }))
                if n.parse::<u64>().is_ok_and(|n| n <= cap));
            if !within {
                *current = Some(limit);
            }
        }
        Some(_) => return reject("write the limit as LIMIT n OFFSET m"),
    }
    Ok(())
}

/// Walks the whole parse tree: every statement, query, relation, `FROM` item, expression
/// and value, wherever it sits.
struct Checker<'a> {
    relations: &'a BTreeSet<String>,
    /// The column names a name after a dot may be.
    columns: &'a BTreeSet<String>,
    /// How deep the query being walked is nested.
    depth: usize,
    /// The CTE names in scope: those of the queries being walked, innermost last.
    ctes: Vec<Vec<String>>,
    table_factors: usize,
    expressions: usize,
}

impl Visitor for Checker<'_> {
    type Break = Rejection;

    /// The walk starts at the query, so any statement is one nested in it.
    fn pre_visit_statement(&mut self, _: &Statement) -> ControlFlow<Rejection> {
        stop("data-modifying statements are not allowed, not even inside WITH")
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Rejection> {
        into_flow(self.query(query))
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<Rejection> {
        self.ctes.pop();
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, name: &ObjectName) -> ControlFlow<Rejection> {
        into_flow(self.relation(name))
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Rejection> {
        self.table_factors += 1;
        if self.table_factors > MAX_RELATIONS {
            return stop(format!(
                "the query reads more than {MAX_RELATIONS} tables and subqueries; split the question"
            ));
        }
        into_flow(table_factor(factor))
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Rejection> {
        self.expressions += 1;
        if self.expressions > MAX_EXPRESSIONS {
            return stop("the query is too large; split the question");
        }
        into_flow(allow::expression(expr).and_then(|()| self.dotted(expr)))
    }

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<Rejection> {
        match &value.value {
            Value::Placeholder(name) => stop(format!(
                "parameters such as `{name}` are not allowed; write the values in the query"
            )),
            Value::Number(number, _) => into_flow(small_number(number)),
            Value::SingleQuotedString(text) | Value::EscapedStringLiteral(text)
                if looks_like_number(text) =>
            {
                into_flow(small_number(text))
            }
            _ => ControlFlow::Continue(()),
        }
    }
}

impl Checker<'_> {
    fn query(&mut self, query: &Query) -> Result<(), Rejection> {
        self.ctes.push(Vec::new());
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return reject(format!(
                "subqueries are nested more than {MAX_NESTING} deep; write the query flatter"
            ));
        }
        if let Some(with) = &query.with {
            if with.recursive {
                return reject("WITH RECURSIVE is not allowed");
            }
            for cte in &with.cte_tables {
                let name = normalized(&cte.alias.name);
                if name.starts_with("pg_") {
                    return reject(format!("the CTE name `{name}` is reserved; choose another"));
                }
                if self.relations.contains(&name) {
                    return reject(format!(
                        "the CTE name `{name}` hides the view `{name}`; choose another"
                    ));
                }
                if let Some(scope) = self.ctes.last_mut() {
                    scope.push(name);
                }
            }
        }
        if !query.locks.is_empty() {
            return reject("locking clauses (FOR UPDATE, FOR SHARE) are not allowed");
        }
        if query.for_clause.is_some()
            || query.settings.is_some()
            || query.format_clause.is_some()
            || !query.pipe_operators.is_empty()
        {
            return reject("the query uses syntax PostgreSQL does not have");
        }
        set_expr(&query.body)
    }

    fn relation(&self, name: &ObjectName) -> Result<(), Rejection> {
        let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
            return reject(format!(
                "qualified names such as `{name}` are not allowed; use the views by their names"
            ));
        };
        let name = normalized(ident);
        if self.relations.contains(&name) || self.ctes.iter().flatten().any(|cte| *cte == name) {
            return Ok(());
        }
        let views: Vec<&str> = self.relations.iter().map(String::as_str).collect();
        reject(format!(
            "relation `{name}` is not available; the views are {}",
            crate::yaml::backticked(&views)
        ))
    }
}

impl Checker<'_> {
    /// A name after a dot must be a column: PostgreSQL reads `x.f` (and `(x).f`) as the call
    /// `f(x)`, or a cast to type `f`, when `x` has no column `f`.
    fn dotted(&self, expr: &Expr) -> Result<(), Rejection> {
        match expr {
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [_, column] if self.columns.contains(&normalized(column)) => Ok(()),
                [table, column] => reject(format!(
                    "`{table}.{column}`: `{column}` is not a column of the views or of the query"
                )),
                _ => reject(format!(
                    "names such as `{}` are not allowed; write `table.column`",
                    parts
                        .iter()
                        .map(|part| part.to_string())
                        .collect::<Vec<_>>()
                        .join(".")
                )),
            },
            Expr::CompoundFieldAccess { access_chain, .. }
                if access_chain
                    .iter()
                    .any(|access| matches!(access, AccessExpr::Dot(_))) =>
            {
                reject("field access such as `(x).name` is not allowed")
            }
            Expr::Identifier(ident)
                if ident.quote_style.is_none() && SESSION_NAMES.contains(&normalized(ident).as_str()) =>
            {
                reject(format!("`{}` is not allowed", normalized(ident)))
            }
            _ => Ok(()),
        }
    }
}

fn set_expr(body: &SetExpr) -> Result<(), Rejection> {
    match body {
        SetExpr::Select(select) => {
            if select.into.is_some() {
                return reject("SELECT INTO is not allowed");
            }
            if select.top.is_some()
                || !select.lateral_views.is_empty()
                || select.prewhere.is_some()
                || !select.connect_by.is_empty()
                || !select.cluster_by.is_empty()
                || !select.distribute_by.is_empty()
                || !select.sort_by.is_empty()
                || select.qualify.is_some()
                || select.value_table_mode.is_some()
            {
                return reject("the query uses syntax PostgreSQL does not have");
            }
            Ok(())
        }
        SetExpr::SetOperation { left, right, .. } => set_expr(left).and_then(|()| set_expr(right)),
        SetExpr::Query(_) | SetExpr::Values(_) => Ok(()),
        SetExpr::Table(_) => reject("`TABLE name` is not allowed; write SELECT … FROM name"),
        SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
            reject("data-modifying statements are not allowed, not even inside WITH")
        }
    }
}

/// A `FROM` item: a view or CTE by name, a subquery, or parentheses around joins.
fn table_factor(factor: &TableFactor) -> Result<(), Rejection> {
    match factor {
        TableFactor::Table { args: None, .. } => Ok(()),
        TableFactor::Table {
            name, args: Some(_), ..
        }
        | TableFactor::Function { name, .. } => {
            reject(format!("function `{}` is not allowed in FROM", name_text(name)))
        }
        TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => Ok(()),
        TableFactor::UNNEST { .. } => reject("`unnest` is not allowed in FROM; call it in the SELECT list"),
        _ => reject("only views, CTEs and subqueries may appear in FROM"),
    }
}

/// An identifier as PostgreSQL resolves it: unquoted ones fold ASCII letters to lower case.
pub(super) fn normalized(ident: &Ident) -> String {
    match ident.quote_style {
        None => ident.value.to_ascii_lowercase(),
        Some(_) => ident.value.clone(),
    }
}

fn name_text(name: &ObjectName) -> String {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => normalized(ident),
        _ => name.to_string(),
    }
}

fn into_flow(result: Result<(), Rejection>) -> ControlFlow<Rejection> {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(rejection) => ControlFlow::Break(rejection),
    }
}

fn stop(message: impl Into<String>) -> ControlFlow<Rejection> {
    ControlFlow::Break(Rejection(message.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views() -> Names {
        Names {
            relations: ["transactions", "budgets"].map(str::to_owned).into(),
            columns: ["amount", "category", "name"].map(str::to_owned).into(),
        }
    }

    #[test]
    fn what_runs_is_the_reprinted_query_with_a_limit() {
        let cases = [
            (
                "select  category, sum(amount) -- per category\nfrom transactions group by 1",
                "SELECT category, sum(amount) FROM transactions GROUP BY 1 LIMIT 11",
            ),
            (
                "SELECT * FROM budgets LIMIT 5 OFFSET 2",
                "SELECT * FROM budgets LIMIT 5 OFFSET 2",
            ),
            (
                "SELECT * FROM budgets LIMIT 1000",
                "SELECT * FROM budgets LIMIT 11",
            ),
            (
                "SELECT * FROM budgets OFFSET 3",
                "SELECT * FROM budgets LIMIT 11 OFFSET 3",
            ),
            (
                "WITH m AS (SELECT name FROM budgets) SELECT * FROM m ORDER BY name",
                "WITH m AS MATERIALIZED (SELECT name FROM budgets OFFSET 0) SELECT * FROM m ORDER BY name LIMIT 11",
            ),
            (
                "SELECT s.total FROM (SELECT sum(amount) AS total FROM transactions) s",
                "SELECT s.total FROM (SELECT sum(amount) AS total FROM transactions OFFSET 0) s LIMIT 11",
            ),
            (
                "SELECT \"TRANSACTIONS\".amount FROM Transactions",
                "SELECT \"TRANSACTIONS\".amount FROM Transactions LIMIT 11",
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(
                check(sql, &views(), 10).map(|checked| checked.0),
                Ok(expected.to_owned()),
                "{sql}"
            );
        }
    }

    #[test]
    fn refusals_name_what_to_change() {
        let cases = [
            ("", "the query is empty"),
            ("SELECT 1\0", "the query contains a NUL character"),
            (
                "SELECT * FROM budgets FETCH FIRST 3 ROWS ONLY",
                "FETCH FIRST is not allowed; use LIMIT",
            ),
            (
                "SELECT * FROM goals",
                "relation `goals` is not available; the views are `budgets`, `transactions`",
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(
                check(sql, &views(), 10),
                Err(Rejection(expected.to_owned())),
                "{sql:?}"
            );
        }
        let long = format!("SELECT {} 1", "1 + ".repeat(MAX_SQL_BYTES / 4));
        assert!(check(&long, &views(), 10).is_err());
    }
}
