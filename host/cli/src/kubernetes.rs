//! The `kubernetes` orchestrator: each step that is not a cache hit becomes
//! one Kubernetes Job whose single pod runs `weft step exec` in the stack's
//! image, with the step's resources, namespace, service account, node
//! selector and tolerations. The run follows the Job through a watch,
//! hands a Job that failed without recording the step (its pod killed,
//! evicted, out of memory) to the step's retry policy, and cancels by
//! deleting the Job (foreground: it is gone once its pod is).
//!
//! A pod opens the stack's stores itself, so they must be reachable from
//! the cluster (PostgreSQL and S3-compatible storage): it gets their URLs
//! as the stack writes them, with `${secret:NAME}` references unresolved,
//! and the values from the Kubernetes Secret the stack names
//! (`WEFT_SECRET_<NAME>`, `AWS_*` keys), never in the Job itself.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, Pod, PodSecurityContext, PodSpec,
    PodTemplateSpec, ResourceRequirements, SeccompProfile, SecretEnvSource, SecurityContext, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy, WatchEvent, WatchParams};
use serde::{Deserialize, Serialize};
use weft_pipeline::{is_dns_label, is_dns_subdomain, Dispatcher, StepJob};
use weft_runtime::Cancel;

use crate::worker::CANCEL_GRACE;

/// The orchestrator's name in a stack and in `[steps.X] orchestrator`.
pub const KUBERNETES: &str = "kubernetes";

/// Where the pod's state (compiled components, sandboxes) lives: an
/// `emptyDir` volume, the container's working directory.
pub const WORK_DIR: &str = "/var/lib/weft";

/// The label every Job and pod weft creates carries, and its value.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "weft");

/// The label naming the step run a Job executes.
pub const STEP_RUN_LABEL: &str = "weft.dev/step-run";

/// The annotation naming the step (step names need not be label values).
pub const STEP_ANNOTATION: &str = "weft.dev/step";

/// How long a finished Job is kept for `kubectl logs` before Kubernetes
/// removes it.
const KEEP_FINISHED: i32 = 3600;

/// The longest watch request (the API server ends watches after 5 minutes
/// anyway); the watch is then made again from the last version seen.
const WATCH_SECONDS: u32 = 290;

/// How many times in a row a watch may fail (API server unreachable)
/// before the Job is given up as lost.
const WATCH_FAILURES: u32 = 10;

/// A stack's Kubernetes settings (`weft stack create --k8s-image …`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSettings {
    /// The image the pods run: one holding the weft executable on its
    /// `PATH` (see the README's deployment guide).
    pub image: String,
    /// The namespace of the Jobs, unless a step names another.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The service account the pods run as, unless a step names another
    /// (none: the namespace's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// A Kubernetes Secret whose keys become the worker's environment:
    /// `WEFT_SECRET_<NAME>` for each `${secret:NAME}` in the stack's URLs,
    /// `AWS_ACCESS_KEY_ID` and the like for the artifact store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_secret: Option<String>,
    /// The kubeconfig context to use (none: the current one; inside a
    /// cluster, the pod's own service account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

pub(crate) fn default_namespace() -> String {
    "default".into()
}

impl KubernetesSettings {
    /// Checks every value; the error names the flag and what it takes.
    pub fn validate(&self) -> Result<(), String> {
        if self.image.is_empty()
            || self.image.len() > 512
            || self.image.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("--k8s-image: an image reference, e.g. registry.example.com/weft:0.1".into());
        }
        if !is_dns_label(&self.namespace) {
            return Err(format!(
                "--k8s-namespace {}: lowercase letters, digits and '-' (at most 63)",
                self.namespace
            ));
        }
        for (flag, value) in [
            ("--k8s-service-account", &self.service_account),
            ("--k8s-env-secret", &self.env_secret),
        ] {
            if let Some(value) = value {
                if !is_dns_subdomain(value) {
                    return Err(format!(
                        "{flag} {value}: a Kubernetes name (lowercase letters, digits, '-' and '.')"
                    ));
                }
            }
        }
        if let Some(context) = &self.context {
            if context.is_empty() || context.len() > 253 || context.chars().any(char::is_control) {
                return Err(format!("--k8s-context {context:?}: a context of your kubeconfig"));
            }
        }
        Ok(())
    }
}

