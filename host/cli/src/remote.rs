//! `weft run --server URL`: the run executes here, and is sent to a
//! `weft server` as it goes (when it starts, as steps finish, when it ends),
//! so it shows there live with its artifacts, lineage and tracking runs.
//!
//! Offline first: a run never fails because the server is away. A run
//! that could not be sent waits in the [`Outbox`] (a file per run under
//! the state directory), and `weft push` or the next `weft run --server`
//! sends it. Sending is idempotent (the server keeps a run by its id and
//! bytes by their digest), so a push cut short at any point, even by
//! `kill -9`, is finished by the next one with nothing lost or doubled:
//! a run leaves the outbox only once the server has accepted it.
//!
//! Sending a run uploads the bytes of its artifacts and the components of
//! its steps that the server lacks (each checked there against its digest),
//! then the run as one document. Runs it
//! points into (the sources of cached steps, producers of its inputs) are
//! sent first when the server does not have them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use weft_artifacts::{ArtifactKind, ArtifactStore};
use weft_store::Store;

use crate::context::{CliError, CliResult};
use crate::exit;

/// A `weft server` runs are sent to.
#[derive(Clone)]
pub struct Remote {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
    /// Digests the server is known to hold.
    present: Arc<Mutex<HashSet<String>>>,
    /// Blobs uploaded by this process, and their bytes.
    uploaded: Arc<(AtomicU64, AtomicU64)>,
    /// Whether the server has said this client may write.
    writable: Arc<AtomicBool>,
}

/// Whether a server answered [`Remote::connect`].
pub enum Reach {
    Online,
    /// Why it could not be reached (connection refused, timeout, 5xx).
    Offline(String),
}

/// Whether a failure to send is worth retrying later as it is (the
/// server was away) or needs the user (the server refused: 4xx).
pub(crate) fn is_refusal(error: &str) -> bool {
    error
        .split("HTTP ")
        .nth(1)
        .and_then(|rest| rest.get(..3))
        .is_some_and(|code| code.starts_with('4'))
}

fn remote_error(message: impl std::fmt::Display) -> CliError {
    CliError {
        code: exit::USAGE,
        message: message.to_string(),
    }
}

/// What a failed request says, for messages.
fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, response) => {
            let body = response.into_string().unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or(body);
            format!("HTTP {code}: {message}")
        }
        other => other.to_string(),
    }
}

impl Remote {
    /// Checks the URL and whether a weft server answers there: an
    /// unreachable server is [`Reach::Offline`], something else answering
    /// is an error.
    pub async fn connect(url: &str, token: Option<String>) -> CliResult<(Self, Reach)> {
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(remote_error(format!(
                "--server {url}: give the server's http:// or https:// address"
            )));
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .build();
        let remote = Remote {
            base,
            token,
            agent,
            present: Arc::default(),
            uploaded: Arc::default(),
            writable: Arc::default(),
        };
        let probe = remote.clone();
        let answer = blocking(
            move || match probe.agent.get(&format!("{}/version", probe.base)).call() {
                Ok(response) => Ok(Ok(response.into_json::<serde_json::Value>().unwrap_or_default())),
                Err(ureq::Error::Status(code, _)) if code < 500 => Ok(Ok(serde_json::Value::Null)),
                Err(e) => Ok(Err(describe(e))),
            },
        )
        .await
        .map_err(remote_error)?;
        match answer {
            Err(why) => Ok((remote, Reach::Offline(why))),
            Ok(version) if version["name"] == "weft" => Ok((remote, Reach::Online)),
            Ok(_) => Err(remote_error(format!("{url} answers, but is not a weft server"))),
        }
    }

    /// (blobs, bytes) uploaded so far.
    pub fn uploaded(&self) -> (u64, u64) {
        (
            self.uploaded.0.load(Ordering::Relaxed),
            self.uploaded.1.load(Ordering::Relaxed),
        )
    }

    /// The server's address.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let request = self.agent.request(method, &format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// Sends a run (and, first, the runs it depends on that the server
    /// lacks).
    pub async fn send_run(&self, store: &Store, artifacts: &ArtifactStore, run_id: &str) -> Result<(), String> {
        self.check_writable().await?;
        let mut sent = HashSet::new();
        self.send_with_dependencies(store, artifacts, run_id.to_string(), &mut sent)
            .await
    }

