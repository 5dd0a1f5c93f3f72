//! A fake Kubernetes API server and kubelet for the `kubernetes`
//! orchestrator's tests (no cluster runs on CI's machines).
//!
//! It answers exactly the requests the orchestrator should make: create a
//! Job, watch one Job by name, read one Job, delete one Job, list one Job's
//! pods. Every request is checked (its bearer token, its path and query,
//! its body parsed with the `k8s-openapi` types and checked against what
//! a pod of weft needs); anything else is answered 404 and recorded as a
//! problem the test asserts away. For each Job it runs the pod the way a
//! kubelet would: the container's `weft` command and arguments, its
//! environment (values and `envFrom` Secrets), its `emptyDir` mounted at
//! the container's working directory (a fresh temporary directory), and
//! reports the pod's and the Job's status through the watch. Deleting a
//! Job (foreground) sends its pod SIGTERM, then SIGKILL after the pod's
//! grace period, and the Job goes once its pod has.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// The bearer token of the kubeconfig the tests write.
pub const TOKEN: &str = "weft-test-token-7d1c";

/// One change of a Job, as a watch reports it.
#[derive(Clone, Debug)]
pub struct JobEvent {
    pub version: u64,
    pub namespace: String,
    pub name: String,
    /// ADDED, MODIFIED or DELETED.
    pub kind: &'static str,
    pub job: Job,
}

/// A request the server received: method, path and query.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
}

#[derive(Default)]
struct Inner {
    version: u64,
    made: u64,
    jobs: BTreeMap<(String, String), Job>,
    pods: BTreeMap<(String, String), Pod>,
    /// Every Job as it was created, in order.
    created: Vec<Job>,
    events: Vec<JobEvent>,
    requests: Vec<Seen>,
    /// DELETE requests: (namespace, name, propagation policy).
    deletions: Vec<(String, String, String)>,
    problems: Vec<String>,
    /// The running pods' worker processes, by Job.
    pids: BTreeMap<(String, String), u32>,
    /// How the next kill of a pod is reported (reason).
    kill_reason: BTreeMap<(String, String), String>,
}

/// The fake cluster: the API server's state, shared with its kubelet.
pub struct Cluster {
    pub port: u16,
    weft: PathBuf,
    /// Secrets by (namespace, name): key -> value.
    secrets: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// Steps (the `weft.dev/step` annotation) whose pods stay Pending.
    held: Vec<String>,
    inner: Mutex<Inner>,
    changes: broadcast::Sender<JobEvent>,
}

/// A Secret of the cluster: namespace, name, and its keys and values.
pub type Secret<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// The test's handle: the cluster, and the thread serving it.
pub struct FakeKubernetes {
    pub cluster: Arc<Cluster>,
    _thread: std::thread::JoinHandle<()>,
}

