//! Bank statements in CSV: reading rows with a column mapping, each with a stable import id.
//!
//! Pure parsing, no database: [`parse`] turns a statement into [`ImportRow`]s, or into every
//! problem found in it, so that a file is imported whole or not at all.

use std::collections::HashMap;
use std::fmt::Write;
use std::str::FromStr;

use chrono::NaiveDate;
use csv::StringRecord;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

const DATE_FORMATS: [&str; 4] = ["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y"];

/// Which header holds what; headers match case-insensitively, ignoring surrounding spaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    pub date: String,
    /// One signed amount column (negative = money out), or else both `debit` (out) and `credit` (in).
    pub amount: Option<String>,
    pub debit: Option<String>,
    pub credit: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    /// A chrono format. Without one, the first of `%Y-%m-%d`, `%d/%m/%Y`, `%m/%d/%Y`, `%d.%m.%Y`
    /// that reads every date of the file, so that one file is never read with two formats.
    pub date_format: Option<String>,
    /// Defaults to `b','`.
    pub delimiter: Option<u8>,
}

/// One transaction read from the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    /// 1-based line in the file; the header is line 1.
    pub line: usize,
    pub date: NaiveDate,
    /// Always positive.
    pub amount: Decimal,
    /// True for money out (an expense), false for money in (a deposit).
    pub outflow: bool,
    pub description: Option<String>,
    pub category: Option<String>,
    /// Hex SHA-256 of the account key, ISO date, signed amount with 2 places, description and the
    /// number of identical rows before it in the file, joined by `\u{1f}`.
    pub import_id: String,
}

/// What is wrong with a file or a mapping.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportError {
    #[error("column `{column}` is not in the file")]
    MissingColumn { column: String },
    #[error("bad column mapping: {0}")]
    Mapping(String),
    #[error("line {line}, column `{column}`: {detail}")]
    Cell {
        line: usize,
        column: String,
        detail: String,
    },
    #[error("malformed CSV: {0}")]
    Csv(String),
}

/// A mapped column: its name in the mapping, and its index in the file.
type Column<'a> = (&'a str, usize);

/// Where the mapped columns are in the file.
struct Columns<'a> {
    date: Column<'a>,
    amounts: Amounts<'a>,
    description: Option<Column<'a>>,
    category: Option<Column<'a>>,
}

impl<'a> Columns<'a> {
    /// Finds every mapped column, or reports each one missing (or a mapping that makes no sense).
    fn find(headers: &StringRecord, mapping: &'a Mapping) -> Result<Columns<'a>, Vec<ImportError>> {
        let mut missing = Vec::new();
        let mut column = |name| find_column(headers, name, &mut missing);
        let date = column(&mapping.date);
        let amounts = match (&mapping.amount, &mapping.debit, &mapping.credit) {
            (Some(amount), None, None) => Amounts::Signed(column(amount)),
            (None, Some(debit), Some(credit)) => Amounts::Split {
                debit: column(debit),
                credit: column(credit),
            },
            (amount, _, _) => {
                let detail = match amount {
                    None => "map an amount column, or both a debit and a credit column",
                    Some(_) => "map an amount column or debit and credit columns, not both",
                };
                return Err(vec![ImportError::Mapping(detail.to_string())]);
            }
        };
        let description = mapping.description.as_deref().map(&mut column);
        let category = mapping.category.as_deref().map(&mut column);
        match missing.is_empty() {
            true => Ok(Columns {
                date,
                amounts,
                description,
                category,
            }),
            false => Err(missing),
        }
    }
}

enum Amounts<'a> {
    Signed(Column<'a>),
    Split { debit: Column<'a>, credit: Column<'a> },
}

/// Reads a whole statement; `account_key` identifies the account in the import ids. Rows whose
/// cells are all empty are skipped.
pub fn parse(text: &str, mapping: &Mapping, account_key: &str) -> Result<Vec<ImportRow>, Vec<ImportError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(mapping.delimiter.unwrap_or(b','))
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|error| vec![ImportError::Csv(error.to_string())])?
        .clone();
    let columns = Columns::find(&headers, mapping)?;
    let (records, mut errors) = read_records(&mut reader, text, headers.len());
    let date_format = match &mapping.date_format {
        Some(format) => format.as_str(),
        None => pick_date_format(records.iter().map(|(_, record)| cell(record, columns.date.1))),
    };
    let mut rows = Vec::new();
    for (line, record) in &records {
        let fail = |(column, detail)| ImportError::Cell {
            line: *line,
            column,
            detail,
        };
        let date = parse_date(cell(record, columns.date.1), date_format)
            .map_err(|detail| fail((columns.date.0.to_string(), detail)));
        let text_cell = |column: Option<Column<'_>>| {
            Some(cell(record, column?.1))
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        };
        match (date, row_amount(record, &columns.amounts).map_err(fail)) {
            (Ok(date), Ok(signed)) => rows.push(ImportRow {
                line: *line,
                date,
                amount: signed.abs(),
                outflow: signed.is_sign_negative(),
                description: text_cell(columns.description),
                category: text_cell(columns.category),
                import_id: String::new(),
            }),
            (date, signed) => errors.extend(date.err().into_iter().chain(signed.err())),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    assign_import_ids(&mut rows, account_key);
    Ok(rows)
}

