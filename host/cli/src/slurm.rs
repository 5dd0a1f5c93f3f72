//! The `slurm` orchestrator: each step that is not a cache hit becomes one
//! batch job (`sbatch`) running `weft step exec` with the step's
//! resources, submitted as soon as the jobs of the steps it reads from
//! are (held on them with `--dependency=afterok`, cancelled by Slurm when
//! one fails); the run follows its jobs (one `squeue` for all of them, at
//! most four times a second, however many there are) and cancels them
//! (`scancel`). The job needs what the run's stack names to be reachable
//! from the compute node (PostgreSQL and S3-compatible storage for a real
//! cluster), and the weft executable at the same path
//! (`WEFT_WORKER_EXE` names another).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::process::Command;
use weft_pipeline::{Dispatcher, StepJob};
use weft_runtime::Cancel;

use crate::worker::{WorkerCommand, CANCEL_GRACE};

/// The orchestrator's name in a stack and in `[steps.X] orchestrator`.
pub const SLURM: &str = "slurm";

/// How often the jobs' states are read.
const POLL: Duration = Duration::from_millis(250);

/// Submits one batch job per step and follows it.
#[derive(Debug)]
pub struct SlurmDispatcher {
    worker: WorkerCommand,
    /// Where the jobs' output goes (`<state>/slurm`).
    logs: PathBuf,
    board: Board,
}

/// The states of the jobs a run follows, read for all of them at once: a
/// run with 256 jobs asks the controller as often as a run with one.
#[derive(Debug, Default)]
struct Board {
    followed: std::sync::Mutex<BTreeSet<String>>,
    seen: tokio::sync::Mutex<Option<Reading>>,
}

/// One `squeue`: when, which jobs it asked about, and their states.
#[derive(Debug)]
struct Reading {
    at: Instant,
    asked: BTreeSet<String>,
    states: BTreeMap<String, String>,
}

impl Board {
    fn follow(&self, id: &str) {
        self.followed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }

    fn unfollow(&self, id: &str) {
        self.followed.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Job `id`'s state (`RUNNING`, `COMPLETED`, …); `None` when Slurm no
    /// longer knows it. Reads every followed job's with one `squeue` when
    /// the last reading is older than [`POLL`] or did not ask about `id`.
    async fn state(&self, id: &str) -> Result<Option<String>, String> {
        let mut seen = self.seen.lock().await;
        let fresh = seen
            .as_ref()
            .is_some_and(|r| r.at.elapsed() < POLL && r.asked.contains(id));
        if !fresh {
            let mut asked = self.followed.lock().unwrap_or_else(|e| e.into_inner()).clone();
            asked.insert(id.to_string());
            let list = asked.iter().cloned().collect::<Vec<_>>().join(",");
            let args = ["-h", "-t", "all", "-j", &list, "-o", "%i|%T"].map(String::from);
            let states = match slurm("squeue", &args, &[]).await {
                Ok(text) => text
                    .lines()
                    .filter_map(|line| {
                        let (job, state) = line.trim().split_once('|')?;
                        Some((job.to_string(), state.to_string()))
                    })
                    .collect(),
                // None of them is known any more.
                Err(e) if e.contains("Invalid job id") => BTreeMap::new(),
                Err(e) => return Err(e),
            };
            *seen = Some(Reading {
                at: Instant::now(),
                asked,
                states,
            });
        }
        Ok(seen.as_ref().and_then(|r| r.states.get(id).cloned()))
    }
}

fn is_pending(state: &str) -> bool {
    matches!(state, "PENDING" | "CONFIGURING" | "REQUEUED")
}

fn is_over(state: &str) -> bool {
    !matches!(
        state,
        "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" | "REQUEUED" | "RESIZING" | "SUSPENDED" | "STAGE_OUT"
    )
}

/// A word safe in a POSIX shell command line.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// Runs a Slurm command with `env` on top of ours: its standard output,
/// or an error naming it with what it said.
async fn slurm(program: &str, args: &[String], env: &[(&'static str, String)]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {program} (is Slurm's client installed, and SLURM_CONF set?): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Submits `worker.exe ARGS` as one batch job named `name` with `flags`,
/// its output in `logs/<log>` (`%j`: the job id): the job's id.
async fn sbatch(
    worker: &WorkerCommand,
    logs: &Path,
    log: &str,
    name: &str,
    command: &[OsString],
    flags: Vec<String>,
) -> Result<String, String> {
    std::fs::create_dir_all(logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let mut script = format!("exec {}", sh_quote(&worker.exe.to_string_lossy()));
    for arg in command {
        script.push(' ');
        script.push_str(&sh_quote(&arg.to_string_lossy()));
    }
    let mut args = vec![
        "--parsable".to_string(),
        format!("--job-name={name}"),
        format!("--output={}", logs.join(log).display()),
    ];
    args.extend(flags);
    args.push(format!("--wrap={script}"));
    let stdout = slurm("sbatch", &args, &worker.env).await?;
    // `--parsable` prints `ID` or `ID;CLUSTER`.
    let id = stdout.trim().split(';').next().unwrap_or_default().to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("sbatch printed no job id: {stdout:?}"));
    }
    Ok(id)
}

/// Submits the run itself as a batch job (`weft run --detach`): the job
/// runs `weft run RUN_ARGS` on the same stack and state, which hands each
/// step to Slurm as a run in the foreground does, and the submitting
/// process returns at once. Its id and its log.
pub async fn submit_run(
    worker: &WorkerCommand,
    state: &Path,
    pipeline: &str,
    run_args: &[OsString],
) -> Result<(String, PathBuf), String> {
    let logs = state.join("slurm");
    let mut command = worker.args.clone();
    command.push("run".into());
    command.extend(run_args.iter().cloned());
    let id = sbatch(
        worker,
        &logs,
        "run-%j.log",
        &format!("weft-run-{pipeline}"),
        &command,
        Vec::new(),
    )
    .await?;
    let log = logs.join(format!("run-{id}.log"));
    Ok((id, log))
}

impl SlurmDispatcher {
    pub fn new(worker: WorkerCommand, state: &Path) -> Self {
        Self {
            worker,
            logs: state.join("slurm"),
            board: Board::default(),
        }
    }

    /// `sbatch` for `job`, held until the jobs it comes after succeed
    /// (and cancelled by Slurm if one fails): its id and its log.
    async fn submit(&self, job: &StepJob) -> Result<(String, PathBuf), String> {
        let command = self.worker.args_for(job);
        let mut flags = Vec::new();
        if !job.after.is_empty() {
            flags.push(format!("--dependency=afterok:{}", job.after.join(":")));
            flags.push("--kill-on-invalid-dep=yes".to_string());
        }
        flags.extend(job.resources.sbatch_args());
        let id = sbatch(
            &self.worker,
            &self.logs,
            &format!("{}-%j.log", job.step_run_id),
            &format!("weft-{}", job.step),
            &command,
            flags,
        )
        .await?;
        job.reporter.submitted(&id);
        let log = self.logs.join(format!("{}-{id}.log", job.step_run_id));
        Ok((id, log))
    }

    /// Why job `id` ended as it did, from the controller's record:
    /// `(exit code, reason)`, each `?` when it is forgotten.
    async fn details(id: &str) -> (String, String) {
        let args = ["show", "job", "-o", id].map(String::from);
        let text = slurm("scontrol", &args, &[]).await.unwrap_or_default();
        let field = |name: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .unwrap_or("?")
                .to_string()
        };
        (field("ExitCode"), field("Reason"))
    }

    async fn run_job(&self, job: &StepJob, cancel: &Cancel) -> Result<(), String> {
        let (id, log) = self.submit(job).await?;
        self.board.follow(&id);
        let ended = self.follow(&id, cancel).await;
        self.board.unfollow(&id);
        match ended? {
            Some(state) if state == "COMPLETED" => Ok(()),
            Some(state) => {
                let (exit_code, reason) = Self::details(&id).await;
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                let tail = said.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                Err(format!(
                    "Slurm job {id} ended {state} (exit code {exit_code}, reason {reason}){}",
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(": {tail}")
                    }
                ))
            }
            None => Err(format!("Slurm job {id} ended unseen")),
        }
    }

