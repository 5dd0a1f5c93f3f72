//! Runs that something other than `weft run` starts: an API call
//! (`POST /api/v1/pipelines/{name}/runs`) or a cron schedule fired by
//! `weft server`.
//!
//! Both go through a [`Launcher`], which starts a run of a registered
//! pipeline (see `weft_pipeline::registered`) on the server's stack; the
//! CLI provides the one that runs steps. [`Ticker`] fires the schedules
//! kept in the metadata store:
//!
//! - cron expressions are UTC, 5 fields or 6 with seconds first
//!   ([`parse_cron`]);
//! - a due time is taken by the server whose conditional update of the
//!   schedule's `next_due_at` succeeds, and recorded once per (schedule,
//!   due time), so two servers on one database never fire it twice;
//! - due times more than [`GRACE`] old when a server looks (it was down)
//!   are *missed*: policy [`Missed::Skip`] records them as skipped,
//!   [`Missed::CatchUp`] runs once for the latest of them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use futures::future::BoxFuture;
use weft_store::{firing, Schedule, Store, StoreError};

/// How late a due time may be acted on and still count as on time.
pub const GRACE: Duration = Duration::from_secs(5);

/// Longest a ticker sleeps before looking for new or changed schedules.
pub const POLL: Duration = Duration::from_secs(1);

/// Most missed due times counted for one schedule's record (the count
/// says "at least" beyond it).
const MAX_COUNTED: u32 = 100_000;

/// Errors of schedules.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error(
        "'{expr}' is not a cron expression: {message} (use 5 fields 'min hour day month weekday', \
         or 6 with seconds first, in UTC; e.g. '0 3 * * *' or '*/10 * * * * *')"
    )]
    Cron { expr: String, message: String },
    #[error("'{0}' is not a missed-run policy: use skip or catch-up")]
    Missed(String),
    #[error("'{0}' is not a valid schedule name: use 1-64 letters, digits, '_' or '-'")]
    Name(String),
    #[error("params must be an object {{\"step.param\": value}}")]
    Params,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What happens to due times missed while no server ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missed {
    /// Record them as skipped; run at the next due time.
    #[default]
    Skip,
    /// Run once, for the latest of them.
    CatchUp,
}

impl Missed {
    pub fn parse(s: &str) -> Result<Self, TriggerError> {
        match s {
            "skip" => Ok(Self::Skip),
            "catch-up" => Ok(Self::CatchUp),
            other => Err(TriggerError::Missed(other.to_string())),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::CatchUp => "catch-up",
        }
    }
}

/// Checks a schedule name (the same rule as pipeline names).
pub fn validate_name(name: &str) -> Result<(), TriggerError> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(TriggerError::Name(name.to_string()))
    }
}

/// Parses a cron expression: 5 fields, or 6 with seconds first, UTC.
pub fn parse_cron(expr: &str) -> Result<Cron, TriggerError> {
    let error = |message: String| TriggerError::Cron {
        expr: expr.to_string(),
        message,
    };
    if expr.len() > 256 {
        return Err(error("longer than 256 characters".into()));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| error(e.to_string()))?;
    // A pattern that never matches (e.g. 30 February) is refused now, not
    // discovered by the ticker.
    next_after(&cron, now_ms()).map_err(|_| error("it never matches".into()))?;
    Ok(cron)
}

/// Checks what makes a new schedule and gives its first due time (after
/// now).
pub fn check_new(name: &str, cron: &str, missed: &str, params: &serde_json::Value) -> Result<i64, TriggerError> {
    validate_name(name)?;
    Missed::parse(missed)?;
    if !matches!(params, serde_json::Value::Object(_) | serde_json::Value::Null) {
        return Err(TriggerError::Params);
    }
    let parsed = parse_cron(cron)?;
    next_after(&parsed, now_ms()).map_err(|message| TriggerError::Cron {
        expr: cron.to_string(),
        message,
    })
}

/// The first time (ms) strictly after `after_ms` that `cron` matches.
pub fn next_after(cron: &Cron, after_ms: i64) -> Result<i64, String> {
    // Cron has whole seconds: the next match after t is the next after
    // t's second (croner would keep t's milliseconds).
    let start = DateTime::<Utc>::from_timestamp_millis(after_ms.div_euclid(1000) * 1000).ok_or("time out of range")?;
    cron.find_next_occurrence(&start, false)
        .map(|t| t.timestamp_millis())
        .map_err(|e| e.to_string())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    weft_store::now_ms()
}

/// A run that a [`Launcher`] started.
#[derive(Debug, Clone)]
pub struct Launched {
    pub run_id: String,
    pub number: i64,
}