impl FakeKubernetes {
    /// Starts the API server on a free port of 127.0.0.1, in a thread of
    /// its own. Pods run `weft` as the executable `weft`; `secrets` are
    /// the cluster's Secrets; the pods of `held` steps never start.
    pub fn start(weft: PathBuf, secrets: &[Secret<'_>], held: &[&str]) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (changes, _) = broadcast::channel(1024);
        let cluster = Arc::new(Cluster {
            port,
            weft,
            secrets: secrets
                .iter()
                .map(|(ns, name, pairs)| {
                    (
                        (ns.to_string(), name.to_string()),
                        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    )
                })
                .collect(),
            held: held.iter().map(|s| s.to_string()).collect(),
            inner: Mutex::new(Inner::default()),
            changes,
        });
        let served = cluster.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let app = Router::new()
                    .route("/apis/batch/v1/namespaces/{ns}/jobs", get(watch_jobs).post(create_job))
                    .route(
                        "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
                        get(read_job).delete(delete_job),
                    )
                    .route("/api/v1/namespaces/{ns}/pods", get(list_pods))
                    .fallback(unexpected)
                    .layer(axum::middleware::from_fn_with_state(served.clone(), checked))
                    .with_state(served);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Self {
            cluster,
            _thread: thread,
        }
    }

    /// A kubeconfig whose only context, `fake`, is this server.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{}\n\
             users:\n- name: tester\n  user:\n    token: {TOKEN}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n",
            self.cluster.port
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Cluster {
    fn problem(&self, text: String) {
        self.inner.lock().unwrap().problems.push(text);
    }

    /// What the server found wrong in the requests it received.
    pub fn problems(&self) -> Vec<String> {
        self.inner.lock().unwrap().problems.clone()
    }

    /// Every Job as it was created, in order.
    pub fn created(&self) -> Vec<Job> {
        self.inner.lock().unwrap().created.clone()
    }

    /// Every change of every Job, in order.
    pub fn events(&self) -> Vec<JobEvent> {
        self.inner.lock().unwrap().events.clone()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The DELETE requests: (namespace, name, propagation policy).
    pub fn deletions(&self) -> Vec<(String, String, String)> {
        self.inner.lock().unwrap().deletions.clone()
    }

    /// The Jobs that exist now.
    pub fn live_jobs(&self) -> Vec<(String, String)> {
        self.inner.lock().unwrap().jobs.keys().cloned().collect()
    }

    /// The running pod's worker process of the Job of `step_run`, once
    /// there is one: (namespace, job, pid).
    pub fn running(&self, step_run: &str) -> Option<(String, String, u32)> {
        let inner = self.inner.lock().unwrap();
        inner.pids.iter().find_map(|((ns, name), pid)| {
            let job = inner.jobs.get(&(ns.clone(), name.clone()))?;
            let label = job.metadata.labels.as_ref()?.get("weft.dev/step-run")?;
            (label == step_run).then(|| (ns.clone(), name.clone(), *pid))
        })
    }

    /// The exit code of the last pod that ran `step_run`, once it ended.
    pub fn pod_exit(&self, step_run: &str) -> Option<i32> {
        let inner = self.inner.lock().unwrap();
        inner
            .pods
            .values()
            .filter(|pod| {
                pod.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("weft.dev/step-run"))
                    .map(String::as_str)
                    == Some(step_run)
            })
            .filter_map(|pod| {
                let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
                Some(statuses.first()?.state.as_ref()?.terminated.as_ref()?.exit_code)
            })
            .next_back()
    }

    /// Kills the running pod of `step_run` with SIGKILL, reported as
    /// `reason` (e.g. OOMKilled); the pid killed.
    pub fn kill(&self, step_run: &str, reason: &str) -> u32 {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let (ns, name, pid) = loop {
            if let Some(found) = self.running(step_run) {
                break found;
            }
            assert!(std::time::Instant::now() < deadline, "no pod runs step run {step_run}");
            std::thread::sleep(Duration::from_millis(20));
        };
        self.inner
            .lock()
            .unwrap()
            .kill_reason
            .insert((ns, name), reason.to_string());
        // SAFETY: kill(2) on a child process of this test.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        pid
    }

    /// Records a change of a Job and tells the watches.
    fn changed(&self, inner: &mut Inner, namespace: &str, name: &str, kind: &'static str) {
        inner.version += 1;
        let version = inner.version;
        let key = (namespace.to_string(), name.to_string());
        let mut job = match kind {
            "DELETED" => inner.jobs.remove(&key),
            _ => inner.jobs.get(&key).cloned(),
        }
        .expect("a Job that changed");
        job.metadata.resource_version = Some(version.to_string());
        if let Some(kept) = inner.jobs.get_mut(&key) {
            kept.metadata.resource_version = Some(version.to_string());
        }
        let event = JobEvent {
            version,
            namespace: namespace.to_string(),
            name: name.to_string(),
            kind,
            job,
        };
        inner.events.push(event.clone());
        let _ = self.changes.send(event);
    }
}

/// A Kubernetes `Status` answer.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        axum::Json(json!({
            "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16(),
        })),
    )
        .into_response()
}

