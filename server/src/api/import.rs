//! `POST /api/database/transactions/import`: a bank statement in CSV with a column mapping.
//! Every row gets a stable import id, so importing the same statement twice adds nothing the
//! second time; `dry_run` shows what would happen without writing.

use chrono::NaiveDate;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;

use super::auth::Auth;
use super::input::Input;
use super::money::Money;
use super::transactions::{TransactionType, today};
use super::{ApiError, Ctx, Tag};
use crate::finance::audit;
use crate::finance::csv_import::{self, ImportError, ImportRow};
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
        let account = request.account_id;
        let account_key = account.map_or("none".to_owned(), |id| format!("account:{id}"));
        let mapping = request.mapping.into_mapping()?;
        let rows = csv_import::parse(&request.csv, &mapping, &account_key).map_err(invalid_csv)?;
        let mut tx = self.0.db.begin().await?;
        if let Some(account) = account {
            sqlx::query_scalar::<_, i64>("SELECT id FROM accounts WHERE user_id = $1 AND id = $2")
                .bind(user)
                .bind(account)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(ApiError::NotFound { what: "account" })?;
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
        let mut report = ImportReport {
            dry_run: request.dry_run,
            imported: 0,
            duplicates: 0,
            rows: Vec::with_capacity(rows.len()),
        };
        for row in rows {
            let kind = if row.outflow { Kind::Expense } else { Kind::Deposit };
            let budget_id = budget_of(&budgets, kind, row.category.as_deref());
            let new = if known.contains(&row.import_id) {
                false
            } else if request.dry_run {
                true
            } else {
                insert(&mut tx, user, &row, kind, budget_id, account).await?
            };
            match new {
                true => report.imported += 1,
                false => report.duplicates += 1,
            }
            report.rows.push(ImportedRow {
                line: row.line as i64,
                date: row.date,
                amount: Money(row.amount),
                transaction_type: kind.into(),
                description: row.description,
                budget_id,
                status: if new { "new" } else { "duplicate" }.to_owned(),
            });
        }
        if !request.dry_run {
            let detail = json!({"imported": report.imported, "duplicates": report.duplicates});
            audit::record(&mut tx, user, "import", "transaction", None, detail).await?;
            tx.commit().await?;
        }
        Ok(Json(report))
    }
}

impl ColumnMapping {
    fn into_mapping(self) -> Result<csv_import::Mapping, ApiError> {
        let delimiter = match self.delimiter.as_deref() {
            None => None,
            Some(d) if d.len() == 1 => Some(d.as_bytes()[0]),
            Some(_) => return Err(ApiError::invalid("mapping.delimiter", "must be one character")),
        };
        Ok(csv_import::Mapping {
            date: self.date,
            amount: self.amount,
            debit: self.debit,
            credit: self.credit,
            description: self.description,
            category: self.category,
            date_format: self.date_format,
            delimiter,
        })
    }
}

/// The budget an expense's category names (case-insensitively), if any.
fn budget_of(budgets: &[(i64, String)], kind: Kind, category: Option<&str>) -> Option<i64> {
    let category = category.filter(|_| kind == Kind::Expense)?.trim().to_lowercase();
    budgets
        .iter()
        .find(|(_, name)| *name == category)
        .map(|(id, _)| *id)
}

/// Records `row`; `false` when it was imported meanwhile.
async fn insert(
    conn: &mut PgConnection,
    user: i64,
    row: &ImportRow,
    kind: Kind,
    budget_id: Option<i64>,
    account_id: Option<i64>,
) -> Result<bool, ApiError> {
    let mut entry = Entry::new(kind, row.date, row.amount);
    entry.description = row.description.clone();
    entry.budget_id = budget_id;
    entry.account_id = account_id;
    entry.import_id = Some(row.import_id.clone());
    let inserted = ledger::insert(conn, user, &entry, today())
        .await
        .map_err(|err| match err {
            ledger::LedgerError::Move(err) => {
                ApiError::conflict("insufficient_funds", format!("line {}: {err}", row.line))
            }
            other => other.into(),
        })?;
    Ok(inserted.is_some())
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
