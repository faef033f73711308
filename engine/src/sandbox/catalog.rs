//! What a model is told about the data it may query: the views of the semantic schema that the
//! sandbox role can read, with their columns and types, read from the database's catalog, and
//! their meanings and example questions, read from the views' comments (`COMMENT ON`).
//!
//! A view's comment is its meaning, then lines that start with `Example:`, each a question
//! the view answers; a column's comment is its meaning.

use serde::Serialize;
use sqlx::PgPool;

/// The views, by name.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Catalog {
    pub views: Vec<View>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct View {
    pub name: String,
    pub description: String,
    pub examples: Vec<String>,
    pub columns: Vec<ViewColumn>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ViewColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub description: String,
}

const EXAMPLE: &str = "Example:";

impl Catalog {
    /// Reads the views of `schema` that the pool's role may select from.
    pub async fn load(pool: &PgPool, schema: &str) -> Result<Catalog, sqlx::Error> {
        let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT c.relname::text, coalesce(obj_description(c.oid, 'pg_class'), ''), \
                    a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    coalesce(col_description(c.oid, a.attnum), '') \
             FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             WHERE n.nspname = $1 AND c.relkind IN ('v', 'm') AND has_table_privilege(c.oid, 'SELECT') \
             ORDER BY c.relname, a.attnum",
        )
        .bind(schema)
        .persistent(false)
        .fetch_all(pool)
        .await?;
        let mut views: Vec<View> = Vec::new();
        for (view, comment, column, type_name, column_comment) in rows {
            if views.last().is_none_or(|last| last.name != view) {
                let (description, examples) = split_comment(&comment);
                views.push(View {
                    name: view,
                    description,
                    examples,
                    columns: Vec::new(),
                });
            }
            if let Some(last) = views.last_mut() {
                last.columns.push(ViewColumn {
                    name: column,
                    type_name,
                    description: column_comment,
                });
            }
        }
        Ok(Catalog { views })
    }

    /// The catalog as text for a prompt: one block per view.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for view in &self.views {
            text.push_str(&format!("view {}: {}\n", view.name, view.description));
            for column in &view.columns {
                text.push_str(&format!("  - {} ({})", column.name, column.type_name));
                if !column.description.is_empty() {
                    text.push_str(&format!(": {}", column.description));
                }
                text.push('\n');
            }
            for example in &view.examples {
                text.push_str(&format!("  example question: {example}\n"));
            }
        }
        text
    }
}

fn split_comment(comment: &str) -> (String, Vec<String>) {
    let mut description = Vec::new();
    let mut examples = Vec::new();
    for line in comment.lines().map(str::trim).filter(|line| !line.is_empty()) {
        match line.strip_prefix(EXAMPLE) {
            Some(example) => examples.push(example.trim().to_owned()),
            None => description.push(line),
        }
    }
    (description.join(" "), examples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comment_is_a_meaning_then_examples() {
        let (description, examples) =
            split_comment("Every expense.\nOne row each.\nExample: How much on food?\n Example:  And rent? ");
        assert_eq!(description, "Every expense. One row each.");
        assert_eq!(examples, ["How much on food?", "And rent?"]);
    }
}