/// Every request: the bearer token, recorded.
async fn checked(State(cluster): State<Arc<Cluster>>, request: Request, next: axum::middleware::Next) -> Response {
    let seen = Seen {
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
        query: request.uri().query().unwrap_or_default().to_string(),
    };
    cluster.inner.lock().unwrap().requests.push(seen.clone());
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if token != format!("Bearer {TOKEN}") {
        cluster.problem(format!("{} {}: no or a wrong bearer token", seen.method, seen.path));
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    next.run(request).await
}

async fn unexpected(State(cluster): State<Arc<Cluster>>, request: Request) -> Response {
    cluster.problem(format!(
        "unexpected request {} {}?{}",
        request.method(),
        request.uri().path(),
        request.uri().query().unwrap_or_default()
    ));
    status(StatusCode::NOT_FOUND, "NotFound", "not served by the fake API server")
}

/// What a Job of weft must be, beyond parsing as a `batch/v1` Job.
fn check_job(job: &Job, namespace: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut need = |ok: bool, what: &str| {
        if !ok {
            problems.push(format!("Job {:?}: {what}", job.metadata.generate_name));
        }
    };
    let meta = &job.metadata;
    need(
        meta.name.is_none() && meta.generate_name.is_some(),
        "named by generateName",
    );
    let prefix = meta.generate_name.clone().unwrap_or_default();
    need(
        prefix.len() <= 58
            && prefix.starts_with("weft-")
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "a DNS-1123 name prefix",
    );
    need(
        meta.namespace.as_deref() == Some(namespace),
        "its namespace is the path's",
    );
    let labels = meta.labels.clone().unwrap_or_default();
    need(
        labels.get("app.kubernetes.io/managed-by").map(String::as_str) == Some("weft"),
        "labelled managed-by weft",
    );
    need(labels.contains_key("weft.dev/step-run"), "labelled with its step run");
    let Some(spec) = &job.spec else {
        need(false, "has a spec");
        return problems;
    };
    need(spec.backoff_limit == Some(0), "backoffLimit 0 (weft retries)");
    need(
        spec.template.metadata.as_ref().and_then(|m| m.labels.clone()) == Some(labels),
        "pods carry its labels",
    );
    let Some(pod) = &spec.template.spec else {
        need(false, "has a pod template");
        return problems;
    };
    need(pod.restart_policy.as_deref() == Some("Never"), "restartPolicy Never");
    need(
        pod.automount_service_account_token == Some(false),
        "no API token in the pod",
    );
    need(pod.containers.len() == 1, "one container");
    let Some(container) = pod.containers.first() else {
        return problems;
    };
    need(
        container.command.as_deref() == Some(&["weft".to_string()][..]),
        "command weft",
    );
    let args = container.args.clone().unwrap_or_default();
    need(
        args.len() >= 5 && args[2] == "step" && args[3] == "exec",
        "args step exec ID",
    );
    let work = container.working_dir.clone().unwrap_or_default();
    let mounted = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == work)
        .map(|m| m.name.clone());
    let empty_dir = pod
        .volumes
        .iter()
        .flatten()
        .any(|v| Some(&v.name) == mounted.as_ref() && v.empty_dir.is_some());
    need(empty_dir, "its working directory is an emptyDir");
    let security = container.security_context.clone().unwrap_or_default();
    need(
        security.allow_privilege_escalation == Some(false) && security.read_only_root_filesystem == Some(true),
        "no privilege escalation, a read-only root",
    );
    for var in container.env.iter().flatten() {
        need(
            var.value_from.is_none(),
            "plain environment values (secrets come by envFrom)",
        );
    }
    problems
}

async fn create_job(State(cluster): State<Arc<Cluster>>, Path(ns): Path<String>, body: Bytes) -> Response {
    // The body must be a batch/v1 Job (k8s-openapi checks apiVersion and kind).
    let mut job: Job = match serde_json::from_slice(&body) {
        Ok(job) => job,
        Err(e) => {
            cluster.problem(format!("POST jobs: not a batch/v1 Job: {e}"));
            return status(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string());
        }
    };
    for problem in check_job(&job, &ns) {
        cluster.problem(problem);
    }
    let name = {
        let mut inner = cluster.inner.lock().unwrap();
        inner.made += 1;
        let name = format!(
            "{}{:05}",
            job.metadata.generate_name.clone().unwrap_or_default(),
            inner.made
        );
        job.metadata.name = Some(name.clone());
        job.metadata.uid = Some(format!("uid-{}", inner.made));
        job.metadata.creation_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        inner.created.push(job.clone());
        inner.jobs.insert((ns.clone(), name.clone()), job.clone());
        cluster.changed(&mut inner, &ns, &name, "ADDED");
        name
    };
    let step = job
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("weft.dev/step"))
        .cloned()
        .unwrap_or_default();
    if !cluster.held.contains(&step) {
        tokio::spawn(kubelet(cluster.clone(), ns.clone(), name.clone()));
    }
    let made = cluster.inner.lock().unwrap().jobs.get(&(ns, name)).cloned();
    (StatusCode::CREATED, axum::Json(made)).into_response()
}

async fn read_job(State(cluster): State<Arc<Cluster>>, Path((ns, name)): Path<(String, String)>) -> Response {
    match cluster.inner.lock().unwrap().jobs.get(&(ns, name.clone())) {
        Some(job) => axum::Json(job.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("jobs.batch \"{name}\" not found"),
        ),
    }
}

