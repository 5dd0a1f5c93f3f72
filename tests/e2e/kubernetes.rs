//! The `kubernetes` orchestrator against a fake API server and kubelet
//! (fake_kubernetes.rs), which checks every request: one Job per step
//! that is not a cache hit, created in dependency order with the step's
//! resources; a killed pod is retried by the step's policy and its reason
//! recorded when retries run out; a secret reaches the pod through the
//! stack's Kubernetes Secret and never the Job; Ctrl-C deletes every Job.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::rbac::v1::Role;
use weft_store::Store;

use crate::fake_kubernetes::{FakeKubernetes, JobEvent};
use crate::harness::*;
use crate::slurm::{iris_project, running_step_run};
use crate::workers::{assert_iris_lineage, outcome};

/// The value of the secret the pods get from the cluster's Secret.
const VALUE: &str = "k8s-tok-4d9-VERY-secret";

/// Every namespace the tests' Jobs go to has the Secret the stack names.
fn start_cluster(held: &[&str]) -> FakeKubernetes {
    let pairs: &[(&str, &str)] = &[("WEFT_SECRET_API_TOKEN", VALUE)];
    FakeKubernetes::start(
        weft_bin(),
        &[("ml", "weft-env", pairs), ("training", "weft-env", pairs)],
        held,
    )
}

