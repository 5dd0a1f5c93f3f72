//! Stacks: the iris pipeline on S3 artifacts and PostgreSQL metadata gives
//! the same results and the same cache behaviour as on the default stack
//! (SQLite, local files). Needs WEFT_TEST_S3 (an S3-compatible server, with
//! the AWS_* variables for it) and WEFT_TEST_POSTGRES: tests/run.sh starts
//! both.

use serde_json::Value;

use crate::harness::*;
use crate::iris::iris_copy;

/// An iris project reusing the components built in the repository.
fn iris_project() -> Project {
    let project = Project { dir: iris_copy() };
    std::os::unix::fs::symlink(repo_root().join("examples/iris/target"), project.path().join("target")).unwrap();
    project
}

/// A run's statuses by step, how many steps executed, how many were cached.
type RunSummary = (Vec<(String, String)>, u64, u64);

/// The [`RunSummary`] of each of: a first run, a rerun, a param change;
/// and the evaluation report's bytes and accuracy.
fn three_runs(project: &Project) -> (Vec<RunSummary>, Vec<u8>) {
    let mut runs = Vec::new();
    for args in [
        &["run", "--json"][..],
        &["run", "--json"],
        &["run", "--json", "-p", "train.epochs=200"],
    ] {
        let outcome = run_json(&project.weft(args), 0);
        runs.push((
            statuses(&outcome).into_iter().collect(),
            outcome["executed"].as_u64().unwrap(),
            outcome["cached"].as_u64().unwrap(),
        ));
    }
    let out = project.weft(&["artifacts", "get", "iris/evaluate.report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    (runs, out.stdout)
}

#[test]
fn iris_on_s3_artifacts_and_postgres_metadata_matches_the_default_stack() {
    let (Ok(s3), Ok(pg)) = (std::env::var("WEFT_TEST_S3"), std::env::var("WEFT_TEST_POSTGRES")) else {
        skip("WEFT_TEST_S3 and WEFT_TEST_POSTGRES are not set (tests/run.sh starts both servers)");
        return;
    };
    build_iris();
    let local = iris_project();
    let (local_runs, local_report) = three_runs(&local);
    assert_eq!(
        local_runs.iter().map(|r| (r.1, r.2)).collect::<Vec<_>>(),
        [(4, 0), (0, 4), (2, 2)]
    );

    // A bucket of its own on the S3 server, a database of its own on PostgreSQL.
    let unique = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let bucket = format!("weft-stack-{unique}");
    let created = ureq::put(&format!("{s3}/{bucket}")).call();
    assert!(created.is_ok(), "creating bucket {bucket}: {created:?}");
    let team = iris_project();
    let db = format!("{}/weft_stack_{unique}", pg.trim_end_matches('/'));
    let create = team.weft(&[
        "stack",
        "create",
        "team",
        "--db",
        &db,
        "--artifacts",
        &format!("s3://{bucket}/iris"),
    ]);
    assert!(create.status.success(), "{}", stderr(&create));
    assert!(team.weft(&["stack", "use", "team"]).status.success());
    let shown: Value = serde_json::from_slice(&team.weft(&["stack", "show"]).stdout).unwrap();
    assert_eq!(shown["active"], true);
    assert_eq!(shown["artifacts"], format!("s3://{bucket}/iris"));

    let (team_runs, team_report) = three_runs(&team);
    assert_eq!(team_runs, local_runs, "same steps executed and cached, run by run");
    assert_eq!(team_report, local_report, "the same evaluation, byte for byte");
    let accuracy: Value = serde_json::from_slice(&team_report).unwrap();
    assert!(accuracy["accuracy"].as_f64().unwrap() >= 0.9);

    // The bytes are in the bucket, nothing in the project's own state.
    let listing = ureq::get(&format!("{s3}/{bucket}?list-type=2&prefix=iris/blobs/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(listing.matches("<Key>iris/blobs/").count() >= 5, "{listing}");
    assert!(!team.state().join("artifacts/blobs").exists());
    assert!(!team.state().join("weft.db").exists(), "metadata went to PostgreSQL");
    // And the metadata is in PostgreSQL: a server on the same stack sees it.
    let runs: Value = serde_json::from_slice(&team.weft(&["runs", "list", "--json"]).stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 3);
}

#[test]
fn stacks_are_validated_listed_switched_and_deleted() {
    let project = Project::new("[pipeline]\nname = \"p\"\n");
    let bad = project.weft(&["stack", "create", "x", "--artifacts", "ftp://nope"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("unsupported artifact store URL"),
        "{}",
        stderr(&bad)
    );
    let bad = project.weft(&["stack", "create", "x", "--db", "mysql://u:secret@h/db"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        !stderr(&bad).contains("secret"),
        "the password is not echoed: {}",
        stderr(&bad)
    );
    let bad = project.weft(&["stack", "create", "x", "--orchestrator", "nomad"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("weft has local, process, slurm, kubernetes"),
        "{}",
        stderr(&bad)
    );

    assert!(project
        .weft(&[
            "stack",
            "create",
            "dev",
            "--db",
            "sqlite:///tmp/never-used.db",
            "--plugin-config",
            "webhook-alerter.url=http://x"
        ])
        .status
        .success());
    let list = stdout(&project.weft(&["stack", "list"]));
    assert!(list.contains("dev") && !list.contains("* dev"), "{list}");
    assert!(project.weft(&["stack", "use", "dev"]).status.success());
    assert!(stdout(&project.weft(&["stack", "list"])).contains("* dev"));
    let shown: Value = serde_json::from_slice(&project.weft(&["stack", "show", "dev"]).stdout).unwrap();
    assert_eq!(shown["plugins"]["webhook-alerter"]["url"], "http://x");
    assert_eq!(project.weft(&["stack", "use", "nope"]).status.code(), Some(3));
    assert!(project.weft(&["stack", "delete", "dev"]).status.success());
    assert!(stdout(&project.weft(&["stack", "list"])).is_empty());
    // With the active stack gone, commands are back on the project's .weft.
    assert_eq!(project.weft(&["runs", "list"]).status.code(), Some(3));
}