    fn send_with_dependencies<'a>(
        &'a self,
        store: &'a Store,
        artifacts: &'a ArtifactStore,
        run_id: String,
        sent: &'a mut HashSet<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            sent.insert(run_id.clone());
            let export = store.export_run(&run_id).await.map_err(|e| e.to_string())?;
            for dep in &export.depends_on {
                if !sent.contains(dep) && !self.has_run(dep).await? {
                    self.send_with_dependencies(store, artifacts, dep.clone(), sent).await?;
                }
            }
            for artifact in &export.artifacts {
                self.upload(artifacts, &artifact.digest, &artifact.kind).await?;
            }
            // The archived components, so the server can verify the run
            // (an older run may predate archiving: it goes without).
            let components: HashSet<&str> = export
                .steps
                .iter()
                .filter_map(|s| s.step.component_digest.as_deref())
                .collect();
            for digest in components {
                if artifacts.contains(digest, ArtifactKind::File).await.unwrap_or(false) {
                    self.upload(artifacts, digest, "file").await?;
                }
            }
            let body = serde_json::to_vec(&export).map_err(|e| e.to_string())?;
            let remote = self.clone();
            blocking(move || {
                remote
                    .request("POST", "/api/v1/sync/runs")
                    .set("Content-Type", "application/json")
                    .send_bytes(&body)
                    .map(|_| ())
                    .map_err(describe)
            })
            .await
            .map_err(|e| format!("sending run {run_id}: {e}"))
        })
    }

    /// Asks the server, with a request that carries no bytes, whether this
    /// client may write. A server that refuses a write may answer before
    /// it reads the body, and the client, still streaming a blob, then
    /// sees a broken pipe instead of the refusal: asking first turns a
    /// missing or wrong token into its 401 or 403 every time.
    async fn check_writable(&self) -> Result<(), String> {
        if self.writable.load(Ordering::Relaxed) {
            return Ok(());
        }
        let remote = self.clone();
        blocking(move || {
            match remote
                .request("POST", "/api/v1/sync/access")
                .set("Content-Type", "application/json")
                .send_string("{}")
            {
                // A server older than this check takes writes as before.
                Ok(_) | Err(ureq::Error::Status(404 | 405, _)) => Ok(()),
                Err(e) => Err(describe(e)),
            }
        })
        .await?;
        self.writable.store(true, Ordering::Relaxed);
        Ok(())
    }

    async fn has_run(&self, run_id: &str) -> Result<bool, String> {
        self.found("GET", format!("/api/v1/runs/{run_id}")).await
    }

    /// Whether the server answers 200 (true) or 404 (false) at `path`.
    async fn found(&self, method: &'static str, path: String) -> Result<bool, String> {
        let remote = self.clone();
        blocking(move || match remote.request(method, &path).call() {
            Ok(_) => Ok(true),
            Err(ureq::Error::Status(404, _)) => Ok(false),
            Err(e) => Err(describe(e)),
        })
        .await
    }

    /// Uploads an artifact's bytes unless the server holds them.
    async fn upload(&self, artifacts: &ArtifactStore, digest: &str, kind: &str) -> Result<(), String> {
        if self.present.lock().map(|p| p.contains(digest)).unwrap_or(false) {
            return Ok(());
        }
        match ArtifactKind::parse(kind) {
            Some(ArtifactKind::File) => self.upload_blob(artifacts, digest).await?,
            Some(ArtifactKind::Dir) => {
                if !self.exists("trees", digest).await? {
                    let tree = artifacts.tree(digest).await.map_err(|e| e.to_string())?;
                    for entry in &tree.entries {
                        self.upload_blob(artifacts, &entry.digest).await?;
                    }
                    self.put_bytes(format!("/api/v1/sync/trees/{digest}"), tree.canonical_bytes())
                        .await
                        .map_err(|e| format!("uploading directory {digest}: {e}"))?;
                }
            }
            None => return Err(format!("artifact {digest} has unknown kind '{kind}'")),
        }
        if let Ok(mut present) = self.present.lock() {
            present.insert(digest.to_string());
        }
        Ok(())
    }

    /// PUTs bytes at `path`.
    async fn put_bytes(&self, path: String, bytes: Vec<u8>) -> Result<(), String> {
        let remote = self.clone();
        blocking(move || {
            remote
                .request("PUT", &path)
                .send_bytes(&bytes)
                .map(|_| ())
                .map_err(describe)
        })
        .await
    }

    async fn exists(&self, what: &str, digest: &str) -> Result<bool, String> {
        self.found("HEAD", format!("/api/v1/sync/{what}/{digest}")).await
    }

    async fn upload_blob(&self, artifacts: &ArtifactStore, digest: &str) -> Result<(), String> {
        if self.present.lock().map(|p| p.contains(digest)).unwrap_or(false) || self.exists("blobs", digest).await? {
            return Ok(());
        }
        let remote = self.clone();
        let path = format!("/api/v1/sync/blobs/{digest}");
        let result = match artifacts.local_blob_path(digest) {
            // Streamed from disk: blobs can be large.
            Some(file) => {
                blocking(move || {
                    let reader = std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?;
                    let size = reader.metadata().map(|m| m.len()).unwrap_or(0);
                    remote.request("PUT", &path).send(reader).map_err(describe)?;
                    Ok(size)
                })
                .await
            }
            None => {
                let bytes = artifacts.get_bytes(digest).await.map_err(|e| e.to_string())?;
                let size = bytes.len() as u64;
                self.put_bytes(path, bytes.to_vec()).await.map(|()| size)
            }
        };
        let size = result.map_err(|e| format!("uploading blob {digest}: {e}"))?;
        self.uploaded.0.fetch_add(1, Ordering::Relaxed);
        self.uploaded.1.fetch_add(size, Ordering::Relaxed);
        if let Ok(mut present) = self.present.lock() {
            present.insert(digest.to_string());
        }
        Ok(())
    }
}

