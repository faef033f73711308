//! PostgreSQL values in and out as JSON: parameters bound by type, rows read by column type.
//!
//! Money and other `numeric` values come out as decimal strings, never floats; dates and
//! times as ISO 8601 strings; `json`/`jsonb` as JSON. A column of a type not listed here is
//! read as text when PostgreSQL can send it so, and is otherwise an error that says to cast it.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Column, Postgres, Row, TypeInfo, ValueRef};

/// Binds a JSON value: text, bigint, double precision, boolean, or jsonb for lists and objects.
/// Cast in SQL where a column wants another type (`$1::uuid`, `$2::numeric`, `$3::date`).
pub(super) fn bind<'q>(
    query: Query<'q, Postgres, PgArguments>,
    value: Value,
) -> Query<'q, Postgres, PgArguments> {
    match value {
        Value::Null => query.bind(None::<String>),
        Value::Bool(flag) => query.bind(flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => query.bind(integer),
            None => query.bind(number.as_f64()),
        },
        Value::String(text) => query.bind(text),
        other => query.bind(sqlx::types::Json(other)),
    }
}

/// A row as a JSON object, column name → value.
pub(crate) fn row_to_json(row: &PgRow) -> Result<Value, String> {
    let mut object = Map::new();
    for (index, column) in row.columns().iter().enumerate() {
        let value = column_value(row, index).map_err(|err| format!("column `{}`: {err}", column.name()))?;
        object.insert(column.name().to_owned(), value);
    }
    Ok(Value::Object(object))
}

fn column_value(row: &PgRow, index: usize) -> Result<Value, String> {
    let raw = row.try_get_raw(index).map_err(|err| err.to_string())?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let type_name = raw.type_info().name().to_owned();
    let get_err = |err: sqlx::Error| err.to_string();
    Ok(match type_name.as_str() {
        "BOOL" => Value::Bool(row.try_get(index).map_err(get_err)?),
        "INT2" => Value::from(row.try_get::<i16, _>(index).map_err(get_err)?),
        "INT4" => Value::from(row.try_get::<i32, _>(index).map_err(get_err)?),
        "INT8" => Value::from(row.try_get::<i64, _>(index).map_err(get_err)?),
        "FLOAT4" => Value::from(row.try_get::<f32, _>(index).map_err(get_err)?),
        "FLOAT8" => Value::from(row.try_get::<f64, _>(index).map_err(get_err)?),
        "NUMERIC" => Value::String(row.try_get::<Decimal, _>(index).map_err(get_err)?.to_string()),
        "UUID" => Value::String(row.try_get::<uuid::Uuid, _>(index).map_err(get_err)?.to_string()),
        "DATE" => Value::String(row.try_get::<NaiveDate, _>(index).map_err(get_err)?.to_string()),
        "TIME" => Value::String(row.try_get::<NaiveTime, _>(index).map_err(get_err)?.to_string()),
        "TIMESTAMP" => {
            let at: NaiveDateTime = row.try_get(index).map_err(get_err)?;
            Value::String(at.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
        }
        "TIMESTAMPTZ" => {
            let at: DateTime<Utc> = row.try_get(index).map_err(get_err)?;
            Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        "JSON" | "JSONB" => {
            row.try_get::<sqlx::types::Json<Value>, _>(index)
                .map_err(get_err)?
                .0
        }
        "TEXT[]" | "VARCHAR[]" => Value::from(row.try_get::<Vec<String>, _>(index).map_err(get_err)?),
        "INT4[]" => Value::from(row.try_get::<Vec<i32>, _>(index).map_err(get_err)?),
        "INT8[]" => Value::from(row.try_get::<Vec<i64>, _>(index).map_err(get_err)?),
        "NUMERIC[]" => {
            let values: Vec<Decimal> = row.try_get(index).map_err(get_err)?;
            Value::from(values.iter().map(Decimal::to_string).collect::<Vec<_>>())
        }
        _ => match row.try_get_unchecked::<String, _>(index) {
            Ok(text) if !type_name.ends_with("[]") => Value::String(text),
            _ => {
                return Err(format!(
                    "type `{type_name}` has no JSON form; cast it in the query, e.g. `::text`"
                ));
            }
        },
    })
}
