//! Listing and searching transactions: the filters, and the keyset query behind both.

use chrono::NaiveDate;
use serde_json::json;
use sqlx::{Postgres, QueryBuilder};

use super::{Row, SELECT, TransactionType, TransactionsApi};
use crate::api::money::Money;
use crate::api::{ApiError, page};

/// What a list or search filters on.
#[derive(Debug, Default)]
pub(super) struct Search {
    pub(super) text: Option<String>,
    pub(super) category: Option<String>,
    pub(super) min_amount: Option<Money>,
    pub(super) max_amount: Option<Money>,
    pub(super) start_date: Option<NaiveDate>,
    pub(super) end_date: Option<NaiveDate>,
    pub(super) city: Option<String>,
    pub(super) neighbourhood: Option<String>,
    pub(super) transaction_type: Option<TransactionType>,
}

pub(super) fn key(row: &Row) -> Vec<serde_json::Value> {
    vec![json!(row.date), json!(row.id)]
}

/// `%text%` for ILIKE, with the pattern characters of `text` taken literally.
fn contains(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

impl TransactionsApi {
    pub(super) async fn search_rows(
        &self,
        user: i64,
        filter: &Search,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Row>, ApiError> {
        let mut query = QueryBuilder::<Postgres>::new(SELECT);
        query.push_bind(user);
        if let Some(text) = &filter.text {
            query.push(" AND t.description ILIKE ").push_bind(contains(text));
        }
        if let Some(category) = &filter.category {
            query.push(" AND b.name ILIKE ").push_bind(contains(category));
        }
        if let Some(min) = filter.min_amount {
            query.push(" AND t.amount >= ").push_bind(min.0);
        }
        if let Some(max) = filter.max_amount {
            query.push(" AND t.amount <= ").push_bind(max.0);
        }
        if let Some(start) = filter.start_date {
            query.push(" AND t.date >= ").push_bind(start);
        }
        if let Some(end) = filter.end_date {
            query.push(" AND t.date <= ").push_bind(end);
        }
        if let Some(city) = &filter.city {
            query.push(" AND t.city ILIKE ").push_bind(contains(city));
        }
        if let Some(neighbourhood) = &filter.neighbourhood {
            query
                .push(" AND t.neighbourhood ILIKE ")
                .push_bind(contains(neighbourhood));
        }
        if let Some(kind) = filter.transaction_type {
            query.push(" AND t.kind = ").push_bind(kind.as_str());
        }
        if let Some(after) = page::decode(cursor)? {
            let date: NaiveDate = page::part(&after, 0)?;
            let id: i64 = page::part(&after, 1)?;
            query
                .push(" AND (t.date, t.id) < (")
                .push_bind(date)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        query
            .push(" ORDER BY t.date DESC, t.id DESC LIMIT ")
            .push_bind(limit + 1);
        Ok(query.build_query_as().fetch_all(&self.0.db).await?)
    }
}