    /// Follows job `id` until it ends, cancelling it when `cancel` is set:
    /// its last state seen.
    async fn follow(&self, id: &str, cancel: &Cancel) -> Result<Option<String>, String> {
        let mut interrupted: Option<tokio::time::Instant> = None;
        let mut last: Option<String> = None;
        let id = id.to_string();
        loop {
            // None: forgotten by the controller; it ended a while ago.
            let Some(state) = self.board.state(&id).await? else {
                return Ok(last);
            };
            let (over, pending) = (is_over(&state), is_pending(&state));
            last = Some(state);
            if over {
                return Ok(last);
            }
            if cancel.is_cancelled() {
                match interrupted {
                    None if pending => {
                        slurm("scancel", std::slice::from_ref(&id), &[]).await?;
                        interrupted = Some(tokio::time::Instant::now());
                    }
                    // The worker records the cancellation.
                    None => {
                        slurm("scancel", &["--signal=INT".into(), "--full".into(), id.clone()], &[]).await?;
                        interrupted = Some(tokio::time::Instant::now());
                    }
                    Some(at) if at.elapsed() > CANCEL_GRACE => {
                        slurm("scancel", std::slice::from_ref(&id), &[]).await?;
                    }
                    Some(_) => {}
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Dispatcher for SlurmDispatcher {
    fn dispatch<'a>(
        &'a self,
        job: &'a StepJob,
        cancel: &'a Cancel,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(self.run_job(job, cancel))
    }

    /// Jobs run on the cluster's nodes, not this machine's cores; the run
    /// reads all their states with one `squeue`.
    fn default_parallel(&self) -> Option<usize> {
        Some(256)
    }

    /// `--dependency=afterok` with `--kill-on-invalid-dep=yes`: a run
    /// queues a step's job as soon as the jobs of the steps it reads from
    /// are queued.
    fn holds_jobs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_words_survive_the_shell() {
        for word in ["plain", "with space", "it's", "$(rm -rf /)", "a\"b", ""] {
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("printf %s {}", sh_quote(word))])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), word);
        }
    }
}