/// `GET …/jobs?watch=true&fieldSelector=metadata.name=X&resourceVersion=V`:
/// the Job's changes after V, as they come, until `timeoutSeconds`.
async fn watch_jobs(
    State(cluster): State<Arc<Cluster>>,
    Path(ns): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if query.get("watch").map(String::as_str) != Some("true") {
        cluster.problem(format!("GET jobs without watch=true: {query:?} (weft lists no Jobs)"));
        return status(StatusCode::BAD_REQUEST, "BadRequest", "only watches are served");
    }
    let Some(name) = query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(String::from)
    else {
        cluster.problem(format!("a watch of every Job in {ns}: {query:?}"));
        return status(StatusCode::BAD_REQUEST, "BadRequest", "watch one Job by name");
    };
    let since: u64 = match query.get("resourceVersion").map(|v| v.parse()) {
        Some(Ok(v)) => v,
        _ => {
            cluster.problem(format!("a watch of {name} from no resource version: {query:?}"));
            0
        }
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(290u64);
    if timeout > 295 {
        cluster.problem(format!("a watch of {timeout} s"));
    }
    let mut changes = cluster.changes.subscribe();
    let past: Vec<JobEvent> = cluster
        .inner
        .lock()
        .unwrap()
        .events
        .iter()
        .filter(|e| e.namespace == ns && e.name == name && e.version > since)
        .cloned()
        .collect();
    let (lines, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let line = |e: &JobEvent| {
            let mut text = serde_json::to_vec(&json!({ "type": e.kind, "object": e.job })).unwrap();
            text.push(b'\n');
            Ok(Bytes::from(text))
        };
        let mut last = since;
        for event in &past {
            last = event.version;
            if lines.send(line(event)).await.is_err() {
                return;
            }
        }
        let end = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(end);
        loop {
            tokio::select! {
                _ = &mut end => return,
                change = changes.recv() => match change {
                    Ok(event) if event.namespace == ns && event.name == name && event.version > last => {
                        last = event.version;
                        if lines.send(line(&event)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                },
            }
        }
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    Response::builder()
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

async fn delete_job(
    State(cluster): State<Arc<Cluster>>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let options: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let policy = options["propagationPolicy"].as_str().unwrap_or("").to_string();
    let mut inner = cluster.inner.lock().unwrap();
    inner.deletions.push((ns.clone(), name.clone(), policy.clone()));
    if policy != "Foreground" {
        inner.problems.push(format!(
            "DELETE {ns}/{name} with propagationPolicy {policy:?}, not Foreground"
        ));
    }
    let key = (ns.clone(), name.clone());
    let Some(job) = inner.jobs.get_mut(&key) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("jobs.batch \"{name}\" not found"),
        );
    };
    job.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    job.metadata.finalizers = Some(vec!["foregroundDeletion".into()]);
    let answer = job.clone();
    match inner.pids.get(&key).copied() {
        // The pod goes first: SIGTERM, SIGKILL after its grace period;
        // the kubelet removes the Job once the worker has exited.
        Some(pid) => {
            cluster.changed(&mut inner, &ns, &name, "MODIFIED");
            let grace = answer
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.termination_grace_period_seconds)
                .unwrap_or(30) as u64;
            // SAFETY: kill(2) on a child process of this test.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(grace)).await;
                // SAFETY: as above; the pid may have exited (ESRCH).
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            });
        }
        // No pod running: the Job goes at once.
        None => cluster.changed(&mut inner, &ns, &name, "DELETED"),
    }
    axum::Json(answer).into_response()
}

/// `GET …/pods?labelSelector=batch.kubernetes.io/job-name=X`.
async fn list_pods(
    State(cluster): State<Arc<Cluster>>,
    Path(ns): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(job) = query
        .get("labelSelector")
        .and_then(|s| s.strip_prefix("batch.kubernetes.io/job-name="))
    else {
        cluster.problem(format!("a list of pods not by their Job: {query:?}"));
        return status(StatusCode::BAD_REQUEST, "BadRequest", "list one Job's pods");
    };
    let inner = cluster.inner.lock().unwrap();
    let items: Vec<&Pod> = inner
        .pods
        .iter()
        .filter(|((pod_ns, _), pod)| {
            *pod_ns == ns
                && pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("batch.kubernetes.io/job-name"))
                    == Some(&job.to_string())
        })
        .map(|(_, pod)| pod)
        .collect();
    axum::Json(json!({
        "apiVersion": "v1", "kind": "PodList",
        "metadata": { "resourceVersion": inner.version.to_string() },
        "items": items,
    }))
    .into_response()
}