/// Starts runs of registered pipelines; the run goes on after `launch`
/// returns.
pub trait Launcher: Send + Sync {
    /// Starts a run of the newest registered definition of `pipeline` with
    /// `params` (`{"step.param": value}`) applied; returns once the run is
    /// recorded, or why it could not start.
    fn launch(&self, pipeline: &str, params: &serde_json::Value) -> BoxFuture<'static, Result<Launched, String>>;
}

/// Fires due schedules.
#[derive(Clone)]
pub struct Ticker {
    store: Store,
    launcher: Arc<dyn Launcher>,
    host: String,
}

/// What one schedule did in one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub schedule: String,
    pub due_at: i64,
    pub outcome: &'static str,
}

impl Ticker {
    /// A ticker over a store; `host` is recorded with each firing.
    pub fn new(store: Store, launcher: Arc<dyn Launcher>, host: impl Into<String>) -> Self {
        Self {
            store,
            launcher,
            host: host.into(),
        }
    }

    /// Fires schedules until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let now = now_ms();
            if let Err(e) = self.tick(now).await {
                tracing::warn!("schedules: {e}");
            }
            let next = self.store.next_due().await.ok().flatten();
            let wait = next
                .map(|due| Duration::from_millis((due - now_ms()).max(1) as u64))
                .unwrap_or(POLL)
                .min(POLL);
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Acts on every schedule due at `now`; returns what it recorded.
    /// The runs it starts are launched concurrently and awaited.
    pub async fn tick(&self, now: i64) -> Result<Vec<Fired>, TriggerError> {
        let mut fired = Vec::new();
        let mut launches = tokio::task::JoinSet::new();
        for schedule in self.store.due_schedules(now).await? {
            let cron = match parse_cron(&schedule.cron) {
                Ok(cron) => cron,
                Err(e) => {
                    tracing::warn!("schedule '{}': {e}", schedule.name);
                    continue;
                }
            };
            let Ok(next) = next_after(&cron, now) else {
                continue;
            };
            let plan = plan(&cron, &schedule, now);
            if !self.store.claim_due(&schedule.id, schedule.next_due_at, next).await? {
                continue; // another server took it
            }
            let policy = Missed::parse(&schedule.missed).unwrap_or_default();
            if let Some((first, latest, count)) = plan.missed {
                let (due, outcome) = match policy {
                    Missed::Skip => (first, firing::SKIPPED),
                    Missed::CatchUp => (latest, firing::CAUGHT_UP),
                };
                if let Some(id) = self
                    .store
                    .record_firing(&schedule.id, due, outcome, count, &self.host)
                    .await?
                {
                    if outcome == firing::CAUGHT_UP {
                        launches.spawn(self.clone().launch(schedule.clone(), id));
                    }
                    fired.push(Fired {
                        schedule: schedule.name.clone(),
                        due_at: due,
                        outcome,
                    });
                }
            }
            if let Some(due) = plan.on_time {
                if let Some(id) = self
                    .store
                    .record_firing(&schedule.id, due, firing::FIRED, 0, &self.host)
                    .await?
                {
                    launches.spawn(self.clone().launch(schedule.clone(), id));
                    fired.push(Fired {
                        schedule: schedule.name.clone(),
                        due_at: due,
                        outcome: firing::FIRED,
                    });
                }
            }
        }
        while launches.join_next().await.is_some() {}
        Ok(fired)
    }

    async fn launch(self, schedule: Schedule, firing_id: String) {
        let result = self.launcher.launch(&schedule.pipeline, &schedule.params).await;
        let (run_id, error) = match &result {
            Ok(launched) => (Some(launched.run_id.as_str()), None),
            Err(e) => (None, Some(e.as_str())),
        };
        if let Err(e) = self.store.finish_firing(&firing_id, run_id, error).await {
            tracing::warn!("schedule '{}': recording its firing: {e}", schedule.name);
        }
        if let Some(e) = error {
            tracing::warn!("schedule '{}' could not start a run: {e}", schedule.name);
        }
    }
}

/// The due times of a schedule at `now`.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    /// The latest due time within [`GRACE`] of `now`.
    on_time: Option<i64>,
    /// Older due times: (first, latest, how many).
    missed: Option<(i64, i64, i64)>,
}

