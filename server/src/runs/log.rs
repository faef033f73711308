//! A run's stream, as HTTP clients read it: every engine event of the run becomes one or more
//! entries, each with an id that grows by one, so a client that reconnects with the last id
//! it saw (`Last-Event-ID`) gets the rest without a gap. Clients see ids as `EPOCH-N`: a log
//! made again for the same run (after a restart) has another epoch, so an id of the old one
//! is refused rather than read as a position in the new one.
//!
//! Entries are named after the stream modes: `values` (the state after each step), `updates`
//! (a node's writes, and `__interrupt__` when the run pauses), `messages` (model tokens) and
//! `events` (every engine event as is); `metadata` (the run's id), `error` and `end` go to
//! every client.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use engine::run::Event;
use futures::stream::{BoxStream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The stream modes a client can ask for.
pub const MODES: &[&str] = &["values", "updates", "messages", "events"];

/// One entry of a run's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: u64,
    /// `values`, `updates`, `messages`, `events`, `metadata`, `error` or `end`.
    pub event: &'static str,
    pub data: Value,
}

impl Entry {
    /// Whether a client that asked for `modes` gets it.
    pub fn is_for(&self, modes: &[String]) -> bool {
        !MODES.contains(&self.event) || modes.iter().any(|mode| mode == self.event)
    }
}

/// The entries of one run, kept while the process runs it and for a while after.
#[derive(Debug)]
pub struct RunLog {
    /// When the log was made (Unix milliseconds): the first part of every id clients see.
    epoch: u64,
    entries: Mutex<Vec<Entry>>,
    /// Bumped at every append; `true` once the run stopped (ended, paused, failed).
    changed: watch::Sender<bool>,
    stopped_at: Mutex<Option<Instant>>,
}

impl Default for RunLog {
    fn default() -> Self {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        RunLog {
            epoch,
            entries: Mutex::new(Vec::new()),
            changed: watch::Sender::new(false),
            stopped_at: Mutex::new(None),
        }
    }
}

impl RunLog {
    /// The id clients see for entry `id`.
    pub fn public_id(&self, id: u64) -> String {
        format!("{}-{id}", self.epoch)
    }

    /// The entry a client's `Last-Event-ID` names: `Err` when it is not of this log.
    pub fn parse_id(&self, id: &str) -> Result<u64, String> {
        let (epoch, n) = id
            .trim()
            .split_once('-')
            .ok_or("Last-Event-ID must look like `EPOCH-N`")?;
        let n: u64 = n.parse().map_err(|_| "Last-Event-ID must look like `EPOCH-N`")?;
        let last = self.entries.lock().expect("run log").len() as u64;
        if epoch != self.epoch.to_string() || n >= last {
            return Err("Last-Event-ID names no event of this run's stream as the server keeps it now; read the thread's state and history".to_owned());
        }
        Ok(n)
    }

