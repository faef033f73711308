//! The `chart` tool of the assistant's graphs: rows of a query drawn three ways — a Vega-Lite
//! spec for a web client, an SVG rendered here (no browser), and a Markdown table of the
//! same rows for a client that shows text only.
//!
//! The chart plots one label column (`x`) against one number column (`y`); both are picked
//! from the rows when the graph does not name them (never an `id` or `…_id` column for `y`). Rows that cannot make a chart (fewer than
//! two, no number column) are `{ ok: false, error }`, so the graph can answer without one.
//! Amounts stay decimal strings in the spec and the table; only the drawing uses floats.

use std::str::FromStr;

use charts_rs::{BarChart, LineChart, Series};
use engine::nodes::{HostCall, HostTool, ToolSpec};
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value, json};

/// The most rows drawn and tabled.
const MAX_POINTS: usize = 50;

pub static CHART: ToolSpec = ToolSpec {
    name: "chart",
    description: "Draws rows as a chart: `{ ok, kind, x, y, vega_lite, svg, table }`, \
                  or `{ ok: false, error }` when they cannot make one.",
    required: &["rows"],
    optional: &["title", "x", "y", "kind"],
    open: false,
    echoes_args: false,
    object_output: true,
};

/// The `chart` tool.
#[derive(Debug)]
pub struct Chart;

impl HostTool for Chart {
    fn spec(&self) -> &'static ToolSpec {
        &CHART
    }

    fn call<'a>(&'a self, call: HostCall<'a>) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(async move { Ok(chart(&call.args)) })
    }
}

/// The chart of `args.rows`, or why there is none.
pub fn chart(args: &Map<String, Value>) -> Value {
    match draw(args) {
        Ok(chart) => chart,
        Err(error) => json!({ "ok": false, "error": error }),
    }
}

fn draw(args: &Map<String, Value>) -> Result<Value, String> {
    let rows: Vec<&Map<String, Value>> = match args.get("rows") {
        Some(Value::Array(rows)) => rows
            .iter()
            .filter_map(Value::as_object)
            .take(MAX_POINTS)
            .collect(),
        _ => return Err("`rows` must be a list of rows".to_owned()),
    };
    if rows.len() < 2 {
        return Err("a chart needs at least two rows".to_owned());
    }
    let columns: Vec<&str> = rows[0].keys().map(String::as_str).collect();
    let named = |key: &str| {
        args.get(key)
            .and_then(Value::as_str)
            .filter(|name| columns.contains(name))
    };
    let is_id = |column: &str| column == "id" || column.ends_with("_id");
    let y = named("y")
        .or_else(|| {
            let mut candidates = columns.iter().copied().filter(|column| !is_id(column));
            candidates.find(|column| numeric(&rows, column))
        })
        .ok_or("the rows have no column of numbers to draw")?;
    let x = named("x")
        .or_else(|| {
            columns
                .iter()
                .copied()
                .find(|column| *column != y && !numeric(&rows, column))
        })
        .or_else(|| columns.iter().copied().find(|column| *column != y))
        .ok_or("the rows need a column of labels besides the numbers")?;
    let labels: Vec<String> = rows.iter().map(|row| label(row.get(x))).collect();
    let values: Vec<Option<Decimal>> = rows.iter().map(|row| number(row.get(y))).collect();
    let dated = labels.iter().all(|label| looks_like_date(label));
    let kind = match args.get("kind").and_then(Value::as_str) {
        Some("line") => "line",
        Some("bar") => "bar",
        _ if dated => "line",
        _ => "bar",
    };
    let title = args.get("title").and_then(Value::as_str).unwrap_or_default();
    Ok(json!({
        "ok": true,
        "kind": kind,
        "x": x,
        "y": y,
        "vega_lite": vega_lite(title, kind, x, y, dated, &labels, &rows),
        "svg": svg(title, kind, y, labels, &values)?,
        "table": table(&columns, &rows),
    }))
}

fn vega_lite(
    title: &str,
    kind: &str,
    x: &str,
    y: &str,
    dated: bool,
    labels: &[String],
    rows: &[&Map<String, Value>],
) -> Value {
    let values: Vec<Value> = labels
        .iter()
        .zip(rows)
        .map(|(label, row)| json!({ x: label, y: row.get(y).cloned().unwrap_or(Value::Null) }))
        .collect();
    let mark = match kind {
        "line" => json!({ "type": "line", "point": true }),
        _ => json!({ "type": "bar" }),
    };
    json!({
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": title,
        // Amounts arrive as decimal strings; Vega-Lite parses them for drawing.
        "data": { "values": values, "format": { "parse": { y: "number" } } },
        "mark": mark,
        "encoding": {
            "x": { "field": x, "type": if dated { "temporal" } else { "nominal" }, "sort": null },
            "y": { "field": y, "type": "quantitative" },
        },
    })
}

fn svg(
    title: &str,
    kind: &str,
    y: &str,
    labels: Vec<String>,
    values: &[Option<Decimal>],
) -> Result<String, String> {
    let points = values
        .iter()
        .map(|value| value.and_then(|value| value.to_f32()))
        .collect();
    let series = vec![Series::new_nullable(y.to_owned(), points)];
    let drawn = match kind {
        "line" => {
            let mut chart = LineChart::new(series, labels);
            chart.title.text = title.to_owned();
            chart.svg()
        }
        _ => {
            let mut chart = BarChart::new(series, labels);
            chart.title.text = title.to_owned();
            chart.svg()
        }
    };
    drawn.map_err(|err| format!("the chart could not be drawn: {err}"))
}