fn plan(cron: &Cron, schedule: &Schedule, now: i64) -> Plan {
    let grace = GRACE.as_millis() as i64;
    let mut on_time = None;
    let mut missed: Option<(i64, i64, i64)> = None;
    let mut due = schedule.next_due_at;
    let mut counted = 0u32;
    while due <= now && counted < MAX_COUNTED {
        if now - due <= grace {
            on_time = Some(due);
        } else {
            missed = Some(match missed {
                None => (due, due, 1),
                Some((first, _, n)) => (first, due, n + 1),
            });
        }
        counted += 1;
        match next_after(cron, due) {
            Ok(next) => due = next,
            Err(_) => break,
        }
    }
    if counted == MAX_COUNTED && due <= now {
        // Too many to walk: the latest missed one is the last due time
        // before the grace window.
        if let Ok(latest) = cron.find_previous_occurrence(
            &DateTime::<Utc>::from_timestamp_millis(now - grace).unwrap_or_default(),
            true,
        ) {
            let latest = latest.timestamp_millis();
            if let Some((first, _, n)) = missed {
                missed = Some((first, latest, n));
            }
        }
        if let Ok(Some(last)) = cron
            .find_previous_occurrence(&DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_default(), true)
            .map(|t| Some(t.timestamp_millis()))
        {
            if now - last <= grace {
                on_time = Some(last);
            }
        }
    }
    Plan { on_time, missed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(next_due_at: i64) -> Schedule {
        Schedule {
            id: "s".into(),
            name: "s".into(),
            pipeline: "p".into(),
            cron: String::new(),
            params: serde_json::Value::Null,
            missed: "skip".into(),
            paused: false,
            next_due_at,
            created_at: 0,
            last: None,
        }
    }

    #[test]
    fn five_and_six_field_expressions_parse_in_utc() {
        let every_minute = parse_cron("* * * * *").unwrap();
        assert_eq!(next_after(&every_minute, 0).unwrap(), 60_000);
        let every_second = parse_cron("* * * * * *").unwrap();
        assert_eq!(next_after(&every_second, 1_500).unwrap(), 2_000);
        let daily = parse_cron("0 3 * * *").unwrap();
        assert_eq!(next_after(&daily, 0).unwrap(), 3 * 3_600_000);
        assert!(matches!(parse_cron("61 * * * *"), Err(TriggerError::Cron { .. })));
        assert!(matches!(parse_cron("every day"), Err(TriggerError::Cron { .. })));
        assert!(matches!(parse_cron("0 0 30 2 *"), Err(TriggerError::Cron { .. })));
        assert!(parse_cron("").is_err());
    }

    #[test]
    fn a_due_time_within_the_grace_window_is_on_time() {
        let cron = parse_cron("* * * * * *").unwrap();
        let plan = plan(&cron, &schedule(10_000), 10_300);
        assert_eq!(
            plan,
            Plan {
                on_time: Some(10_000),
                missed: None
            }
        );
        // Two seconds late: both due times are on time, the latest runs.
        let plan = plan_at(&cron, 10_000, 11_900);
        assert_eq!(plan.on_time, Some(11_000));
        assert_eq!(plan.missed, None);
    }

    fn plan_at(cron: &Cron, due: i64, now: i64) -> Plan {
        plan(cron, &schedule(due), now)
    }

    #[test]
    fn due_times_older_than_the_grace_window_are_missed() {
        let cron = parse_cron("* * * * * *").unwrap();
        // Down from 10 s to 20.5 s: 10..=15 are missed, 16..=20 on time.
        let plan = plan_at(&cron, 10_000, 20_500);
        assert_eq!(plan.missed, Some((10_000, 15_000, 6)));
        assert_eq!(plan.on_time, Some(20_000));
        // A daily schedule after a week down: missed, nothing on time.
        let daily = parse_cron("0 3 * * *").unwrap();
        let day = 86_400_000;
        let plan = plan_at(&daily, 3 * 3_600_000, 7 * day + 4 * 3_600_000);
        assert_eq!(plan.missed, Some((3 * 3_600_000, 7 * day + 3 * 3_600_000, 8)));
        assert_eq!(plan.on_time, None);
    }

    #[test]
    fn a_very_long_outage_is_counted_up_to_a_bound() {
        let cron = parse_cron("* * * * * *").unwrap();
        let now = 10 * 86_400_000;
        let plan = plan_at(&cron, 0, now);
        let (first, latest, count) = plan.missed.unwrap();
        assert_eq!(first, 0);
        assert_eq!(latest, now - GRACE.as_millis() as i64);
        assert_eq!(count, MAX_COUNTED as i64);
        assert_eq!(plan.on_time, Some(now));
    }

    #[test]
    fn policies_and_names() {
        assert_eq!(Missed::parse("skip").unwrap(), Missed::Skip);
        assert_eq!(Missed::parse("catch-up").unwrap().as_str(), "catch-up");
        assert!(Missed::parse("always").is_err());
        assert!(validate_name("nightly-train_2").is_ok());
        assert!(validate_name("../x").is_err());
        assert!(validate_name("").is_err());
    }
}