    /// Adds what a client sees of `event`. Events that come after the stream's `end` (a
    /// cancelled run finishing its step) are dropped, until the run goes on ([`reopen`]).
    ///
    /// [`reopen`]: RunLog::reopen
    pub fn record(&self, event: &Event) {
        let mut entries = self.entries.lock().expect("run log");
        if *self.changed.borrow() {
            return;
        }
        let mut push = |name: &'static str, data: Value| {
            let id = entries.len() as u64;
            entries.push(Entry {
                id,
                event: name,
                data,
            });
        };
        match event {
            Event::RunStarted { run: Some(run), .. } => push("metadata", json!({ "run_id": run })),
            Event::Token { node, text } => push("messages", json!({ "node": node, "text": text })),
            Event::NodeFinished { node, writes, .. } => {
                let writes: serde_json::Map<String, Value> = writes
                    .iter()
                    .map(|write| (write.field.clone(), write.value.clone()))
                    .collect();
                push("updates", json!({ node.clone(): writes }));
            }
            Event::StepFinished { state, .. } => push("values", Value::Object(state.clone())),
            Event::Interrupted { interrupts } => push("updates", json!({ "__interrupt__": interrupts })),
            _ => {}
        }
        push("events", serde_json::to_value(event).unwrap_or(Value::Null));
        if let Event::RunFinished { status, error } = event {
            push("end", json!({ "status": status.name(), "error": error }));
        }
        // Told while the entries are held, so a reader that sees `end` also sees it stopped.
        self.notify(matches!(event, Event::RunFinished { .. }));
        drop(entries);
    }

    /// Records that the run stopped without finishing (a refused start, a lost database, a
    /// cancel); nothing when its stream has already ended (a cancelled run's worker fails
    /// after the cancel was recorded).
    pub fn fail(&self, error: &str) {
        let mut entries = self.entries.lock().expect("run log");
        if *self.changed.borrow() {
            return;
        }
        let id = entries.len() as u64;
        entries.push(Entry {
            id,
            event: "error",
            data: json!({ "message": error }),
        });
        entries.push(Entry {
            id: id + 1,
            event: "end",
            data: json!({ "status": "failed", "error": error }),
        });
        self.notify(true);
        drop(entries);
    }

    /// Marks the log live again: a paused run goes on.
    pub fn reopen(&self) {
        *self.stopped_at.lock().expect("run log") = None;
        self.changed.send_replace(false);
    }

    /// Wakes the readers; `stopped` marks the stream ended (only [`reopen`](RunLog::reopen)
    /// takes that back).
    fn notify(&self, stopped: bool) {
        if stopped {
            *self.stopped_at.lock().expect("run log") = Some(Instant::now());
        }
        self.changed.send_modify(|ended| *ended |= stopped);
    }

    /// Whether the stream has ended and its run waits for an answer.
    pub fn is_waiting(&self) -> bool {
        let entries = self.entries.lock().expect("run log");
        *self.changed.borrow()
            && entries
                .last()
                .is_some_and(|entry| entry.event == "end" && entry.data["status"] == "interrupted")
    }

    /// The entries after `after` (all with `None`), and whether the run has stopped.
    pub fn since(&self, after: Option<u64>) -> (Vec<Entry>, bool) {
        let entries = self.entries.lock().expect("run log");
        let from = after.map_or(0, |id| id as usize + 1).min(entries.len());
        (entries[from..].to_vec(), *self.changed.borrow())
    }

    /// A receiver that wakes at every append.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.changed.subscribe()
    }

    /// The entries after `after` that a client of `modes` gets, then the live ones, until the
    /// run stops: the stream ends when every entry of a stopped run has been given.
    pub fn follow(self: Arc<Self>, modes: Vec<String>, after: Option<u64>) -> BoxStream<'static, Entry> {
        let changes = self.subscribe();
        futures::stream::unfold(
            (self, changes, after, false),
            move |(log, mut changes, mut after, done)| {
                let modes = modes.clone();
                async move {
                    if done {
                        return None;
                    }
                    loop {
                        // Seen before reading: a change after the read wakes the wait below.
                        changes.borrow_and_update();
                        let (entries, stopped) = log.since(after);
                        if let Some(last) = entries.last() {
                            after = Some(last.id);
                        }
                        let mine: Vec<Entry> =
                            entries.into_iter().filter(|entry| entry.is_for(&modes)).collect();
                        if !mine.is_empty() || stopped {
                            return Some((mine, (log, changes, after, stopped)));
                        }
                        if changes.changed().await.is_err() {
                            return None;
                        }
                    }
                }
            },
        )
        .flat_map(futures::stream::iter)
        .boxed()
    }

    /// When the run stopped, if it has.
    pub fn stopped_at(&self) -> Option<Instant> {
        *self.stopped_at.lock().expect("run log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::run::RunStatus;

    fn finished() -> Event {
        Event::RunFinished {
            status: RunStatus::Succeeded,
            error: None,
        }
    }

    fn token(text: &str) -> Event {
        Event::Token {
            node: "answer".to_owned(),
            text: text.to_owned(),
        }
    }

    #[tokio::test]
    async fn a_follower_gets_what_was_and_what_comes_then_the_stream_ends() {
        let log = Arc::new(RunLog::default());
        log.record(&token("Hel"));
        let follower = tokio::spawn(
            log.clone()
                .follow(vec!["messages".to_owned()], None)
                .collect::<Vec<_>>(),
        );
        tokio::task::yield_now().await;
        log.record(&token("lo"));
        log.record(&finished());
        let seen: Vec<(u64, &str)> = follower
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.id, e.event))
            .collect();
        assert_eq!(seen, [(0, "messages"), (2, "messages"), (5, "end")]);
        // Nothing is recorded after the end, and a follower from the end gets nothing.
        log.record(&token("late"));
        let after_end = log
            .clone()
            .follow(vec!["messages".to_owned()], Some(5))
            .collect::<Vec<_>>()
            .await;
        assert_eq!(after_end, []);
    }

    #[test]
    fn entries_are_numbered_in_order_and_a_reader_resumes_after_the_last_it_saw() {
        let log = RunLog::default();
        log.record(&Event::RunStarted {
            graph: "g".to_owned(),
            run: Some(uuid::Uuid::nil()),
        });
        log.record(&Event::Token {
            node: "answer".to_owned(),
            text: "Hi".to_owned(),
        });
        log.record(&Event::RunFinished {
            status: RunStatus::Succeeded,
            error: None,
        });
        let (all, stopped) = log.since(None);
        assert!(stopped);
        let names: Vec<(u64, &str)> = all.iter().map(|entry| (entry.id, entry.event)).collect();
        assert_eq!(
            names,
            [
                (0, "metadata"),
                (1, "events"),
                (2, "messages"),
                (3, "events"),
                (4, "events"),
                (5, "end")
            ]
        );
        let (rest, _) = log.since(Some(2));
        assert_eq!(rest.first().map(|entry| entry.id), Some(3));
        let messages_only = vec!["messages".to_owned()];
        let seen: Vec<&str> = all
            .iter()
            .filter(|entry| entry.is_for(&messages_only))
            .map(|entry| entry.event)
            .collect();
        assert_eq!(seen, ["metadata", "messages", "end"]);
    }
}
