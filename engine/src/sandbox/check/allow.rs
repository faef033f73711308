//! The allowlists: the functions, types and numbers a checked query may use, and the checks
//! of the expressions that use them.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, DataType, Expr, Function, ObjectNamePart, Value, ValueWithSpan, Visit, Visitor,
};

use super::{Rejection, normalized, reject};

/// Digits of a number written in the query: numeric arithmetic on a number of thousands of
/// digits is one long call that `statement_timeout` does not stop.
const MAX_DIGITS: usize = 18;
/// The largest length or precision a cast may give a type (`varchar(1000)`).
const MAX_TYPE_SIZE: u64 = 1_000;
/// Names PostgreSQL reads as function calls though they look like columns.
pub(super) const SESSION_NAMES: &[&str] = &[
    "current_role",
    "current_user",
    "session_user",
    "user",
    "current_schema",
    "current_catalog",
];

/// Functions a query may call: aggregates, window functions, date and time, math, text and
/// conditionals. Nothing that runs SQL from text, sleeps, locks, signals, touches files or
/// large objects, or changes a setting; and nothing that can make one value huge in one call
/// (`repeat`, `lpad`, `rpad`, `replace`, `power`), which `statement_timeout` cannot stop.
pub const FUNCTIONS: &[&str] = &[
    // aggregates
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "string_agg",
    "array_agg",
    "bool_and",
    "bool_or",
    "every",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "corr",
    "regr_slope",
    "json_agg",
    "jsonb_agg",
    // window functions
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // date and time
    "now",
    "current_date",
    "current_timestamp",
    "localtimestamp",
    "date_trunc",
    "date_part",
    "extract",
    "make_date",
    "make_interval",
    "age",
    "to_char",
    "to_date",
    "justify_days",
    "justify_interval",
    "date_bin",
    "isfinite",
    // math
    "abs",
    "round",
    "ceil",
    "ceiling",
    "floor",
    "trunc",
    "greatest",
    "least",
    "sqrt",
    "mod",
    "sign",
    "div",
    "scale",
    // text
    "lower",
    "upper",
    "initcap",
    "length",
    "char_length",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "substr",
    "substring",
    "left",
    "right",
    "concat",
    "concat_ws",
    "position",
    "strpos",
    "split_part",
    "starts_with",
    // arrays
    "array_length",
    "cardinality",
    "array_to_string",
    "unnest",
    "array_position",
    // conditionals
    "coalesce",
    "nullif",
];

/// Types a value may be cast to.
const TYPES: &[&str] = &[
    "numeric",
    "decimal",
    "int",
    "integer",
    "int2",
    "int4",
    "int8",
    "smallint",
    "bigint",
    "real",
    "double precision",
    "float",
    "float4",
    "float8",
    "text",
    "varchar",
    "character varying",
    "char",
    "character",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "timestamp with time zone",
    "timestamp without time zone",
    "interval",
    "boolean",
    "bool",
    "text[]",
];

pub(super) fn expression(expr: &Expr) -> Result<(), Rejection> {
    match expr {
        Expr::Function(function) => allowed_function(function),
        Expr::BinaryOp {
            op:
                op @ (BinaryOperator::Custom(_)
                | BinaryOperator::PGCustomBinaryOperator(_)
                | BinaryOperator::PGExp),
            ..
        } => reject(format!("operator `{op}` is not allowed")),
        Expr::Cast { data_type, expr, .. } => {
            allowed_type(data_type)?;
            if is_number_type(data_type) {
                number_operand(expr)?;
            }
            Ok(())
        }
        Expr::TypedString(typed) => {
            allowed_type(&typed.data_type)?;
            match &typed.value.value {
                Value::SingleQuotedString(text) if is_number_type(&typed.data_type) => small_number(text),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

fn allowed_function(function: &Function) -> Result<(), Rejection> {
    let [ObjectNamePart::Identifier(ident)] = function.name.0.as_slice() else {
        return reject(format!(
            "qualified function names such as `{}` are not allowed",
            function.name
        ));
    };
    let name = normalized(ident);
    if FUNCTIONS.contains(&name.as_str()) {
        return Ok(());
    }
    reject(format!("function `{name}` is not allowed"))
}

fn allowed_type(data_type: &DataType) -> Result<(), Rejection> {
    let name = data_type.to_string().to_lowercase();
    let base = name.split('(').next().unwrap_or_default().trim();
    if !TYPES.contains(&base) {
        return reject(format!("type `{name}` is not allowed"));
    }
    let sizes = name
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|digits| digits.parse::<u64>().ok());
    match sizes.max() {
        Some(size) if size > MAX_TYPE_SIZE => reject(format!("type `{name}` is too large")),
        _ => Ok(()),
    }
}

fn is_number_type(data_type: &DataType) -> bool {
    let name = data_type.to_string().to_lowercase();
    ![
        "text",
        "varchar",
        "char",
        "character",
        "date",
        "time",
        "interval",
        "bool",
    ]
    .iter()
    .any(|other| name.starts_with(other))
}

/// What is cast to a number: a text written in the query must be a small number, and a text
/// built in the query (`'1e655' || '00'`) cannot be checked, so it is refused.
fn number_operand(expr: &Expr) -> Result<(), Rejection> {
    match expr {
        Expr::Nested(inner) => number_operand(inner),
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(text),
            ..
        }) => small_number(text),
        other => {
            let mut texts = Texts(false);
            let _ = other.visit(&mut texts);
            match texts.0 {
                true => reject("a number may not be made from texts written in the query"),
                false => Ok(()),
            }
        }
    }
}

/// Whether an expression holds a text literal.
struct Texts(bool);

impl Visitor for Texts {
    type Break = ();

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<()> {
        if matches!(
            value.value,
            Value::SingleQuotedString(_) | Value::EscapedStringLiteral(_)
        ) {
            self.0 = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// A text that reads as a number: PostgreSQL turns it into one wherever a number is wanted.
pub(super) fn looks_like_number(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty()
        && text.chars().any(|c| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-' | '_'))
}

/// A number written in the query: at most [`MAX_DIGITS`] digits, no exponent.
pub(super) fn small_number(text: &str) -> Result<(), Rejection> {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    if digits > MAX_DIGITS || text.contains(['e', 'E']) {
        return reject(format!(
            "numbers may have at most {MAX_DIGITS} digits and no exponent, not `{text}`"
        ));
    }
    Ok(())
}