/// Gives each row its import id: the account, date, signed amount and description, and how
/// many identical rows came before it in the file.
fn assign_import_ids(rows: &mut [ImportRow], account_key: &str) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for row in rows.iter_mut() {
        let mut signed = if row.outflow { -row.amount } else { row.amount };
        signed.rescale(2);
        let description = row.description.as_deref().unwrap_or("");
        let key = format!("{}\u{1f}{signed}\u{1f}{description}", row.date.format("%Y-%m-%d"));
        let occurrence = seen.entry(key.clone()).or_insert(0);
        row.import_id = hex_sha256(&format!("{account_key}\u{1f}{key}\u{1f}{occurrence}"));
        *occurrence += 1;
    }
}

/// The records with a non-empty cell, each with its line, and the malformed ones as errors.
fn read_records(
    reader: &mut csv::Reader<&[u8]>,
    text: &str,
    width: usize,
) -> (Vec<(usize, StringRecord)>, Vec<ImportError>) {
    // Lines are counted here: the csv crate counts the blank lines it skips into the next record.
    let (bytes, mut offset, mut line) = (text.as_bytes(), 0, 1);
    let newline = if text.contains('\n') { b'\n' } else { b'\r' };
    let (mut records, mut errors) = (Vec::new(), Vec::new());
    for result in reader.records() {
        let record = match result {
            Ok(record) if record.iter().all(|cell| cell.trim().is_empty()) => continue,
            Ok(record) => record,
            Err(error) => {
                errors.push(ImportError::Csv(error.to_string()));
                continue;
            }
        };
        let mut start = record.position().map_or(0, |at| at.byte() as usize);
        while matches!(bytes.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        line += bytes
            .get(offset..start)
            .unwrap_or_default()
            .iter()
            .filter(|&&byte| byte == newline)
            .count();
        offset = start;
        match record.len() == width {
            true => records.push((line, record)),
            false => errors.push(ImportError::Csv(format!(
                "line {line}: {} fields, but the header has {width}",
                record.len()
            ))),
        }
    }
    (records, errors)
}

fn find_column<'a>(headers: &StringRecord, name: &'a str, missing: &mut Vec<ImportError>) -> Column<'a> {
    let wanted = name.trim().to_lowercase();
    let index = headers
        .iter()
        .position(|header| header.trim().to_lowercase() == wanted);
    if index.is_none() {
        missing.push(ImportError::MissingColumn {
            column: name.to_string(),
        });
    }
    (name, index.unwrap_or(0))
}

fn cell(record: &StringRecord, index: usize) -> &str {
    record.get(index).unwrap_or("").trim()
}