/// Runs blocking HTTP off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("request task failed: {e}"))?
}

/// Sends a run to the server while it goes: when it starts, then at most
/// once a second while steps finish. Failures here are warnings: the run
/// goes on, and the final send (after the run) reports for good.
pub struct Forwarder {
    /// Run events; `None` asks the forwarder to stop.
    pub events: tokio::sync::mpsc::UnboundedSender<Option<weft_pipeline::Event>>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    pub fn start(remote: Remote, store: Store, artifacts: ArtifactStore) -> Self {
        let (events, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<weft_pipeline::Event>>();
        let task = tokio::spawn(async move {
            let mut run_id: Option<String> = None;
            // When steps finished since the last send: when to send next.
            let mut due: Option<tokio::time::Instant> = None;
            let mut warned = false;
            loop {
                let wake = due.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    event = rx.recv() => match event {
                        Some(Some(weft_pipeline::Event::RunStarted { run_id: id, .. })) => {
                            send_or_warn(&remote, &store, &artifacts, &id, &mut warned).await;
                            run_id = Some(id);
                        }
                        Some(Some(weft_pipeline::Event::StepFinished { .. })) => {
                            due.get_or_insert_with(|| tokio::time::Instant::now() + Duration::from_secs(1));
                        }
                        Some(Some(_)) => {}
                        Some(None) | None => break,
                    },
                    _ = tokio::time::sleep_until(wake), if due.is_some() => {
                        if let Some(id) = &run_id {
                            send_or_warn(&remote, &store, &artifacts, id, &mut warned).await;
                        }
                        due = None;
                    }
                }
            }
        });
        Forwarder { events, task }
    }

    /// Stops forwarding (the caller sends the finished run itself).
    pub async fn finish(self) {
        let _ = self.events.send(None);
        let _ = self.task.await;
    }
}

async fn send_or_warn(remote: &Remote, store: &Store, artifacts: &ArtifactStore, run_id: &str, warned: &mut bool) {
    if let Err(e) = remote.send_run(store, artifacts, run_id).await {
        if !*warned {
            eprintln!("warning: could not send the run to {} yet: {e}", remote.url());
            *warned = true;
        }
    }
}

