//! The `slurm` orchestrator: each step that is not a cache hit becomes one
//! batch job (`sbatch`) running `weft step exec` with the step's
//! resources; the run follows it (`scontrol show job`) and cancels it
//! (`scancel`). The job needs what the run's stack names to be reachable
//! from the compute node (PostgreSQL and S3-compatible storage for a real
//! cluster), and the weft executable at the same path
//! (`WEFT_WORKER_EXE` names another).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use tokio::process::Command;
use weft_pipeline::{Dispatcher, StepJob};
use weft_runtime::Cancel;

use crate::worker::{WorkerCommand, CANCEL_GRACE};

/// The orchestrator's name in a stack and in `[steps.X] orchestrator`.
pub const SLURM: &str = "slurm";

/// How often a job's state is read.
const POLL: Duration = Duration::from_millis(250);

/// Submits one batch job per step and follows it.
#[derive(Debug)]
pub struct SlurmDispatcher {
    worker: WorkerCommand,
    /// Where the jobs' output goes (`<state>/slurm`).
    logs: PathBuf,
}

/// A job's state as `scontrol` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobState {
    state: String,
    exit_code: String,
    reason: String,
}

impl JobState {
    fn is_pending(&self) -> bool {
        self.state == "PENDING" || self.state == "CONFIGURING" || self.state == "REQUEUED"
    }

    fn is_over(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" | "REQUEUED" | "RESIZING" | "SUSPENDED" | "STAGE_OUT"
        )
    }
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
        }
    }

    /// `sbatch` for `job`: its id and its log.
    async fn submit(&self, job: &StepJob) -> Result<(String, PathBuf), String> {
        let command = self.worker.args_for(job);
        let id = sbatch(
            &self.worker,
            &self.logs,
            &format!("{}-%j.log", job.step_run_id),
            &format!("weft-{}", job.step),
            &command,
            job.resources.sbatch_args(),
        )
        .await?;
        let log = self.logs.join(format!("{}-{id}.log", job.step_run_id));
        Ok((id, log))
    }

    /// The job's state; `None` when Slurm no longer knows it.
    async fn state(id: &str) -> Result<Option<JobState>, String> {
        let args = ["show", "job", "-o", id].map(String::from);
        let text = match slurm("scontrol", &args, &[]).await {
            Ok(text) => text,
            Err(e) if e.contains("Invalid job id") => return Ok(None),
            Err(e) => return Err(e),
        };
        let field = |name: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .unwrap_or_default()
                .to_string()
        };
        Ok(Some(JobState {
            state: field("JobState"),
            exit_code: field("ExitCode"),
            reason: field("Reason"),
        }))
    }

    async fn run_job(&self, job: &StepJob, cancel: &Cancel) -> Result<(), String> {
        let (id, log) = self.submit(job).await?;
        let mut interrupted: Option<tokio::time::Instant> = None;
        let mut last: Option<JobState> = None;
        loop {
            match Self::state(&id).await {
                Ok(Some(state)) => {
                    let over = state.is_over();
                    let pending = state.is_pending();
                    last = Some(state);
                    if over {
                        break;
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
                }
                // Forgotten by the controller: it ended a while ago.
                Ok(None) => break,
                Err(e) => return Err(e),
            }
            tokio::time::sleep(POLL).await;
        }
        match last {
            Some(state) if state.state == "COMPLETED" => Ok(()),
            Some(state) => {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                let tail = said.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                Err(format!(
                    "Slurm job {id} ended {} (exit code {}, reason {}){}",
                    state.state,
                    state.exit_code,
                    state.reason,
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
}

impl Dispatcher for SlurmDispatcher {
    fn dispatch<'a>(
        &'a self,
        job: &'a StepJob,
        cancel: &'a Cancel,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(self.run_job(job, cancel))
    }

    /// Jobs run on the cluster's nodes, not this machine's cores; each
    /// costs the run one follower polling `scontrol`.
    fn default_parallel(&self) -> Option<usize> {
        Some(256)
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