/// Rows (a list of objects) as a Markdown table, with the first row's columns; empty when
/// there are none.
pub fn markdown_table(rows: &Value) -> String {
    let rows: Vec<&Map<String, Value>> = match rows {
        Value::Array(rows) => rows.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    };
    let Some(first) = rows.first() else {
        return String::new();
    };
    let columns: Vec<&str> = first.keys().map(String::as_str).collect();
    table(&columns, &rows)
}

/// The rows as a Markdown table, every column, in order.
fn table(columns: &[&str], rows: &[&Map<String, Value>]) -> String {
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let mut text = line(columns.iter().map(|column| cell(column)).collect());
    text += &line(columns.iter().map(|_| "---".to_owned()).collect());
    for row in rows {
        text += &line(
            columns
                .iter()
                .map(|column| cell(&label(row.get(*column))))
                .collect(),
        );
    }
    text
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn label(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn number(value: Option<&Value>) -> Option<Decimal> {
    match value? {
        Value::Number(number) => Decimal::from_str(&number.to_string()).ok(),
        Value::String(text) => Decimal::from_str(text).ok(),
        _ => None,
    }
}

/// Whether every row's `column` is a number (or null), and one at least is.
fn numeric(rows: &[&Map<String, Value>], column: &str) -> bool {
    let values = rows.iter().map(|row| row.get(column).unwrap_or(&Value::Null));
    let mut any = false;
    for value in values {
        match (value, number(Some(value))) {
            (Value::Null, _) => {}
            (_, Some(_)) => any = true,
            (_, None) => return false,
        }
    }
    any
}

/// `2026-03-01`, or `2026-03`.
fn looks_like_date(label: &str) -> bool {
    let bytes = label.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    matches!(bytes.len(), 7 | 10) && digits(0..4) && bytes[4] == b'-' && digits(5..7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn a_monthly_series_is_a_line_with_its_table() {
        let drawn = chart(&args(json!({
            "title": "Spending by month",
            "rows": [
                { "month": "2026-01-01", "spent": "1210.40" },
                { "month": "2026-02-01", "spent": "980.00" },
                { "month": "2026-03-01", "spent": "1102.15" },
            ],
        })));
        assert_eq!(drawn["ok"], true);
        assert_eq!(
            (&drawn["kind"], &drawn["x"], &drawn["y"]),
            (&json!("line"), &json!("month"), &json!("spent"))
        );
        assert_eq!(drawn["vega_lite"]["encoding"]["x"]["type"], "temporal");
        assert_eq!(
            drawn["vega_lite"]["data"]["values"][0],
            json!({ "month": "2026-01-01", "spent": "1210.40" })
        );
        let svg = drawn["svg"].as_str().unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("Spending by month"),
            "{svg}"
        );
        assert_eq!(
            drawn["table"],
            "| month | spent |\n| --- | --- |\n| 2026-01-01 | 1210.40 |\n| 2026-02-01 | 980.00 |\n| 2026-03-01 | 1102.15 |\n"
        );
    }

    #[test]
    fn categories_are_bars_and_the_columns_can_be_named() {
        let drawn = chart(&args(json!({
            "rows": [
                { "budget_id": 7, "category": "Groceries | food", "count": 4, "spent": "310.20" },
                { "budget_id": 8, "category": "<script>alert(1)</script>", "count": 9, "spent": "95.00" },
            ],
            "y": "spent",
        })));
        assert_eq!(
            (&drawn["kind"], &drawn["x"], &drawn["y"]),
            (&json!("bar"), &json!("category"), &json!("spent"))
        );
        assert!(
            drawn["table"]
                .as_str()
                .unwrap()
                .contains("| Groceries \\| food | 4 | 310.20 |")
        );
        let svg = drawn["svg"].as_str().unwrap();
        assert!(
            svg.contains("&lt;script&gt;") && !svg.contains("<script>"),
            "labels are escaped: {svg}"
        );
    }

    #[test]
    fn an_id_column_is_never_the_amount_drawn() {
        let rows = json!([
            { "budget_id": 7, "category": "Groceries", "count": 4 },
            { "budget_id": 8, "category": "Transport", "count": 9 },
        ]);
        let drawn = chart(&args(json!({ "rows": rows })));
        assert_eq!((&drawn["x"], &drawn["y"]), (&json!("category"), &json!("count")));
    }

    #[test]
    fn rows_that_cannot_make_a_chart_say_why() {
        let one = chart(&args(
            json!({ "rows": [{ "month": "2026-01-01", "spent": "1.00" }] }),
        ));
        assert_eq!(
            one,
            json!({ "ok": false, "error": "a chart needs at least two rows" })
        );
        let words = chart(&args(json!({ "rows": [{ "name": "a" }, { "name": "b" }] })));
        assert_eq!(
            words,
            json!({ "ok": false, "error": "the rows have no column of numbers to draw" })
        );
    }
}