/// Runs the pod of Job `ns/name` as a kubelet would, and reports it.
async fn kubelet(cluster: Arc<Cluster>, ns: String, name: String) {
    let job = match cluster.inner.lock().unwrap().jobs.get(&(ns.clone(), name.clone())) {
        Some(job) => job.clone(),
        None => return,
    };
    let template = job.spec.clone().unwrap_or_default().template;
    let pod_spec: PodSpec = template.spec.clone().unwrap_or_default();
    let Some(container) = pod_spec.containers.first().cloned() else {
        return;
    };
    // The emptyDir at the working directory: a fresh directory, which
    // every path under the mount stands for.
    let volume = tempfile::tempdir().unwrap();
    let mount = container.working_dir.clone().unwrap_or_default();
    let mapped = |value: &str| match value.strip_prefix(&mount) {
        Some(rest) if !mount.is_empty() => format!("{}{rest}", volume.path().display()),
        _ => value.to_string(),
    };
    let mut command = tokio::process::Command::new(&cluster.weft);
    command
        .args(container.args.clone().unwrap_or_default())
        .current_dir(volume.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for source in container.env_from.iter().flatten() {
        let Some(secret) = &source.secret_ref else { continue };
        match cluster.secrets.get(&(ns.clone(), secret.name.clone())) {
            Some(pairs) => {
                command.envs(pairs);
            }
            None => cluster.problem(format!("pod of {name}: no Secret {ns}/{}", secret.name)),
        }
    }
    for var in container.env.iter().flatten() {
        command.env(&var.name, mapped(var.value.as_deref().unwrap_or_default()));
    }
    let log = volume.path().join("container.log");
    let out = std::fs::File::create(&log).unwrap();
    command
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);

    let pod_name = format!("{name}-pod");
    let mut labels = template.metadata.clone().unwrap_or_default().labels.unwrap_or_default();
    labels.insert("batch.kubernetes.io/job-name".into(), name.clone());
    labels.insert("job-name".into(), name.clone());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            cluster.problem(format!("pod of {name}: cannot start weft: {e}"));
            return;
        }
    };
    {
        let mut inner = cluster.inner.lock().unwrap();
        if !inner.jobs.contains_key(&(ns.clone(), name.clone())) {
            // Deleted while its pod was being made.
            let _ = child.start_kill();
            return;
        }
        inner.pids.insert((ns.clone(), name.clone()), child.id().unwrap_or(0));
        inner.pods.insert(
            (ns.clone(), pod_name.clone()),
            Pod {
                metadata: ObjectMeta {
                    name: Some(pod_name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                },
                spec: Some(pod_spec.clone()),
                status: Some(PodStatus {
                    phase: Some("Running".into()),
                    ..Default::default()
                }),
            },
        );
        if let Some(job) = inner.jobs.get_mut(&(ns.clone(), name.clone())) {
            job.status = Some(JobStatus {
                active: Some(1),
                start_time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
                ..Default::default()
            });
        }
        cluster.changed(&mut inner, &ns, &name, "MODIFIED");
    }
    let exit = child.wait().await.unwrap();
    let code = exit
        .code()
        .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&exit).unwrap_or(0));
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    let mut inner = cluster.inner.lock().unwrap();
    let key = (ns.clone(), name.clone());
    inner.pids.remove(&key);
    let killed_as = inner.kill_reason.remove(&key);
    let reason = match (&killed_as, code) {
        (Some(reason), _) => reason.clone(),
        (None, 0) => "Completed".into(),
        (None, _) => "Error".into(),
    };
    // FallbackToLogsOnError: a failed container's last lines.
    let message = (code != 0).then(|| {
        let lines: Vec<&str> = said.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    });
    if let Some(pod) = inner.pods.get_mut(&(ns.clone(), pod_name)) {
        pod.status = Some(PodStatus {
            phase: Some(if code == 0 { "Succeeded" } else { "Failed" }.into()),
            container_statuses: Some(vec![ContainerStatus {
                name: container.name.clone(),
                image: container.image.clone().unwrap_or_default(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: code,
                        reason: Some(reason),
                        message,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        });
    }
    let deleting = inner
        .jobs
        .get(&key)
        .is_some_and(|j| j.metadata.deletion_timestamp.is_some());
    if deleting {
        cluster.changed(&mut inner, &ns, &name, "DELETED");
        return;
    }
    let condition = |type_: &str, reason: &str, message: &str| JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        ..Default::default()
    };
    if let Some(job) = inner.jobs.get_mut(&key) {
        let mut status = job.status.clone().unwrap_or_default();
        status.active = Some(0);
        if code == 0 {
            status.succeeded = Some(1);
            status.conditions = Some(vec![
                condition(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ),
                condition(
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ),
            ]);
        } else {
            status.failed = Some(1);
            status.conditions = Some(vec![
                condition(
                    "FailureTarget",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                ),
                condition(
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                ),
            ]);
        }
        job.status = Some(status);
    }
    cluster.changed(&mut inner, &ns, &name, "MODIFIED");
    drop(inner);
    drop(volume);
}