/// Hands each step to a Kubernetes Job and follows it.
pub struct KubernetesDispatcher {
    settings: KubernetesSettings,
    /// The stores' URLs as the stack writes them (secret references
    /// unresolved).
    db: String,
    artifacts: String,
    /// Made on first use: a run that sends no step here needs no
    /// kubeconfig.
    client: tokio::sync::OnceCell<kube::Client>,
}

impl std::fmt::Debug for KubernetesDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesDispatcher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The part of a Job's name that comes from its step: DNS-1123, short
/// enough for Kubernetes' random suffix.
fn name_prefix(step: &str) -> String {
    let mut base: String = step
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .take(40)
        .collect();
    base = base.trim_matches('-').to_string();
    if base.is_empty() {
        "weft-step-".into()
    } else {
        format!("weft-{base}-")
    }
}

fn quantity(text: impl Into<String>) -> Quantity {
    Quantity(text.into())
}

impl KubernetesDispatcher {
    /// A dispatcher for a stack whose stores are `db` and `artifacts` as
    /// written. A URL with a password in it is refused: the Job would
    /// carry it in plain text.
    pub fn new(settings: KubernetesSettings, db: Option<&str>, artifacts: Option<&str>) -> Result<Self, String> {
        settings.validate()?;
        let (Some(db), Some(artifacts)) = (db, artifacts) else {
            return Err(
                "a stack whose steps run on Kubernetes names its stores (--db postgres://… and \
                 --artifacts s3://…, reachable from the cluster): the default, files in the project's \
                 .weft, is not where a pod can reach it"
                    .into(),
            );
        };
        if crate::stacks::url_password(db).is_some_and(|p| !p.contains(weft_secrets::REFERENCE_START)) {
            return Err(
                "the metadata store URL holds a password, which the Job would carry in plain text: \
                 store it as a secret (`weft secret set NAME`), write ${secret:NAME} in the URL, and put \
                 WEFT_SECRET_NAME in the stack's --k8s-env-secret"
                    .into(),
            );
        }
        Ok(Self {
            settings,
            db: db.to_string(),
            artifacts: artifacts.to_string(),
            client: tokio::sync::OnceCell::new(),
        })
    }

