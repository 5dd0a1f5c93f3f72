//! `weft step exec STEP_RUN_ID`, the worker entry point, and the `process`
//! orchestrator, which runs every step that is not a cache hit in a worker
//! process of its own (isolation from the run's process; the same path a
//! cluster job takes).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use weft_pipeline::{Dispatcher, Dispatchers, Retry, StepJob, Worker, WorkerOutcome};
use weft_runtime::Cancel;
use weft_store::status;

use crate::commands::{cancelled_by_ctrl_c, open_runtime};
use crate::context::{CliError, CliResult, Stack, Stores};
use crate::exit;

/// `weft step exec`: claims, executes and records one prepared step run.
/// Exit 0 when it succeeded (or was served from the cache) or had already
/// been taken, 1 when it failed or cannot run (a step run it reads from
/// did not succeed), 130 when it was cancelled.
pub async fn exec(state: &Path, stores: &Stores, id: &str, retry: Retry) -> CliResult<u8> {
    let runtime = open_runtime(state)?;
    let worker = Worker::new(
        runtime,
        stores.store.clone(),
        stores.artifacts.clone(),
        &state.join("work"),
    )
    .with_secrets(crate::secrets::open().ok());
    let cancel = cancelled_by_ctrl_c();
    let outcome = worker.exec(id, &retry, &cancel).await.map_err(|e| match e {
        weft_pipeline::ExecError::Store(e) => CliError::from(e),
        other => CliError::usage(format!("step run {id}: {other}")),
    })?;
    match outcome {
        WorkerOutcome::AlreadyTaken(now) => {
            eprintln!("step run {id} is {now}: another worker has it, or it ended; nothing to do");
            Ok(exit::OK)
        }
        WorkerOutcome::NotReady(why) => {
            eprintln!("step run {id} cannot run: {why}; nothing to do");
            Ok(exit::RUN_FAILED)
        }
        WorkerOutcome::Recorded { status: s, error } => {
            match &error {
                Some(error) => eprintln!("step run {id}: {s}: {error}"),
                None => eprintln!("step run {id}: {s}"),
            }
            Ok(match s.as_str() {
                status::SUCCEEDED | status::CACHED => exit::OK,
                status::CANCELLED => exit::CANCELLED,
                _ => exit::RUN_FAILED,
            })
        }
    }
}

/// The orchestrator that runs each step in a worker process.
pub const PROCESS: &str = "process";

