//! `POST /api/database/transactions/import`: a bank statement in CSV with a column mapping.
//! Every row gets a stable import id, so importing the same statement twice adds nothing the
//! second time; `dry_run` shows what would happen without writing.

use chrono::NaiveDate;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::json;

use super::auth::Auth;
use super::input::Input;
use super::money::Money;
use super::transactions::{TransactionType, today};
use super::{ApiError, Ctx, Tag};
use crate::finance::audit;
use crate::finance::csv_import::{self, ImportError};
use crate::finance::ledger::{self, Entry, Kind};

pub(crate) struct ImportApi(pub(crate) Ctx);

/// Which CSV column holds what. Give either `amount` (negative = money out) or `debit` and
/// `credit`.
#[derive(Debug, Object, Deserialize)]
pub(crate) struct ColumnMapping {
    date: String,
    amount: Option<String>,
    debit: Option<String>,
    credit: Option<String>,
    description: Option<String>,
    /// A column whose values name budgets; rows whose value matches no budget stay unbudgeted.
    category: Option<String>,
    /// A chrono format such as `%d/%m/%Y`; common formats are tried when left out.
    date_format: Option<String>,
    /// One character; `,` when left out.
    delimiter: Option<String>,
}

#[derive(Debug, Object, Deserialize)]
pub(crate) struct ImportRequest {
    /// The CSV text, with a header row.
    csv: String,
    mapping: ColumnMapping,
    /// The account the statement is from; its balance follows the imported rows. Without one,
    /// the rows are recorded without moving any balance.
    account_id: Option<i64>,
    /// Only report what would be imported.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Object)]
pub(crate) struct ImportedRow {
    line: i64,
    date: NaiveDate,
    amount: Money,
    transaction_type: TransactionType,
    description: Option<String>,
    budget_id: Option<i64>,
    /// `new`, or `duplicate` when this row was imported before.
    status: String,
}

#[derive(Debug, Object)]
pub(crate) struct ImportReport {
    dry_run: bool,
    imported: i64,
    duplicates: i64,
    rows: Vec<ImportedRow>,
}

#[OpenApi(tag = "Tag::Transactions")]
impl ImportApi {
    /// Imports a bank statement in CSV.
    #[oai(path = "/database/transactions/import", method = "post")]
    async fn import(&self, auth: Auth, body: Input<ImportRequest>) -> Result<Json<ImportReport>, ApiError> {
        let user = auth.0.user_id;
        let request = body.value;
        let delimiter = match request.mapping.delimiter.as_deref() {
            None => None,
            Some(d) if d.len() == 1 => Some(d.as_bytes()[0]),
            Some(_) => return Err(ApiError::invalid("mapping.delimiter", "must be one character")),
        };
        let mapping = csv_import::Mapping {
            date: request.mapping.date,
            amount: request.mapping.amount,
            debit: request.mapping.debit,
            credit: request.mapping.credit,
            description: request.mapping.description,
            category: request.mapping.category,
            date_format: request.mapping.date_format,
            delimiter,
        };
        let account_key = request
            .account_id
            .map_or("none".to_owned(), |id| format!("account:{id}"));
        let rows = csv_import::parse(&request.csv, &mapping, &account_key).map_err(invalid_csv)?;
        let mut tx = self.0.db.begin().await?;
        if let Some(account) = request.account_id {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT id FROM accounts WHERE user_id = $1 AND id = $2")
                    .bind(user)
                    .bind(account)
                    .fetch_optional(&mut *tx)
                    .await?;
            found.ok_or(ApiError::NotFound { what: "account" })?;
        }
        let budgets: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, lower(name) FROM budgets WHERE user_id = $1 AND active")
                .bind(user)
                .fetch_all(&mut *tx)
                .await?;
        let ids: Vec<&str> = rows.iter().map(|row| row.import_id.as_str()).collect();
        let known: Vec<String> = sqlx::query_scalar(
            "SELECT import_id FROM transactions WHERE user_id = $1 AND import_id = ANY($2)",
        )
        .bind(user)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let today = today();
        let mut report = ImportReport {
            dry_run: request.dry_run,
            imported: 0,
            duplicates: 0,
            rows: Vec::with_capacity(rows.len()),
        };
        for row in rows {
            let kind = if row.outflow { Kind::Expense } else { Kind::Deposit };
            let budget_id = match (kind, &row.category) {
                (Kind::Expense, Some(category)) => {
                    let category = category.trim().to_lowercase();
                    budgets
                        .iter()
                        .find(|(_, name)| *name == category)
                        .map(|(id, _)| *id)
                }
                _ => None,
            };
            let mut status = if known.contains(&row.import_id) {
                "duplicate"
            } else {
                "new"
            };
            if status == "new" && !request.dry_run {
                let mut entry = Entry::new(kind, row.date, row.amount);
                entry.description = row.description.clone();
                entry.budget_id = budget_id;
                entry.account_id = request.account_id;
                entry.import_id = Some(row.import_id.clone());
                let inserted =
                    ledger::insert(&mut tx, user, &entry, today)
                        .await
                        .map_err(|err| match err {
                            ledger::LedgerError::Move(err) => {
                                ApiError::conflict("insufficient_funds", format!("line {}: {err}", row.line))
                            }
                            other => other.into(),
                        })?;
                if inserted.is_none() {
                    status = "duplicate";
                }
            }
            match status {
                "new" => report.imported += 1,
                _ => report.duplicates += 1,
            }
            report.rows.push(ImportedRow {
                line: row.line as i64,
                date: row.date,
                amount: Money(row.amount),
                transaction_type: match kind {
                    Kind::Expense => TransactionType::Expense,
                    _ => TransactionType::Deposit,
                },
                description: row.description,
                budget_id,
                status: status.to_owned(),
            });
        }
        if !request.dry_run {
            audit::record(
                &mut tx,
                user,
                "import",
                "transaction",
                None,
                json!({"imported": report.imported, "duplicates": report.duplicates}),
            )
            .await?;
            tx.commit().await?;
        }
        Ok(Json(report))
    }
}

/// Every problem in the file, the first as the error and all of them in its detail.
fn invalid_csv(errors: Vec<ImportError>) -> ApiError {
    let field = match errors.first() {
        Some(ImportError::Cell { line, column, .. }) => format!("csv[line {line}].{column}"),
        Some(ImportError::MissingColumn { .. } | ImportError::Mapping(_)) => "mapping".to_owned(),
        _ => "csv".to_owned(),
    };
    let detail = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::invalid(field, detail)
}
