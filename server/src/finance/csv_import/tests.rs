//! What the CSV reader accepts, refuses and reports.

use super::*;

const HEAD: &str = "Date,Amount,Description\n";

fn name(text: &str) -> Option<String> {
    Some(text.to_string())
}

fn signed() -> Mapping {
    Mapping {
        date: "Date".into(),
        amount: name("Amount"),
        description: name("Description"),
        ..Mapping::default()
    }
}

fn split() -> Mapping {
    Mapping {
        amount: None,
        debit: name("Debit"),
        credit: name("Credit"),
        category: name("Category"),
        ..signed()
    }
}

/// Rows as "line date signed-amount description category", or the errors' messages.
fn read(text: &str, mapping: &Mapping) -> Result<Vec<String>, Vec<String>> {
    let show = |row: &ImportRow| {
        let sign = if row.outflow { "-" } else { "+" };
        let (description, category) = (row.description.as_deref(), row.category.as_deref());
        let (description, category) = (description.unwrap_or("-"), category.unwrap_or("-"));
        format!(
            "{} {} {sign}{} {description} {category}",
            row.line, row.date, row.amount
        )
    };
    match parse(text, mapping, "a") {
        Ok(rows) => Ok(rows.iter().map(show).collect()),
        Err(errors) => Err(errors.iter().map(ToString::to_string).collect()),
    }
}

fn ids(text: &str, account_key: &str) -> Vec<String> {
    let rows = parse(text, &signed(), account_key).unwrap();
    rows.into_iter().map(|row| row.import_id).collect()
}

#[test]
fn signed_amount_column() {
    let text = format!("{HEAD}2024-01-05,-12.50,Coffee\n2024-01-06,2000,Salary\n");
    let expected = ["2 2024-01-05 -12.50 Coffee -", "3 2024-01-06 +2000 Salary -"];
    assert_eq!(read(&text, &signed()).unwrap(), expected);
}

#[test]
fn debit_and_credit_columns() {
    let head = "Date,Debit,Credit,Description,Category\n";
    let good = format!("{head}2024-01-05,12.50,,Coffee,Food\n2024-01-06,,2000.00,Pay,\n");
    let expected = ["2 2024-01-05 -12.50 Coffee Food", "3 2024-01-06 +2000.00 Pay -"];
    assert_eq!(read(&good, &split()).unwrap(), expected);
    let bad = format!("{head}2024-01-05,1,2,,\n2024-01-06,,,x,y\n2024-01-07,-4,,,\n2024-01-08,,0,,\n");
    let errors = [
        "line 2, column `Debit/Credit`: both debit and credit have a value",
        "line 3, column `Debit/Credit`: neither debit nor credit has a value",
        "line 4, column `Debit`: `-4` is negative; debit and credit are given positive",
        "line 5, column `Credit`: amount is zero",
    ];
    assert_eq!(read(&bad, &split()).unwrap_err(), errors);
}

#[test]
fn thousands_separator_and_parentheses() {
    let text = format!("{HEAD}2024-01-05,\"1,234.50\",Rent\n2024-01-06,(12.00),Fee\n2024-01-07,+3.5,\n");
    let expected = [
        "2 2024-01-05 +1234.50 Rent -",
        "3 2024-01-06 -12.00 Fee -",
        "4 2024-01-07 +3.5 - -",
    ];
    assert_eq!(read(&text, &signed()).unwrap(), expected);
    for bad in r#""1,234" "12,50" "1,23.00" ",123.00" $12 (-1) 1. .5 x 0.00 -0"#.split(' ') {
        let text = format!("{HEAD}2024-01-05,{bad},x\n");
        assert!(read(&text, &signed()).is_err(), "{bad}");
    }
}

#[test]
fn more_than_two_decimals_names_line_and_column() {
    let text = format!("{HEAD}2024-01-05,1.00,Ok\n2024-01-06,12.345,Bad\n");
    let detail = "`12.345` has more than 2 decimal places".to_string();
    let error = ImportError::Cell {
        line: 3,
        column: "Amount".into(),
        detail,
    };
    assert_eq!(parse(&text, &signed(), "a"), Err(vec![error]));
}

#[test]
fn every_bad_row_is_reported() {
    let text = format!("{HEAD}2024-13-01,x,Both bad\n2024-01-05,1.00,Good\n2024-01-06,0,Zero\n,5,No date\n");
    let errors = [
        "line 2, column `Date`: `2024-13-01` is not a date in the format `%Y-%m-%d`",
        "line 2, column `Amount`: `x` is not an amount",
        "line 4, column `Amount`: amount is zero",
        "line 5, column `Date`: date is empty",
    ];
    assert_eq!(read(&text, &signed()).unwrap_err(), errors);
}

