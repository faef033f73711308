//! What a benchmark run measures besides time: CPU of this process and of the PostgreSQL
//! server, memory, rows and bytes in tables, WAL written and durable commits, and how long a
//! durable commit takes on this disk right now. The definitions are those of the reference
//! scripts (`common.py`), so the figures compare.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Row};

/// Linux reports process times in clock ticks of 1/100 s (`USER_HZ`, fixed by its ABI).
const TICKS_PER_SEC: f64 = 100.0;

/// User and system CPU seconds of this process, all its threads.
pub(crate) fn process_cpu() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| stat_times(&stat, 2))
        .unwrap_or(f64::NAN)
}

/// CPU seconds of every PostgreSQL server process on this machine (user and system, with
/// the children that exited), or `None` when `/proc` cannot be read. Only right when the
/// server runs here.
pub(crate) fn postgres_cpu() -> Option<f64> {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let command = stat.find('(').zip(stat.rfind(')')).map(|(l, r)| &stat[l + 1..r]);
        if command == Some("postgres") {
            total += stat_times(&stat, 4).unwrap_or(0.0);
        }
    }
    Some(total)
}

/// The sum of the first `count` of utime, stime, cutime, cstime in a `/proc/*/stat` line.
fn stat_times(stat: &str, count: usize) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(count)
        .map(|field| field.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(ticks as f64 / TICKS_PER_SEC)
}

/// The most memory this process has held (`VmHWM`), in MiB.
pub(crate) fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Nearest-rank percentile (`p` in 0..=100) of sorted values.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (sorted.len() as f64 * p / 100.0).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Rows and on-disk bytes of some tables, and the WAL position, at one moment.
#[derive(Debug, Clone)]
pub(crate) struct DbSnapshot {
    pub(crate) tables: BTreeMap<String, (i64, i64)>,
    pub(crate) lsn: String,
}

pub(crate) async fn db_snapshot(conn: &mut PgConnection, tables: &[&str]) -> anyhow::Result<DbSnapshot> {
    let mut sizes = BTreeMap::new();
    for table in tables {
        // Table names come from the code, never from input.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), pg_total_relation_size('{table}'::regclass) FROM {table}"
        )))
        .fetch_one(&mut *conn)
        .await
        .with_context(|| format!("counting the rows of `{table}`"))?;
        sizes.insert((*table).to_owned(), (row.get(0), row.get(1)));
    }
    let lsn = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(&mut *conn)
        .await?;
    Ok(DbSnapshot { tables: sizes, lsn })
}

/// Rows and bytes each table gained between two snapshots.
pub(crate) fn growth(before: &DbSnapshot, after: &DbSnapshot) -> BTreeMap<String, Value> {
    after
        .tables
        .iter()
        .map(|(table, (rows, bytes))| {
            let (rows0, bytes0) = before.tables.get(table).copied().unwrap_or_default();
            (
                table.clone(),
                json!({ "rows": rows - rows0, "bytes": bytes - bytes0 }),
            )
        })
        .collect()
}

pub(crate) async fn wal_bytes(conn: &mut PgConnection, from: &str, to: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint")
            .bind(to)
            .bind(from)
            .fetch_one(conn)
            .await?,
    )
}

/// WAL records between two positions, counted by `pg_waldump`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct WalRecords {
    /// `Transaction/COMMIT` records: durable commits (read-only transactions write none).
    pub(crate) commits: u64,
    pub(crate) records: u64,
}

/// Counts WAL records with `pg_waldump --stats=record`; `None` when it or the server's
/// `pg_wal` folder cannot be reached (a server on another machine).
pub(crate) async fn wal_records(conn: &mut PgConnection, from: &str, to: &str) -> Option<WalRecords> {
    if from == to {
        return Some(WalRecords::default());
    }
    let data: String = sqlx::query_scalar("SHOW data_directory")
        .fetch_one(&mut *conn)
        .await
        .ok()?;
    let mut command = std::process::Command::new(pg_waldump()?);
    command
        .arg("-p")
        .arg(PathBuf::from(data).join("pg_wal"))
        .args(["-s", from, "-e", to, "--stats=record"]);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .ok()?
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let mut counts = WalRecords::default();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(count)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        match name {
            "Transaction/COMMIT" => counts.commits += count,
            "Total" => counts.records = count,
            _ => {}
        }
    }
    Some(counts)
}

/// `$PG_WALDUMP`, or `pg_waldump` on the `PATH`, or in `pg_config --bindir`.
fn pg_waldump() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PG_WALDUMP") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("pg_waldump"))
            .find(|path| path.is_file())
    });
    on_path.or_else(|| {
        let output = std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()?;
        let dir = String::from_utf8(output.stdout).ok()?;
        Some(PathBuf::from(dir.trim()).join("pg_waldump")).filter(|path| path.is_file())
    })
}

/// Latency of durable single-row commits on this server right now, in ms.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct CommitProbe {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
}

/// Times 100 autocommit INSERTs, each a durable commit.
pub(crate) async fn commit_probe(conn: &mut PgConnection) -> anyhow::Result<CommitProbe> {
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_commit_probe (x int)")
        .execute(&mut *conn)
        .await?;
    let mut times = Vec::with_capacity(100);
    for i in 0..100 {
        let started = Instant::now();
        sqlx::query("INSERT INTO bench_commit_probe VALUES ($1)")
            .bind(i)
            .execute(&mut *conn)
            .await?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    sqlx::query("TRUNCATE bench_commit_probe")
        .execute(&mut *conn)
        .await?;
    times.sort_by(f64::total_cmp);
    Ok(CommitProbe {
        p50: percentile(&times, 50.0),
        p90: percentile(&times, 90.0),
    })
}

/// "fast" (a durable commit well under 1 ms before and after the run), "throttled" (over
/// 2 ms both times) or "mixed": the disk here switches between the two by itself.
pub(crate) fn disk_regime(before: CommitProbe, after: CommitProbe) -> &'static str {
    match (before.p50, after.p50) {
        (b, a) if b < 1.0 && a < 1.0 => "fast",
        (b, a) if b > 2.0 && a > 2.0 => "throttled",
        _ => "mixed",
    }
}

/// A connection for measuring, outside the pools being measured.
pub(crate) async fn admin(url: &str) -> anyhow::Result<PgConnection> {
    let options: sqlx::postgres::PgConnectOptions = url.parse().context("parsing the database URL")?;
    PgConnection::connect_with(&options.options([("TimeZone", "UTC")]))
        .await
        .with_context(|| format!("cannot connect to {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&[3.0], 50.0), 3.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn process_times_are_read_after_the_command() {
        // The command may hold spaces and parentheses; fields are counted after the last `)`.
        let stat = "42 (post gres) S 1 2 3 4 5 6 7 8 9 10 150 50 7 3 20 0";
        assert_eq!(stat_times(stat, 2), Some(2.0));
        assert_eq!(stat_times(stat, 4), Some(2.1));
    }

    #[test]
    fn regimes() {
        let probe = |p50| CommitProbe { p50, p90: p50 };
        assert_eq!(disk_regime(probe(0.2), probe(0.3)), "fast");
        assert_eq!(disk_regime(probe(4.0), probe(3.9)), "throttled");
        assert_eq!(disk_regime(probe(0.2), probe(4.0)), "mixed");
    }
}