/// The dispatchers of a run on `stack`: the stack's orchestrator's for
/// every step (none for `local`: steps run in the run's process), and one
/// per orchestrator for the steps that name one.
pub fn dispatchers(state: &Path, stack: &Stack) -> CliResult<Dispatchers> {
    let worker = WorkerCommand::new(state, stack)?;
    let mut named: BTreeMap<String, Arc<dyn Dispatcher>> = BTreeMap::new();
    named.insert(PROCESS.into(), Arc::new(ProcessDispatcher(worker.clone())));
    named.insert(
        crate::slurm::SLURM.into(),
        Arc::new(crate::slurm::SlurmDispatcher::new(worker, state)),
    );
    if let Some(settings) = &stack.kubernetes {
        let dispatcher = crate::kubernetes::KubernetesDispatcher::new(
            settings.clone(),
            stack.written_db.as_deref(),
            stack.written_artifacts.as_deref(),
        )
        .map_err(|e| CliError::usage(format!("the stack's Kubernetes settings: {e}")))?;
        named.insert(crate::kubernetes::KUBERNETES.into(), Arc::new(dispatcher));
    }
    let default = match stack.orchestrator.as_deref() {
        None | Some("local") => None,
        Some(crate::kubernetes::KUBERNETES) if stack.kubernetes.is_none() => {
            return Err(CliError::usage(
                "the stack's orchestrator is kubernetes but it has no Kubernetes settings: \
                 create it again with --k8s-image (see the README's Kubernetes guide)",
            ))
        }
        Some(name) => Some(named.get(name).cloned().ok_or_else(|| {
            CliError::usage(format!(
                "the stack's orchestrator '{name}' is not one weft has (local, {})",
                named.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?),
    };
    Ok(Dispatchers { default, named })
}

/// Refuses, before anything runs, a step that names an orchestrator the
/// run does not have (`kubernetes` on a stack without its settings).
pub fn check_step_orchestrators(dispatchers: &Dispatchers, manifest: &weft_pipeline::Manifest) -> CliResult<()> {
    for step in &manifest.steps {
        let Some(name) = step.orchestrator.as_deref() else {
            continue;
        };
        if name == "local" || dispatchers.named.contains_key(name) {
            continue;
        }
        let hint = if name == crate::kubernetes::KUBERNETES {
            ": create the stack with --k8s-image (see the README's Kubernetes guide)"
        } else {
            ""
        };
        return Err(CliError::usage(format!(
            "step '{}' runs on orchestrator '{name}', which this stack does not have (it has local, {}){hint}",
            step.name,
            dispatchers.named.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}

/// The command line of a worker for this run's state and stack.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The weft executable (`WEFT_WORKER_EXE`, or this one).
    pub exe: PathBuf,
    /// Global flags before `step exec`.
    pub args: Vec<OsString>,
    /// Variables the worker needs on top of the run's environment.
    pub env: Vec<(&'static str, String)>,
}

impl WorkerCommand {
    /// Workers for the run of `stack` whose state is in `state`. A named
    /// stack is passed by name (the worker resolves its secrets itself);
    /// stores given as flags or variables are passed in the worker's
    /// environment, never on its command line.
    pub fn new(state: &Path, stack: &Stack) -> CliResult<Self> {
        let exe = match std::env::var_os("WEFT_WORKER_EXE") {
            Some(exe) => PathBuf::from(exe),
            None => std::env::current_exe()
                .map_err(|e| CliError::usage(format!("cannot find the weft executable to start workers: {e}")))?,
        };
        let mut args: Vec<OsString> = vec!["--state-dir".into(), state.as_os_str().to_owned()];
        let mut env = Vec::new();
        match &stack.name {
            Some(name) => args.extend(["--stack".into(), name.into()]),
            None => {
                if let Some(db) = &stack.db {
                    env.push(("WEFT_DB", db.clone()));
                }
                if let Some(artifacts) = &stack.artifacts {
                    env.push(("WEFT_ARTIFACTS", artifacts.clone()));
                }
            }
        }
        Ok(Self { exe, args, env })
    }

    /// Everything after the executable, for `job`.
    pub fn args_for(&self, job: &StepJob) -> Vec<OsString> {
        let mut args = self.args.clone();
        args.extend(
            [
                "step".to_string(),
                "exec".to_string(),
                job.step_run_id.clone(),
                "--retries".to_string(),
                job.retry.max.to_string(),
                "--backoff-ms".to_string(),
                job.retry.backoff.as_millis().to_string(),
            ]
            .map(OsString::from),
        );
        args
    }
}

/// Hands each step to `weft step exec` in a child process of this
/// executable, on the same state directory and stack.
#[derive(Debug)]
pub struct ProcessDispatcher(WorkerCommand);

/// How long a cancelled worker has to record its cancellation.
pub const CANCEL_GRACE: Duration = Duration::from_secs(10);

impl ProcessDispatcher {
    async fn run_worker(&self, job: &StepJob, cancel: &Cancel) -> Result<(), String> {
        let worker = &self.0;
        let mut command = tokio::process::Command::new(&worker.exe);
        command
            .args(worker.args_for(job))
            .envs(worker.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start a worker ({}): {e}", worker.exe.display()))?;
        let mut stderr = child.stderr.take();
        let reader = tokio::spawn(async move {
            let mut text = String::new();
            if let Some(stderr) = stderr.as_mut() {
                let _ = stderr.read_to_string(&mut text).await;
            }
            text
        });
        let mut interrupted: Option<tokio::time::Instant> = None;
        let exited = loop {
            tokio::select! {
                exited = child.wait() => break exited,
                _ = tokio::time::sleep(Duration::from_millis(25)) => {}
            }
            match interrupted {
                None if cancel.is_cancelled() => {
                    // Asked to stop: the worker records the cancellation.
                    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
                        // SAFETY: kill(2) on our own child's pid.
                        unsafe { libc::kill(pid, libc::SIGINT) };
                    }
                    interrupted = Some(tokio::time::Instant::now());
                }
                Some(at) if at.elapsed() > CANCEL_GRACE => {
                    let _ = child.start_kill();
                }
                _ => {}
            }
        };
        let said = reader.await.unwrap_or_default();
        let exited = exited.map_err(|e| format!("waiting for the worker: {e}"))?;
        if exited.success() {
            return Ok(());
        }
        let last = said.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        Err(format!("the worker ended with {exited}: {last}"))
    }
}

impl Dispatcher for ProcessDispatcher {
    fn dispatch<'a>(
        &'a self,
        job: &'a StepJob,
        cancel: &'a Cancel,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(self.run_worker(job, cancel))
    }
}