/// The first default format that reads every date given, or else the one reading the most.
fn pick_date_format<'r>(dates: impl Iterator<Item = &'r str>) -> &'static str {
    let dates: Vec<&str> = dates.filter(|date| !date.is_empty()).collect();
    let read = |format: &str| {
        dates
            .iter()
            .filter(|date| NaiveDate::parse_from_str(date, format).is_ok())
            .count()
    };
    let counts = DATE_FORMATS.map(|format| (format, read(format)));
    let all = counts.iter().find(|&&(_, count)| count == dates.len());
    let most = counts.iter().rev().max_by_key(|&&(_, count)| count);
    all.or(most).map_or(DATE_FORMATS[0], |&(format, _)| format)
}

fn parse_date(value: &str, format: &str) -> Result<NaiveDate, String> {
    if value.is_empty() {
        return Err("date is empty".to_string());
    }
    NaiveDate::parse_from_str(value, format)
        .map_err(|_| format!("`{value}` is not a date in the format `{format}`"))
}

/// The row's signed amount (negative = money out), or the column at fault and what is wrong.
fn row_amount(record: &StringRecord, amounts: &Amounts<'_>) -> Result<Decimal, (String, String)> {
    let (column, outflow) = match *amounts {
        Amounts::Signed(column) => (column, None),
        Amounts::Split { debit, credit } => {
            match (
                cell(record, debit.1).is_empty(),
                cell(record, credit.1).is_empty(),
            ) {
                (false, true) => (debit, Some(true)),
                (true, false) => (credit, Some(false)),
                (no_debit, _) => {
                    let detail = match no_debit {
                        true => "neither debit nor credit has a value",
                        false => "both debit and credit have a value",
                    };
                    return Err((format!("{}/{}", debit.0, credit.0), detail.to_string()));
                }
            }
        }
    };
    let value = cell(record, column.1);
    let fail = |detail: String| (column.0.to_string(), detail);
    match parse_amount(value).map_err(fail)? {
        amount if amount.is_zero() => Err(fail("amount is zero".to_string())),
        amount if outflow.is_some() && amount.is_sign_negative() => Err(fail(format!(
            "`{value}` is negative; debit and credit are given positive"
        ))),
        amount if outflow == Some(true) => Ok(-amount),
        amount => Ok(amount),
    }
}

/// Reads `-12.5`, `+12.50`, `1,234.50` (`,` only as a thousands separator beside a `.` decimal
/// point) and `(12.00)` (negative); at most 2 decimal places, no currency signs.
fn parse_amount(value: &str) -> Result<Decimal, String> {
    if value.is_empty() {
        return Err("amount is empty".to_string());
    }
    let (negative, unsigned) = match value.strip_prefix('(').and_then(|rest| rest.strip_suffix(')')) {
        Some(inner) => (true, inner.trim()),
        None => match value.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, value.strip_prefix('+').unwrap_or(value)),
        },
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let groups: Vec<&str> = whole.split(',').collect();
    let grouped = fraction.is_some()
        && (1..=3).contains(&groups[0].len())
        && groups[1..].iter().all(|group| group.len() == 3);
    if groups.len() > 1 && !grouped {
        return Err(format!(
            "`{value}`: `,` only goes between thousands, with a `.` decimal point"
        ));
    }
    let whole = groups.concat();
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let number = match (digits(&whole), fraction) {
        (true, Some(fraction)) if fraction.len() > 2 && digits(fraction) => {
            return Err(format!("`{value}` has more than 2 decimal places"));
        }
        (true, Some(fraction)) if digits(fraction) => Decimal::from_str(&format!("{whole}.{fraction}")),
        (true, None) => Decimal::from_str(&whole),
        _ => return Err(format!("`{value}` is not an amount")),
    };
    let number = number.map_err(|_| format!("`{value}` is not an amount"))?;
    Ok(if negative { -number } else { number })
}

fn hex_sha256(text: &str) -> String {
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(text.as_bytes()) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests;