#[test]
fn missing_columns_all_reported() {
    let mut mapping = signed();
    mapping.category = name("Category");
    let errors = read("Date,Value,Description\n", &mapping).unwrap_err();
    assert_eq!(
        errors,
        [
            "column `Amount` is not in the file",
            "column `Category` is not in the file"
        ]
    );
}

#[test]
fn mapping_needs_amount_or_debit_and_credit() {
    let (mut neither, mut both, mut debit_only) = (signed(), split(), split());
    (neither.amount, both.amount, debit_only.credit) = (None, name("Amount"), None);
    for mapping in [neither, both, debit_only] {
        let errors = parse("Date,Amount,Debit,Credit\n", &mapping, "a").unwrap_err();
        assert!(matches!(errors[..], [ImportError::Mapping(_)]), "{errors:?}");
    }
}

#[test]
fn bom_and_case_insensitive_headers() {
    let mut mapping = signed();
    mapping.delimiter = Some(b';');
    let text = "\u{feff} DATE ;amount;DESCRIPTION \n05.01.2024;-1.00;Tea\n";
    assert_eq!(read(text, &mapping).unwrap(), ["2 2024-01-05 -1.00 Tea -"]);
}

#[test]
fn identical_rows_get_distinct_stable_ids() {
    let text = format!("{HEAD}2024-01-05,-3,Bus\n2024-01-05,-3.00, Bus \n2024-01-06,4.5,\n");
    let first = "k\u{1f}2024-01-05\u{1f}-3.00\u{1f}Bus\u{1f}0";
    let expected = [
        first,
        &first.replace("\u{1f}0", "\u{1f}1"),
        "k\u{1f}2024-01-06\u{1f}4.50\u{1f}\u{1f}0",
    ];
    assert_eq!(ids(&text, "k"), expected.map(hex_sha256));
    assert_eq!(ids(&text, "k"), ids(&text, "k"));
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(hex_sha256("abc"), abc);
}

#[test]
fn account_key_changes_ids() {
    let text = format!("{HEAD}2024-01-05,-3.00,Bus\n");
    assert_ne!(ids(&text, "account-1"), ids(&text, "account-2"));
}

#[test]
fn blank_rows_skipped() {
    let text =
        format!("{HEAD}\n2024-01-05,-3,Bus\n,,\r\n , ,\n \n2024-01-06,1,\"Two\nlines\"\n2024-01-07,1,x\n");
    let expected = [
        "3 2024-01-05 -3 Bus -",
        "7 2024-01-06 +1 Two\nlines -",
        "9 2024-01-07 +1 x -",
    ];
    assert_eq!(read(&text, &signed()).unwrap(), expected);
    let crlf = format!("{HEAD}\r\n\r\n2024-01-05,-3,Bus\r\n").replace("n\n", "n\r\n");
    assert_eq!(read(&crlf, &signed()).unwrap(), ["4 2024-01-05 -3 Bus -"]);
}

#[test]
fn date_formats() {
    let dates = |body: &str, format: Option<&str>| {
        let mut mapping = signed();
        mapping.date_format = format.map(str::to_string);
        let rows = read(&format!("{HEAD}{body}"), &mapping)?;
        Ok::<_, Vec<String>>(rows.iter().map(|row| &row[2..12]).collect::<Vec<_>>().join(" "))
    };
    assert_eq!(dates("2024-02-03,1,a\n", None).unwrap(), "2024-02-03");
    assert_eq!(
        dates("03/02/2024,1,a\n25/02/2024,1,b\n", None).unwrap(),
        "2024-02-03 2024-02-25"
    );
    // 02/25 cannot be day-first, so the whole file is read month-first.
    assert_eq!(
        dates("02/03/2024,1,a\n02/25/2024,1,b\n", None).unwrap(),
        "2024-02-03 2024-02-25"
    );
    assert_eq!(dates("03.02.2024,1,a\n", None).unwrap(), "2024-02-03");
    assert_eq!(dates("20240203,1,a\n", Some("%Y%m%d")).unwrap(), "2024-02-03");
    let error = "line 2, column `Date`: `2024-02-03` is not a date in the format `%d/%m/%Y`";
    assert_eq!(dates("2024-02-03,1,a\n", Some("%d/%m/%Y")).unwrap_err(), [error]);
}

#[test]
fn malformed_csv_reported_with_line() {
    let text = format!("{HEAD}2024-01-05,1.00\n2024-01-06,x,Bad\n");
    let errors = read(&text, &signed()).unwrap_err();
    let expected = [
        "malformed CSV: line 2: 2 fields, but the header has 3",
        "line 3, column `Amount`: `x` is not an amount",
    ];
    assert_eq!(errors, expected);
}