    async fn client(&self) -> Result<&kube::Client, String> {
        self.client
            .get_or_try_init(|| async {
                let config = match &self.settings.context {
                    Some(context) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
                        context: Some(context.clone()),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| format!("reading the kubeconfig (context {context}): {e}"))?,
                    None => kube::Config::infer().await.map_err(|e| {
                        format!("no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): {e}")
                    })?,
                };
                kube::Client::try_from(config).map_err(|e| format!("connecting to Kubernetes: {e}"))
            })
            .await
    }

    /// The namespace `job`'s Job goes to.
    fn namespace<'a>(&'a self, job: &'a StepJob) -> &'a str {
        job.resources.namespace.as_deref().unwrap_or(&self.settings.namespace)
    }

    /// The Job that runs `job`: one pod, never restarted (the run applies
    /// the step's retry policy), the worker's state on an `emptyDir`, no
    /// privileges, no API token, and the step's resources.
    pub fn job_for(&self, job: &StepJob) -> Job {
        let resources = &job.resources;
        let labels: BTreeMap<String, String> = [
            (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
            (STEP_RUN_LABEL.to_string(), job.step_run_id.clone()),
        ]
        .into();
        let annotations: BTreeMap<String, String> = [(STEP_ANNOTATION.to_string(), job.step.clone())].into();

        // Requests equal limits: the pod gets what the step asked for,
        // as a Slurm allocation does.
        let mut amounts = BTreeMap::new();
        if let Some(cpus) = resources.cpus {
            amounts.insert("cpu".to_string(), quantity(cpus.to_string()));
        }
        if let Some(memory) = resources.kubernetes_memory() {
            amounts.insert("memory".to_string(), quantity(memory));
        }
        for (name, amount) in &resources.limits {
            amounts.insert(name.clone(), quantity(amount));
        }

        let var = |name: &str, value: &str| EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        };
        let env = vec![
            var("WEFT_DB", &self.db),
            var("WEFT_ARTIFACTS", &self.artifacts),
            // Everything the worker writes stays on the emptyDir.
            var("HOME", WORK_DIR),
            var("TMPDIR", WORK_DIR),
        ];
        let args = [
            "--state-dir",
            "state",
            "step",
            "exec",
            &job.step_run_id,
            "--retries",
            &job.retry.max.to_string(),
            "--backoff-ms",
            &job.retry.backoff.as_millis().to_string(),
        ]
        .map(String::from)
        .to_vec();

        let container = Container {
            name: "weft".into(),
            image: Some(self.settings.image.clone()),
            command: Some(vec!["weft".into()]),
            args: Some(args),
            working_dir: Some(WORK_DIR.into()),
            env: Some(env),
            env_from: self.settings.env_secret.as_ref().map(|name| {
                vec![EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: name.clone(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }]
            }),
            resources: (!amounts.is_empty()).then(|| ResourceRequirements {
                requests: Some(amounts.clone()),
                limits: Some(amounts),
                ..Default::default()
            }),
            volume_mounts: Some(vec![VolumeMount {
                name: "work".into(),
                mount_path: WORK_DIR.into(),
                ..Default::default()
            }]),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            // The end of the worker's output says why a pod failed.
            termination_message_policy: Some("FallbackToLogsOnError".into()),
            ..Default::default()
        };
        let tolerations: Vec<Toleration> = resources
            .tolerations
            .iter()
            .map(|t| Toleration {
                key: t.key.clone(),
                operator: t.operator.clone(),
                value: t.value.clone(),
                effect: t.effect.clone(),
                toleration_seconds: t.toleration_seconds,
            })
            .collect();
        let pod = PodSpec {
            restart_policy: Some("Never".into()),
            service_account_name: resources
                .service_account
                .clone()
                .or_else(|| self.settings.service_account.clone()),
            // The worker never talks to the API server.
            automount_service_account_token: Some(false),
            node_selector: (!resources.node_selector.is_empty()).then(|| resources.node_selector.clone()),
            tolerations: (!tolerations.is_empty()).then_some(tolerations),
            termination_grace_period_seconds: Some(CANCEL_GRACE.as_secs() as i64),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            containers: vec![container],
            volumes: Some(vec![Volume {
                name: "work".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        Job {
            metadata: ObjectMeta {
                generate_name: Some(name_prefix(&job.step)),
                namespace: Some(self.namespace(job).to_string()),
                labels: Some(labels.clone()),
                annotations: Some(annotations.clone()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                backoff_limit: Some(0),
                active_deadline_seconds: resources.time_seconds(),
                ttl_seconds_after_finished: Some(KEEP_FINISHED),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        annotations: Some(annotations),
                        ..Default::default()
                    }),
                    spec: Some(pod),
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    async fn run_job(&self, job: &StepJob, cancel: &Cancel) -> Result<(), String> {
        let client = self.client().await?.clone();
        let namespace = self.namespace(job);
        let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
        let created = jobs
            .create(&PostParams::default(), &self.job_for(job))
            .await
            .map_err(|e| format!("creating a Kubernetes Job in namespace {namespace}: {e}"))?;
        let name = created
            .metadata
            .name
            .clone()
            .ok_or("the Kubernetes API server made a Job with no name")?;
        let mut version = created.metadata.resource_version.clone().unwrap_or_else(|| "0".into());
        let mut latest = created;
        let mut deleted: Option<tokio::time::Instant> = None;
        let mut failures = 0u32;
        'watching: loop {
            if let Some(ended) = ended(&latest) {
                return match ended {
                    Ok(()) => Ok(()),
                    Err(why) => Err(self.failure(&client, namespace, &name, why).await),
                };
            }
            let params = WatchParams::default()
                .fields(&format!("metadata.name={name}"))
                .timeout(WATCH_SECONDS);
            // What broke the watch (the API server unreachable): it is
            // made again, up to WATCH_FAILURES times in a row.
            let broken: kube::Error = 'events: {
                let mut events = match jobs.watch(&params, &version).await {
                    Ok(events) => events.boxed(),
                    Err(e) => break 'events e,
                };
                loop {
                    if cancel.is_cancelled() && deleted.is_none() {
                        // The pod gets SIGTERM; the Job goes once the pod
                        // has, and the run records the step cancelled.
                        let foreground = DeleteParams {
                            propagation_policy: Some(PropagationPolicy::Foreground),
                            ..Default::default()
                        };
                        match jobs.delete(&name, &foreground).await {
                            Ok(_) => {}
                            Err(kube::Error::Api(e)) if e.code == 404 => return Err("cancelled".into()),
                            Err(e) => return Err(format!("deleting Kubernetes Job {namespace}/{name}: {e}")),
                        }
                        deleted = Some(tokio::time::Instant::now());
                    }
                    if deleted.is_some_and(|at| at.elapsed() > 3 * CANCEL_GRACE) {
                        return Err(format!(
                            "cancelled; Kubernetes Job {namespace}/{name} is still being deleted"
                        ));
                    }
                    let event = tokio::select! {
                        event = events.try_next() => event,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    };
                    match event {
                        Ok(Some(WatchEvent::Added(job) | WatchEvent::Modified(job))) => {
                            failures = 0;
                            if let Some(v) = &job.metadata.resource_version {
                                version = v.clone();
                            }
                            latest = job;
                            if ended(&latest).is_some() {
                                continue 'watching;
                            }
                        }
                        Ok(Some(WatchEvent::Deleted(_))) => {
                            return Err(match deleted {
                                Some(_) => "cancelled".into(),
                                None => format!("Kubernetes Job {namespace}/{name} was deleted by someone else"),
                            });
                        }
                        Ok(Some(WatchEvent::Bookmark(mark))) => version = mark.metadata.resource_version,
                        // Too old a version (410 Gone): read the Job afresh.
                        Ok(Some(WatchEvent::Error(status))) if status.code == 410 => {
                            match jobs.get_opt(&name).await {
                                Ok(Some(job)) => {
                                    version = job.metadata.resource_version.clone().unwrap_or_else(|| "0".into());
                                    latest = job;
                                }
                                Ok(None) if deleted.is_some() => return Err("cancelled".into()),
                                Ok(None) => {
                                    return Err(format!(
                                        "Kubernetes Job {namespace}/{name} was deleted by someone else"
                                    ))
                                }
                                Err(e) => return Err(format!("reading Kubernetes Job {namespace}/{name}: {e}")),
                            }
                            continue 'watching;
                        }
                        Ok(Some(WatchEvent::Error(status))) => {
                            return Err(format!(
                                "watching Kubernetes Job {namespace}/{name}: {}",
                                status.message
                            ))
                        }
                        // The watch timed out: watch again from where it was.
                        Ok(None) => continue 'watching,
                        Err(e) => break 'events e,
                    }
                }
            };
            failures += 1;
            if failures >= WATCH_FAILURES {
                return Err(format!("lost sight of Kubernetes Job {namespace}/{name}: {broken}"));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Why Job `name` failed: its condition, and what its pod's container
    /// said as it ended (OOMKilled, the worker's last words).
    async fn failure(&self, client: &kube::Client, namespace: &str, name: &str, why: String) -> String {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let listed = pods
            .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
            .await;
        let mut said = String::new();
        if let Ok(list) = listed {
            for pod in list.items {
                let statuses = pod.status.and_then(|s| s.container_statuses).unwrap_or_default();
                for terminated in statuses.into_iter().filter_map(|c| c.state.and_then(|s| s.terminated)) {
                    let last = terminated
                        .message
                        .as_deref()
                        .and_then(|m| m.lines().rev().find(|l| !l.trim().is_empty()))
                        .map(|l| format!(": {}", l.trim()))
                        .unwrap_or_default();
                    said = format!(
                        "; pod {} ended {} (exit code {}){last}",
                        pod.metadata.name.as_deref().unwrap_or("?"),
                        terminated.reason.as_deref().unwrap_or("?"),
                        terminated.exit_code
                    );
                }
            }
        }
        format!("Kubernetes Job {namespace}/{name} failed ({why}){said}")
    }
}

/// Whether a Job has ended: `Ok` complete, `Err` failed with its reason.
fn ended(job: &Job) -> Option<Result<(), String>> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some(Ok(())),
            "Failed" => Some(Err(format!(
                "{}: {}",
                c.reason.as_deref().unwrap_or("no reason"),
                c.message.as_deref().unwrap_or("no message")
            ))),
            _ => None,
        })
}

impl Dispatcher for KubernetesDispatcher {
    fn dispatch<'a>(
        &'a self,
        job: &'a StepJob,
        cancel: &'a Cancel,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(self.run_job(job, cancel))
    }

    /// Pods run on the cluster's nodes; each Job costs the run one watch.
    fn default_parallel(&self) -> Option<usize> {
        Some(256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_pipeline::{Resources, Retry};

    #[test]
    fn job_names_are_dns_labels() {
        assert_eq!(name_prefix("train"), "weft-train-");
        assert_eq!(name_prefix("Load_Data"), "weft-load-data-");
        assert_eq!(name_prefix("__"), "weft-step-");
        assert!(name_prefix(&"x".repeat(64)).len() <= 58);
    }

    #[test]
    fn settings_are_checked() {
        let good = KubernetesSettings {
            image: "registry.example.com/weft:0.1".into(),
            namespace: "ml".into(),
            ..Default::default()
        };
        assert_eq!(good.validate(), Ok(()));
        for bad in [
            KubernetesSettings {
                image: "two words".into(),
                ..good.clone()
            },
            KubernetesSettings {
                namespace: "ML".into(),
                ..good.clone()
            },
            KubernetesSettings {
                env_secret: Some("no_underscores".into()),
                ..good.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let plain = KubernetesDispatcher::new(good.clone(), Some("postgres://u:pw@db/weft"), Some("s3://b/p"));
        assert!(plain.unwrap_err().contains("plain text"));
        let referred =
            KubernetesDispatcher::new(good.clone(), Some("postgres://u:${secret:PG}@db/weft"), Some("s3://b"));
        assert!(referred.is_ok());
        assert!(KubernetesDispatcher::new(good, None, Some("s3://b")).is_err());
    }

    #[test]
    fn a_job_carries_the_steps_resources_and_no_secret() {
        let settings = KubernetesSettings {
            image: "weft:test".into(),
            namespace: "ml".into(),
            service_account: Some("weft".into()),
            env_secret: Some("weft-env".into()),
            context: None,
        };
        let dispatcher = KubernetesDispatcher::new(
            settings,
            Some("postgres://weft:${secret:PG}@db:5432/weft"),
            Some("s3://b/p"),
        )
        .unwrap();
        let job = StepJob {
            step_run_id: "0190-abc".into(),
            step: "train".into(),
            retry: Retry::default(),
            resources: Resources {
                cpus: Some(2),
                memory: Some("1G".into()),
                time: Some("10:00".into()),
                namespace: Some("gpu".into()),
                ..Default::default()
            },
            after: Vec::new(),
            reporter: Default::default(),
        };
        let made = dispatcher.job_for(&job);
        let text = serde_json::to_string(&made).unwrap();
        // It survives the API's own types, both ways.
        let back: Job = serde_json::from_str(&text).unwrap();
        assert_eq!(back, made);
        assert!(text.contains("${secret:PG}") && !text.contains("password"));
        assert_eq!(made.metadata.namespace.as_deref(), Some("gpu"));
        let spec = made.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(600));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.service_account_name.as_deref(), Some("weft"));
        let container = &pod.containers[0];
        let resources = container.resources.as_ref().unwrap();
        assert_eq!(resources.limits.as_ref().unwrap()["memory"], quantity("1Gi"));
        assert_eq!(resources.requests.as_ref().unwrap()["cpu"], quantity("2"));
        assert_eq!(
            container.args.as_ref().unwrap()[..5],
            ["--state-dir", "state", "step", "exec", "0190-abc"].map(String::from)
        );
    }
}