/// Creates stack `k8s` on the fake cluster, the project's default,: SQLite and files the fake
/// kubelet's pods reach (a real cluster's pods reach PostgreSQL and S3).
fn kubernetes_stack(project: &Project) {
    let db = format!("sqlite://{}", project.path().join("cluster.db").display());
    let artifacts = format!("file://{}", project.path().join("cluster-artifacts").display());
    let out = project.weft(&[
        "stack",
        "create",
        "k8s",
        "--orchestrator",
        "kubernetes",
        "--db",
        &db,
        "--artifacts",
        &artifacts,
        "--k8s-image",
        "registry.example.com/weft:test",
        "--k8s-namespace",
        "ml",
        "--k8s-service-account",
        "weft-worker",
        "--k8s-env-secret",
        "weft-env",
        "--k8s-context",
        "fake",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // `weft runs show` and the like read the stack's database too.
    let out = project.weft(&["stack", "use", "k8s"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `weft ARGS` in `project`, on the fake cluster.
fn on_cluster(project: &Project, fake: &FakeKubernetes, args: &[&str]) -> Command {
    let kubeconfig = fake.kubeconfig(project.path());
    let mut command = project.command(args);
    command.env("KUBECONFIG", kubeconfig);
    command
}

fn step_of(job: &Job) -> String {
    job.metadata.annotations.as_ref().unwrap()["weft.dev/step"].clone()
}

fn step_run_of(job: &Job) -> String {
    job.metadata.labels.as_ref().unwrap()["weft.dev/step-run"].clone()
}

/// Checks that the Role of the deployment guide (examples/kubernetes/rbac.yaml)
/// allows every request the cluster received.
fn allowed_by_the_documented_role(fake: &FakeKubernetes) {
    let text = std::fs::read_to_string(repo_root().join("examples/kubernetes/rbac.yaml")).unwrap();
    let documents: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&text).unwrap();
    let role: Role = documents
        .into_iter()
        .find(|d| d["kind"] == "Role")
        .map(|d| serde_json::from_value(d).unwrap())
        .expect("rbac.yaml has a Role");
    let rules = role.rules.unwrap_or_default();
    for seen in fake.cluster.requests() {
        let parts: Vec<&str> = seen.path.trim_matches('/').split('/').collect();
        let (group, rest) = match parts.as_slice() {
            ["apis", group, _version, rest @ ..] => (*group, rest),
            ["api", _version, rest @ ..] => ("", rest),
            _ => panic!("{seen:?}"),
        };
        let (resource, named) = match rest {
            ["namespaces", _, resource] => (*resource, false),
            ["namespaces", _, resource, _] => (*resource, true),
            _ => panic!("{seen:?}"),
        };
        let verb = match (seen.method.as_str(), named) {
            ("POST", false) => "create",
            ("GET", false) if seen.query.contains("watch=true") => "watch",
            ("GET", false) => "list",
            ("GET", true) => "get",
            ("DELETE", true) => "delete",
            _ => panic!("{seen:?}"),
        };
        let allowed = rules.iter().any(|rule| {
            let has = |list: &Option<Vec<String>>, item: &str| list.iter().flatten().any(|x| x == item);
            has(&rule.api_groups, group) && has(&rule.resources, resource) && rule.verbs.iter().any(|v| v == verb)
        });
        assert!(
            allowed,
            "the documented Role does not allow {verb} {group}/{resource} ({seen:?})"
        );
    }
}

/// The version at which Job `name` completed.
fn completed_at(events: &[JobEvent], name: &str) -> Option<u64> {
    events
        .iter()
        .find(|e| {
            e.name == name
                && e.job
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Complete" && c.status == "True"))
        })
        .map(|e| e.version)
}

#[tokio::test]
async fn iris_on_kubernetes_is_one_job_per_step_in_dependency_order_with_the_steps_resources() {
    let local = iris_project();
    assert_eq!(run_json(&local.weft(&["run", "--json"]), 0)["executed"], 4);

    let fake = start_cluster(&[]);
    let project = iris_project();
    // train goes to the GPU pool, in a namespace of its own.
    let manifest = std::fs::read_to_string(project.path().join("weft.toml")).unwrap();
    let manifest = manifest.replace(
        "retry = { max = 1, backoff = \"1s\" }\n",
        "retry = { max = 1, backoff = \"1s\" }\n\
         resources = { cpus = 2, memory = \"1G\", time = \"10:00\", namespace = \"training\", \
         service_account = \"trainer\", node_selector = { \"weft.dev/pool\" = \"gpu\" }, \
         tolerations = [{ key = \"nvidia.com/gpu\", operator = \"Exists\", effect = \"NoSchedule\" }], \
         limits = { \"nvidia.com/gpu\" = \"1\" } }\n",
    );
    assert!(manifest.contains("namespace = \"training\""));
    project.write("weft.toml", &manifest);
    kubernetes_stack(&project);

    let out = on_cluster(&project, &fake, &["run", "--json", "--stack", "k8s"])
        .output()
        .unwrap();
    assert_eq!(run_json(&out, 0)["executed"], 4);
    let cluster = &fake.cluster;
    assert_eq!(
        cluster.problems(),
        Vec::<String>::new(),
        "every request was as it should be"
    );

    // One Job per step run, each created once its inputs' Jobs completed.
    let created = cluster.created();
    let by_step: BTreeMap<String, &Job> = created.iter().map(|j| (step_of(j), j)).collect();
    assert_eq!(
        by_step.keys().cloned().collect::<Vec<_>>(),
        ["evaluate", "load", "split", "train"],
        "one Job per step"
    );
    assert_eq!(created.len(), 4);
    let events = cluster.events();
    let name = |step: &str| by_step[step].metadata.name.clone().unwrap();
    let added_at = |step: &str| {
        events
            .iter()
            .find(|e| e.kind == "ADDED" && e.name == name(step))
            .unwrap()
            .version
    };
    for (step, upstream) in [
        ("split", &["load"][..]),
        ("train", &["split"][..]),
        ("evaluate", &["train", "split"][..]),
    ] {
        for up in upstream {
            let done = completed_at(&events, &name(up)).unwrap_or_else(|| panic!("{up}'s Job completed"));
            assert!(done < added_at(step), "{step}'s Job was created after {up}'s completed");
        }
    }

    // train's resources, from weft.toml; the others get the stack's.
    let train = by_step["train"];
    assert_eq!(train.metadata.namespace.as_deref(), Some("training"));
    let spec = train.spec.as_ref().unwrap();
    assert_eq!(spec.active_deadline_seconds, Some(600));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("trainer"));
    assert_eq!(pod.node_selector.as_ref().unwrap()["weft.dev/pool"], "gpu");
    let toleration = &pod.tolerations.as_ref().unwrap()[0];
    assert_eq!(
        (
            toleration.key.as_deref(),
            toleration.operator.as_deref(),
            toleration.effect.as_deref()
        ),
        (Some("nvidia.com/gpu"), Some("Exists"), Some("NoSchedule"))
    );
    let resources = pod.containers[0].resources.as_ref().unwrap();
    for amounts in [resources.requests.as_ref().unwrap(), resources.limits.as_ref().unwrap()] {
        let amounts: BTreeMap<&str, &str> = amounts.iter().map(|(k, v)| (k.as_str(), v.0.as_str())).collect();
        assert_eq!(
            amounts,
            [("cpu", "2"), ("memory", "1Gi"), ("nvidia.com/gpu", "1")].into()
        );
    }
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("registry.example.com/weft:test")
    );
    for step in ["load", "split", "evaluate"] {
        let job = by_step[step];
        assert_eq!(job.metadata.namespace.as_deref(), Some("ml"), "{step}");
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("weft-worker"), "{step}");
        assert!(
            pod.containers[0].resources.is_none() && pod.node_selector.is_none(),
            "{step}"
        );
    }

    // The same statuses and bytes as the local run; each Job ran its step run.
    let store = Store::open(&format!("sqlite://{}", project.path().join("cluster.db").display()))
        .await
        .unwrap();
    let local_store = Store::open(&format!("sqlite://{}", local.state().join("weft.db").display()))
        .await
        .unwrap();
    assert_eq!(outcome(&store).await, outcome(&local_store).await);
    let run = store.run("latest").await.unwrap();
    for s in store.step_runs(&run.id).await.unwrap() {
        assert_eq!(step_run_of(by_step[s.step_name.as_str()]), s.id, "{}", s.step_name);
    }
    assert_iris_lineage(&project.weft(&["lineage", "iris/evaluate.report", "--json"]));
    assert!(cluster.deletions().is_empty(), "nothing was cancelled");
    // Nothing but creating and watching the Jobs: no polling, no listing.
    for seen in cluster.requests() {
        let creates = seen.method == "POST" && seen.query.is_empty();
        let watches = seen.method == "GET" && seen.query.contains("watch=true");
        assert!(
            seen.path.starts_with("/apis/batch/v1/namespaces/") && seen.path.ends_with("/jobs") && (creates || watches),
            "{seen:?}"
        );
    }

    // A second run is all cache hits and creates no Job.
    let out = on_cluster(&project, &fake, &["run", "--json", "--stack", "k8s"])
        .output()
        .unwrap();
    let again = run_json(&out, 0);
    assert_eq!(
        (again["executed"].as_u64(), again["cached"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(cluster.created().len(), 4, "no Job for a cache hit");
    assert_eq!(cluster.problems(), Vec::<String>::new());
    allowed_by_the_documented_role(&fake);
}

/// `a` reads a secret the pods get from the cluster's Secret; `doomed`
/// spins `iterations` times, with one retry.
fn doomed_manifest(iterations: u64) -> String {
    format!(
        "[pipeline]\nname = \"doom\"\n[inputs]\nraw = {{ path = \"raw.txt\" }}\n\
         [steps.a]\ncomponent = {h}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\n\
         params = {{ attack = \"granted-env\" }}\nenv = {{ TOKEN = \"${{secret:api-token}}\" }}\n\
         [steps.doomed]\ncomponent = {h}\ninputs = {{ in = \"a.out\" }}\noutputs = [\"out\"]\n\
         params = {{ attack = \"spin\", steps = {iterations} }}\nretry = {{ max = 1, backoff = \"100ms\" }}\n\
         [steps.last]\ncomponent = {e}\ninputs = {{ in = \"doomed.out\" }}\noutputs = [\"out\"]\n",
        h = toml_path(&guest("hostile")),
        e = toml_path(&guest("echo")),
    )
}

/// The Jobs created for step run `id`.
fn jobs_of(fake: &FakeKubernetes, id: &str) -> usize {
    fake.cluster.created().iter().filter(|j| step_run_of(j) == id).count()
}

#[test]
fn a_killed_pod_is_retried_by_policy_and_its_reason_recorded_when_retries_run_out() {
    let fake = start_cluster(&[]);
    let project = Project::new(&doomed_manifest(4_000_000_000));
    project.write("raw.txt", "data");
    kubernetes_stack(&project);

    // The pod of `doomed` killed mid-step (out of memory): its Job fails,
    // the step's policy (one retry) creates another, which finishes it.
    let child = on_cluster(&project, &fake, &["run", "--json", "--stack", "k8s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let doomed = running_step_run(&project, "doomed");
    fake.cluster.kill(&doomed, "OOMKilled");
    let out = child.wait_with_output().unwrap();
    let outcome = run_json(&out, 0);
    assert_eq!(statuses(&outcome)["doomed"], "succeeded", "{}", stderr(&out));
    assert_eq!(step(&project.run_detail("latest"), "doomed")["attempts"], 2);
    assert_eq!(jobs_of(&fake, &doomed), 2, "a second Job ran the step");

    // The secret reached `a`'s pod from the cluster's Secret (it wrote
    // the value reversed), and no Job or request carried it.
    let out = project.weft(&["artifacts", "get", "doom/a.out", "--stack", "k8s"]);
    let reversed: String = VALUE.chars().rev().collect();
    assert_eq!(stdout(&out), format!("{reversed} {}", VALUE.len()), "{}", stderr(&out));
    let sent = serde_json::to_string(&fake.cluster.created()).unwrap();
    assert!(
        sent.contains("weft-env") && !sent.contains(VALUE),
        "the Jobs name the Secret, never its value"
    );

    // Retries run out: both pods killed. The step fails with the reason,
    // and the step after it is skipped.
    let child = on_cluster(
        &project,
        &fake,
        &["run", "--json", "--stack", "k8s", "-p", "doomed.steps=4000000001"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let doomed = running_step_run(&project, "doomed");
    let first = fake.cluster.kill(&doomed, "OOMKilled");
    let deadline = Instant::now() + Duration::from_secs(120);
    while fake.cluster.running(&doomed).is_none_or(|(_, _, pid)| pid == first) {
        assert!(Instant::now() < deadline, "no second pod for {doomed}");
        std::thread::sleep(Duration::from_millis(20));
    }
    fake.cluster.kill(&doomed, "OOMKilled");
    let out = child.wait_with_output().unwrap();
    let outcome = run_json(&out, 1);
    assert_eq!(statuses(&outcome)["doomed"], "failed");
    assert_eq!(statuses(&outcome)["last"], "skipped");
    let detail = project.run_detail("latest");
    let failed = step(&detail, "doomed");
    assert_eq!(failed["attempts"], 2);
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("lost 2 times")
            && error.contains("failed (BackoffLimitExceeded")
            && error.contains("ended OOMKilled (exit code 137)"),
        "{error}"
    );
    assert_eq!(jobs_of(&fake, &doomed), 2);
    assert_eq!(fake.cluster.problems(), Vec::<String>::new());
    allowed_by_the_documented_role(&fake);
}

#[test]
fn ctrl_c_of_the_run_deletes_every_pending_and_running_job() {
    // `stuck` runs until cancelled; `held`'s pod never starts.
    let fake = start_cluster(&["held"]);
    let manifest = format!(
        "[pipeline]\nname = \"stop\"\n[inputs]\nraw = {{ path = \"raw.txt\" }}\n\
         [steps.stuck]\ncomponent = {h}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\n\
         params = {{ attack = \"loop\" }}\n\
         [steps.held]\ncomponent = {h}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\n\
         params = {{ attack = \"none\" }}\n\
         [steps.after]\ncomponent = {e}\ninputs = {{ in = \"stuck.out\" }}\noutputs = [\"out\"]\n",
        h = toml_path(&guest("hostile")),
        e = toml_path(&guest("echo")),
    );
    let project = Project::new(&manifest);
    project.write("raw.txt", "data");
    kubernetes_stack(&project);
    let mut child = on_cluster(&project, &fake, &["run", "--stack", "k8s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // stuck's worker in the guest, held's Job pending.
    let stuck = running_step_run(&project, "stuck");
    let deadline = Instant::now() + Duration::from_secs(120);
    while fake.cluster.running(&stuck).is_none() || fake.cluster.created().len() < 2 {
        assert!(Instant::now() < deadline, "the Jobs never ran and waited");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let jobs: Vec<(String, String)> = fake
        .cluster
        .created()
        .iter()
        .map(|j| (j.metadata.namespace.clone().unwrap(), j.metadata.name.clone().unwrap()))
        .collect();

    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(130));

    // Both Jobs deleted (foreground), none left, the running pod's worker
    // ended by SIGTERM; the run recorded every step cancelled.
    let mut deleted: Vec<(String, String)> = fake
        .cluster
        .deletions()
        .into_iter()
        .map(|(ns, name, policy)| {
            assert_eq!(policy, "Foreground");
            (ns, name)
        })
        .collect();
    deleted.sort();
    deleted.dedup();
    let mut expected = jobs.clone();
    expected.sort();
    assert_eq!(deleted, expected, "every Job was deleted");
    assert_eq!(fake.cluster.live_jobs(), Vec::<(String, String)>::new());
    assert_eq!(
        fake.cluster.pod_exit(&stuck),
        Some(128 + libc::SIGTERM),
        "the pod's deletion ended the worker, before any SIGKILL"
    );
    assert_cancelled(&project, &["stuck", "held", "after"]);
    assert_eq!(fake.cluster.problems(), Vec::<String>::new());
    allowed_by_the_documented_role(&fake);
}

/// `--orchestrator kubernetes` needs an image and stores a pod reaches.
#[test]
fn kubernetes_without_an_image_stores_or_settings_is_refused_with_what_to_do() {
    let project = Project::new("[pipeline]\nname = \"p\"\n");
    let no_image = project.weft(&["stack", "create", "k", "--orchestrator", "kubernetes"]);
    assert_eq!(no_image.status.code(), Some(2));
    assert!(stderr(&no_image).contains("--k8s-image"), "{}", stderr(&no_image));
    let no_stores = project.weft(&[
        "stack",
        "create",
        "k",
        "--orchestrator",
        "kubernetes",
        "--k8s-image",
        "weft:1",
    ]);
    assert_eq!(no_stores.status.code(), Some(2));
    assert!(
        stderr(&no_stores).contains("--db postgres://"),
        "{}",
        stderr(&no_stores)
    );
    let bad_namespace = project.weft(&[
        "stack",
        "create",
        "k",
        "--db",
        "postgres://weft@db/weft",
        "--artifacts",
        "s3://bucket/weft",
        "--k8s-image",
        "weft:1",
        "--k8s-namespace",
        "Not_A_Namespace",
    ]);
    assert_eq!(bad_namespace.status.code(), Some(2));
    assert!(
        stderr(&bad_namespace).contains("--k8s-namespace"),
        "{}",
        stderr(&bad_namespace)
    );

    // A step that names kubernetes on a stack without its settings is
    // refused before anything runs.
    let operator = Project::new(&format!(
        "[pipeline]\nname = \"op\"\n[inputs]\nraw = {{ path = \"raw.txt\" }}\n\
         [steps.a]\ncomponent = {e}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\n\
         orchestrator = \"kubernetes\"\n",
        e = toml_path(&guest("echo")),
    ));
    operator.write("raw.txt", "data");
    let refused = operator.weft(&["run"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("step 'a' runs on orchestrator 'kubernetes'")
            && stderr(&refused).contains("--k8s-image"),
        "{}",
        stderr(&refused)
    );
    assert!(!operator.state().join("weft.db").exists(), "nothing ran");
}