/// Runs waiting to be sent to a server: one JSON file per run in
/// `<state>/outbox`, written whole (aside, then renamed) and removed once
/// the server has accepted the run.
pub struct Outbox {
    dir: PathBuf,
}

/// A run waiting in the [`Outbox`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queued {
    pub run_id: String,
    /// The server it is for.
    pub server: String,
    /// When it was queued (ms since the epoch).
    pub queued_at: i64,
    /// The last reason it could not be sent.
    pub error: String,
}

impl Outbox {
    pub fn new(state: &Path) -> Self {
        Self {
            dir: state.join("outbox"),
        }
    }

    /// A run id names a file here: letters, digits and dashes only.
    fn path(&self, run_id: &str) -> Result<PathBuf, String> {
        if run_id.is_empty() || !run_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("'{run_id}' is not a run id"));
        }
        Ok(self.dir.join(format!("{run_id}.json")))
    }

    /// Queues `run_id` for `server` (again: the newest reason wins).
    pub fn queue(&self, run_id: &str, server: &str, error: &str) -> Result<(), String> {
        let path = self.path(run_id)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        let entry = Queued {
            run_id: run_id.to_string(),
            server: server.to_string(),
            queued_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            error: error.to_string(),
        };
        let bytes = serde_json::to_vec_pretty(&entry).map_err(|e| e.to_string())?;
        let aside = tempfile::NamedTempFile::new_in(&self.dir)
            .map_err(|e| format!("writing in {}: {e}", self.dir.display()))?;
        std::fs::write(aside.path(), bytes).map_err(|e| format!("writing {}: {e}", aside.path().display()))?;
        aside
            .as_file()
            .sync_all()
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        aside
            .persist(&path)
            .map_err(|e| format!("writing {}: {}", path.display(), e.error))?;
        Ok(())
    }

    /// The queued runs (for `server`, or all), oldest first. An entry that
    /// does not parse is reported, not dropped.
    pub fn list(&self, server: Option<&str>) -> Result<Vec<Queued>, String> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("reading {}: {e}", self.dir.display())),
        };
        let mut queued = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue; // a write cut short, or not ours
            }
            let text = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let q: Queued = serde_json::from_slice(&text)
                .map_err(|e| format!("{} is damaged ({e}); remove it to go on", path.display()))?;
            if server.is_none_or(|s| same_server(s, &q.server)) {
                queued.push(q);
            }
        }
        queued.sort_by(|a, b| (a.queued_at, &a.run_id).cmp(&(b.queued_at, &b.run_id)));
        Ok(queued)
    }

    /// The run was accepted: it leaves the outbox.
    pub fn done(&self, run_id: &str) -> Result<(), String> {
        let path = self.path(run_id)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("removing {}: {e}", path.display())),
        }
    }
}

fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// What [`push`] did.
#[derive(Debug, Default, Serialize)]
pub struct Pushed {
    pub sent: Vec<String>,
    /// (run id, why) of the runs still queued.
    pub failed: Vec<(String, String)>,
    pub blobs: u64,
    pub bytes: u64,
}

/// Sends `queued` to `remote`, in order, each run leaving the outbox once
/// accepted. Stops at the first failure that is not the server refusing
/// one run (it is away: the rest would fail the same way).
pub async fn push(
    remote: &Remote,
    store: &Store,
    artifacts: &ArtifactStore,
    outbox: &Outbox,
    queued: &[Queued],
) -> Result<Pushed, String> {
    let mut pushed = Pushed::default();
    for (i, q) in queued.iter().enumerate() {
        match remote.send_run(store, artifacts, &q.run_id).await {
            Ok(()) => {
                outbox.done(&q.run_id)?;
                pushed.sent.push(q.run_id.clone());
            }
            Err(e) => {
                outbox.queue(&q.run_id, &q.server, &e)?;
                let refused = is_refusal(&e);
                pushed.failed.push((q.run_id.clone(), e));
                if !refused {
                    pushed.failed.extend(
                        queued[i + 1..]
                            .iter()
                            .map(|r| (r.run_id.clone(), "not tried".to_string())),
                    );
                    break;
                }
            }
        }
    }
    (pushed.blobs, pushed.bytes) = remote.uploaded();
    Ok(pushed)
}
