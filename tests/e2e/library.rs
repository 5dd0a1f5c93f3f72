//! weft's library of ready-made steps (`uses = "ml/…"`): the examples in
//! examples/breast-cancer and examples/digits run from the `weft` binary
//! alone, on real data, reach their accuracy, and repeat byte for byte.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use crate::harness::*;
use crate::server::start;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The example `name` copied into a fresh project, nothing else.
fn example(name: &str) -> Project {
    let source = repo_root().join("examples").join(name);
    let project = Project::new(&std::fs::read_to_string(source.join("weft.toml")).unwrap());
    std::fs::create_dir(project.path().join("data")).unwrap();
    for file in std::fs::read_dir(source.join("data")).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), project.path().join("data").join(file.file_name())).unwrap();
    }
    project
}

/// `weft ARGS` in `project` with only the binary: no PATH (no cargo,
/// python or node), and a library directory of its own, so that every
/// library step comes out of the binary.
fn bare(project: &Project, args: &[&str]) -> Command {
    let empty = project.path().join(".empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cmd = project.command(args);
    cmd.env("PATH", &empty)
        .env("WEFT_LIBRARY_DIR", project.path().join(".library"))
        .env_remove("WEFT_TOOLCHAINS");
    cmd
}

/// step name -> metric key -> value, of a run.
fn metrics(project: &Project, run: &str) -> BTreeMap<String, BTreeMap<String, f64>> {
    let detail = project.run_detail(run);
    let names: BTreeMap<&str, &str> = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["step_name"].as_str().unwrap()))
        .collect();
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for m in detail["metrics"].as_array().unwrap() {
        let step = names[m["step_run_id"].as_str().unwrap()];
        out.entry(step.to_string())
            .or_default()
            .insert(m["key"].as_str().unwrap().to_string(), m["value"].as_f64().unwrap());
    }
    out
}

/// artifact name -> digest of each version, oldest first.
fn digests(project: &Project) -> BTreeMap<String, Vec<String>> {
    let out = project.weft(&["artifacts", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut versions: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for a in list.as_array().unwrap() {
        versions
            .entry(a["name"].as_str().unwrap().to_string())
            .or_default()
            .push((
                a["version"].as_i64().unwrap(),
                a["digest"].as_str().unwrap().to_string(),
            ));
    }
    versions
        .into_iter()
        .map(|(name, mut v)| {
            v.sort();
            (name, v.into_iter().map(|(_, d)| d).collect())
        })
        .collect()
}

fn run(project: &Project, args: &[&str]) -> Value {
    run_json(&bare(project, args).output().expect("run weft"), 0)
}

#[test]
fn breast_cancer_from_library_steps_alone_reaches_its_accuracy_and_repeats_byte_for_byte() {
    let project = example("breast-cancer");
    let first = run(&project, &["run", "--json"]);
    assert_eq!(first["executed"], 8, "{first}");
    let m = metrics(&project, "latest");
    let (forest, logistic) = (m["evaluate_forest"]["accuracy"], m["evaluate_logistic"]["accuracy"]);
    assert!(forest >= 0.94, "random forest held-out accuracy {forest}");
    assert!(logistic >= 0.95, "logistic regression held-out accuracy {logistic}");
    assert!(m["evaluate_forest"]["roc_auc"] > 0.95, "{m:?}");
    assert_eq!(m["choose"]["accuracy"], forest.max(logistic));
    assert_eq!(m["split"]["test_rows"] + m["split"]["train_rows"], 569.0);
    show_in_dashboard(
        &project,
        "breast-cancer",
        first["run_id"].as_str().unwrap(),
        8,
        "roc_auc",
        "breast-cancer/evaluate_forest.predictions",
    );

    // The better model is the registered one, byte for byte.
    let better = if logistic > forest { "logistic" } else { "forest" };
    let model = project.weft(&["models", "show", "breast-cancer", "--json"]);
    assert!(model.status.success(), "{}", stderr(&model));
    let model: Value = serde_json::from_slice(&model.stdout).unwrap();
    let tags = &model["versions"][0]["tags"];
    assert!(
        tags.as_array()
            .unwrap()
            .iter()
            .any(|t| t[0] == "weft.artifact" && t[1] == "breast-cancer/choose.model:1"),
        "{model}"
    );
    let chosen = project.weft(&["artifacts", "get", "breast-cancer/choose.model"]);
    let trained = project.weft(&["artifacts", "get", &format!("breast-cancer/{better}.model")]);
    assert!(
        chosen.status.success() && trained.status.success(),
        "{}",
        stderr(&chosen)
    );
    assert_eq!(chosen.stdout, trained.stdout);
    let model: Value = serde_json::from_slice(&chosen.stdout).unwrap();
    assert_eq!(model["format"], "weft-ml-model");
    assert_eq!(model["features"].as_array().unwrap().len(), 30);
    // ml/predict with the chosen model gives what its evaluation predicted.
    let predicted = project.weft(&["artifacts", "get", "breast-cancer/predict.predictions"]);
    let evaluated = project.weft(&[
        "artifacts",
        "get",
        &format!("breast-cancer/evaluate_{better}.predictions"),
    ]);
    assert_eq!(stdout(&predicted), stdout(&evaluated));

    // A second run is all cache hits; a forced re-execution writes the same bytes.
    let cached = run(&project, &["run", "--json"]);
    assert_eq!(
        (cached["executed"].as_i64(), cached["cached"].as_i64()),
        (Some(0), Some(8))
    );
    let forced = run(&project, &["run", "--json", "--no-cache"]);
    assert_eq!(forced["executed"], 8);
    let digests = digests(&project);
    assert!(digests.len() >= 11, "{digests:?}");
    for (name, versions) in &digests {
        assert!(
            versions.iter().all(|d| d == &versions[0]),
            "{name} changed between runs: {versions:?}"
        );
    }
    // The library steps came out of the binary.
    assert!(std::fs::read_dir(project.path().join(".library")).unwrap().count() >= 6);
}

#[test]
fn digits_with_a_random_forest_and_k_nearest_neighbours_reach_95_percent_held_out() {
    let project = example("digits");
    let outcome = run(&project, &["run", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    let m = metrics(&project, "latest");
    assert_eq!(m["read"]["features"], 64.0);
    let accuracy = m["evaluate"]["accuracy"];
    assert!(accuracy >= 0.95, "digits held-out accuracy {accuracy}");
    let neighbours = m["evaluate_neighbours"]["accuracy"];
    assert!(
        neighbours >= 0.95,
        "digits k-nearest-neighbours held-out accuracy {neighbours}"
    );
    assert_eq!(m["choose"]["accuracy"], accuracy.max(neighbours));
    let report = project.weft(&["artifacts", "get", "digits/evaluate.report"]);
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    let confusion = report["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 10);
    let total: u64 = confusion
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total as f64, m["split"]["test_rows"]);
    show_in_dashboard(
        &project,
        "digits",
        outcome["run_id"].as_str().unwrap(),
        7,
        "f1_9",
        "digits/split.test",
    );
}

#[test]
fn wine_regresses_proline_with_a_random_forest_and_finds_the_cultivars_with_k_means() {
    let project = example("wine");
    let outcome = run(&project, &["run", "--json"]);
    assert_eq!(outcome["executed"], 8, "{outcome}");
    let m = metrics(&project, "latest");
    // The cultivar, one-hot encoded, is three of the 15 features.
    assert_eq!(m["encode"]["columns"], 16.0);
    let (r2, rmse, mae) = (m["evaluate"]["r2"], m["evaluate"]["rmse"], m["evaluate"]["mae"]);
    assert!(r2 >= 0.75, "held-out R² of proline {r2}");
    assert!(mae > 0.0 && mae <= rmse, "MAE {mae}, RMSE {rmse}");
    let ari = m["evaluate_clusters"]["adjusted_rand"];
    assert!(
        ari >= 0.85,
        "adjusted Rand index of the clusters against the cultivars {ari}"
    );
    assert!(m["evaluate_clusters"]["purity"] >= 0.9, "{m:?}");

    // R² from the predictions table, against the test table's truth.
    let get = |name: &str| stdout(&project.weft(&["artifacts", "get", name]));
    let test = get("wine/split.test");
    let header: Vec<&str> = test.lines().next().unwrap().split(',').collect();
    assert!(header.contains(&"cultivar=2"), "{header:?}");
    let target = header.iter().position(|c| *c == "target").unwrap();
    let truth: Vec<f64> = test
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(target).unwrap().parse().unwrap())
        .collect();
    let predicted = first_column(&get("wine/evaluate.predictions"));
    let mean = truth.iter().sum::<f64>() / truth.len() as f64;
    let residual: f64 = truth.iter().zip(&predicted).map(|(t, p)| (t - p).powi(2)).sum();
    let total: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
    assert!(
        (1.0 - residual / total - r2).abs() < 1e-9,
        "R² recomputed from the predictions"
    );

    // The regressor is registered and served: the values of its evaluation.
    assert_eq!(served(&project, "models:/wine-proline/latest", &test), predicted);
    show_in_dashboard(
        &project,
        "wine",
        outcome["run_id"].as_str().unwrap(),
        8,
        "adjusted_rand",
        "wine/encode.table",
    );
}

#[test]
fn text_feature_columns_are_one_hot_encoded_and_text_labels_become_classes() {
    let project = Project::new(
        "[pipeline]\nname = \"text\"\n[inputs]\ndata = { path = \"d.csv\" }\n\
         [steps.read]\nuses = \"ml/read-csv\"\ninputs = { raw = \"inputs.data\" }\nparams = { target = \"verdict\" }\n\
         [steps.encode]\nuses = \"ml/one-hot\"\ninputs = { table = \"read.table\" }\nparams = { columns = [\"size\"] }\n",
    );
    project.write(
        "d.csv",
        "colour,size,weight,verdict\nred,1,2.5,keep\nblue,3,1.0,drop\nred,3,0.5,keep\n\"dark, green\",1,4,drop\n",
    );
    let outcome = run_json(&bare(&project, &["run", "--json"]).output().unwrap(), 0);
    assert_eq!(outcome["executed"], 2, "{outcome}");
    let table = stdout(&project.weft(&["artifacts", "get", "text/encode.table"]));
    assert_eq!(
        table,
        "colour=blue,\"colour=dark, green\",colour=red,size=1,size=3,weight,target\n\
         0,0,1,1,0,2.5,1\n1,0,0,0,1,1,0\n0,0,1,0,1,0.5,1\n0,1,0,1,0,4,0\n"
    );
    let detail = project.run_detail("latest");
    let metadata: BTreeMap<&str, &str> = detail["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["key"].as_str().unwrap(), m["value"].as_str().unwrap()))
        .collect();
    assert_eq!(metadata["one_hot"], r#"["colour"]"#);
    assert_eq!(metadata["classes"], r#"["drop","keep"]"#);
    // A column of numbers with too many values is not taken for a category.
    let project = Project::new(
        "[pipeline]\nname = \"many\"\n[inputs]\ndata = { path = \"d.csv\" }\n\
         [steps.read]\nuses = \"ml/read-csv\"\ninputs = { raw = \"inputs.data\" }\n\
         [steps.encode]\nuses = \"ml/one-hot\"\ninputs = { table = \"read.table\" }\nparams = { columns = [\"id\"] }\n",
    );
    let rows: String = (0..1001).map(|i| format!("{i},{}\n", i % 2)).collect();
    project.write("d.csv", &format!("id,target\n{rows}"));
    let outcome = run_json(&bare(&project, &["run", "--json"]).output().unwrap(), 1);
    let (status, error) = &errors(&outcome)["encode"];
    assert_eq!(status, "failed");
    assert!(error.contains("1001 distinct values"), "{error}");
}

#[test]
fn a_library_step_that_is_unknown_or_miswired_is_refused_with_what_to_fix() {
    let cases = [
        (
            "uses = \"ml/nope\"\ninputs = { raw = \"inputs.data\" }",
            "has no step 'ml/nope'",
        ),
        (
            "uses = \"ml/split\"\ninputs = { data = \"inputs.data\" }",
            "ml/split reads the input table",
        ),
        (
            "uses = \"ml/read-csv\"\ninputs = { raw = \"inputs.data\", extra = \"inputs.data\" }",
            "has no input 'extra'",
        ),
        (
            "uses = \"ml/read-csv\"\ncomponent = \"x.wasm\"\ninputs = { raw = \"inputs.data\" }",
            "not both",
        ),
    ];
    for (step, message) in cases {
        let project = Project::new(&format!(
            "[pipeline]\nname = \"bad\"\n[inputs]\ndata = {{ path = \"d.csv\" }}\n[steps.s]\n{step}\n"
        ));
        project.write("d.csv", "a,target\n1,0\n");
        let out = project.weft(&["run"]);
        assert_eq!(out.status.code(), Some(2), "{step}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{step}: {}", stderr(&out));
    }
    // A table the steps cannot read fails the step with the row at fault.
    let project = Project::new(
        "[pipeline]\nname = \"bad\"\n[inputs]\ndata = { path = \"d.csv\" }\n\
         [steps.read]\nuses = \"ml/read-csv\"\ninputs = { raw = \"inputs.data\" }\nparams = { header = \"names\" }\n",
    );
    project.write("d.csv", "a,b,target\n1,2,0\n3,oops,1\n");
    let outcome = run_json(&project.weft(&["run", "--json"]), 1);
    let (status, error) = &errors(&outcome)["read"];
    assert_eq!(status, "failed");
    assert!(
        error.contains("row 2, column 'b': 'oops' is not a finite number"),
        "{error}"
    );
}

#[test]
fn weft_library_lists_every_step_with_its_digest() {
    let project =
        Project::new("[pipeline]\nname = \"x\"\n[steps.a]\nuses = \"ml/split\"\ninputs = { table = \"inputs.t\" }\n");
    let out = project.weft(&["library", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for name in [
        "ml/read-csv",
        "ml/split",
        "ml/random-forest",
        "ml/logistic-regression",
        "ml/evaluate",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["digest"].as_str().unwrap().len() == 64));
}

#[test]
fn the_registered_breast_cancer_model_is_served_with_the_predictions_of_its_evaluation() {
    let project = example("breast-cancer");
    run(&project, &["run", "--json"]);
    let chosen: Value = serde_json::from_slice(
        &project
            .weft(&["artifacts", "get", "breast-cancer/choose.choice"])
            .stdout,
    )
    .unwrap();
    let evaluated = if chosen["chosen"] == "a" {
        "evaluate_forest"
    } else {
        "evaluate_logistic"
    };
    let get = |name: &str| stdout(&project.weft(&["artifacts", "get", name]));
    let test = get("breast-cancer/split.test");
    let predictions = get(&format!("breast-cancer/{evaluated}.predictions"));

    let served = served(&project, "models:/breast-cancer/latest", &test);
    let expected = first_column(&predictions);
    assert_eq!(served.len(), test.lines().count() - 1);
    assert_eq!(served, expected);
}

/// What `weft serve MODEL` answers for the rows of `table` (CSV), sent
/// by column name in another order than the model's, the label included.
fn served(project: &Project, model: &str, table: &str) -> Vec<f64> {
    let mut child = bare(project, &["serve", model, "--port", "0"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (base, _) = listening(&mut child);
    let mut lines = table.lines();
    let columns: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.reverse();
    let body = serde_json::json!({
        "dataframe_split": {
            "columns": order.iter().map(|&j| columns[j]).collect::<Vec<_>>(),
            "data": rows.iter().map(|r| order.iter().map(|&j| r[j]).collect::<Vec<_>>()).collect::<Vec<_>>(),
        },
    });
    let answer = ureq::post(&format!("{base}/invocations")).send_json(body);
    let _ = child.kill();
    let _ = child.wait();
    let answer: Value = answer.expect("predictions").into_json().unwrap();
    answer["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// The first column of a CSV table, as numbers.
fn first_column(table: &str) -> Vec<f64> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

/// The run page of `run` and the preview of its table `table` in the
/// dashboard, in a real browser (tests/ui/examples.test.mjs), with
/// screenshots in target/test-output/examples/.
fn show_in_dashboard(project: &Project, example: &str, run: &str, steps: usize, metric: &str, table: &str) {
    let ui = repo_root().join("tests/ui");
    assert!(
        std::path::Path::new(CHROMIUM).exists() && ui.join("node_modules/playwright-core").exists(),
        "the dashboard tests need {CHROMIUM} and tests/ui/node_modules: run `bash tests/run.sh`, which installs both"
    );
    let server = start(project, &[]);
    let shots = repo_root().join("target/test-output/examples");
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "--test-concurrency=1"])
        .arg(ui.join("examples.test.mjs"))
        .current_dir(&ui)
        .env("WEFT_URL", &server.base)
        .env("WEFT_EXAMPLE", example)
        .env("WEFT_RUN", run)
        .env("WEFT_STEPS", steps.to_string())
        .env("WEFT_METRIC", metric)
        .env("WEFT_TABLE", table)
        .env("WEFT_SCREENSHOTS", &shots)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("run node (tests/run.sh installs Node.js)");
    drop(server);
    assert!(
        out.status.success(),
        "browser tests of {example} failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    for page in ["run", "table"] {
        assert!(
            shots.join(format!("{example}-{page}.png")).exists(),
            "screenshot of {example}'s {page}"
        );
    }
}

#[test]
fn a_table_goes_from_library_steps_through_python_javascript_and_rust_steps_and_back() {
    let rust = toml_path(&guest("table"));
    let project = Project::new(&format!(
        "[pipeline]\nname = \"tables\"\n[inputs]\ndata = {{ path = \"data.csv\", media_type = \"text/csv\" }}\n\
         [steps.read]\nuses = \"ml/read-csv\"\ninputs = {{ raw = \"inputs.data\" }}\n\
         [steps.py]\npython = \"py\"\ninputs = {{ table = \"read.table\" }}\noutputs = [{{ name = \"table\", media_type = \"text/csv\" }}]\n\
         [steps.js]\njs = \"js\"\ninputs = {{ table = \"py.table\" }}\noutputs = [{{ name = \"table\", media_type = \"text/csv\" }}]\n\
         [steps.rs]\ncomponent = {rust}\ninputs = {{ table = \"js.table\" }}\noutputs = [{{ name = \"table\", media_type = \"text/csv\" }}]\n\
         params = {{ from = \"js\", name = \"rs\", add = 0.5 }}\n\
         [steps.split]\nuses = \"ml/split\"\ninputs = {{ table = \"rs.table\" }}\nparams = {{ seed = 3 }}\n\
         [steps.forest]\nuses = \"ml/random-forest\"\ninputs = {{ train = \"split.train\" }}\nparams = {{ n_trees = 20, seed = 3 }}\n\
         [steps.evaluate]\nuses = \"ml/evaluate\"\ninputs = {{ model = \"forest.model\", test = \"split.test\" }}\n",
    ));
    std::fs::copy(
        repo_root().join("examples/breast-cancer/data/breast_cancer.csv"),
        project.path().join("data.csv"),
    )
    .unwrap();
    // Python adds a column (after the target: the steps find it by name).
    project.write(
        "py/app.py",
        "import weft_step as weft\n\n@weft.step\ndef main(params):\n    rows = weft.read_csv('table')\n    \
         for r in rows:\n        r['py'] = r['f0'] * 2\n    weft.write_csv('table', rows)\n",
    );
    // JavaScript reads Python's table and adds another.
    project.write(
        "js/app.js",
        "import * as weft from './weft-step.js';\n\
         export const run = weft.step(() => {\n\
           const rows = weft.readCsv('table');\n\
           for (const r of rows) r.js = r.py + 1;\n\
           weft.writeCsv('table', rows);\n\
         });\n",
    );
    let built = project.weft(&["build"]);
    assert!(built.status.success(), "{}", stderr(&built));
    let outcome = run_json(&project.weft(&["run", "--json"]), 0);
    assert_eq!(outcome["executed"], 7, "{outcome}");
    let table = stdout(&project.weft(&["artifacts", "get", "tables/rs.table"]));
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), 34);
    assert_eq!(&header[29..], ["f29", "target", "py", "js", "rs"]);
    let first: Vec<f64> = lines.next().unwrap().split(',').map(|v| v.parse().unwrap()).collect();
    assert_eq!(
        (first[0], first[31], first[32], first[33]),
        (17.99, 35.98, 36.98, 37.48)
    );
    assert_eq!(lines.count(), 568);
    let m = metrics(&project, "latest");
    assert!(m["evaluate"]["accuracy"] > 0.9, "{m:?}");
}

#[test]
fn a_parquet_file_written_by_pandas_reads_as_the_same_table_as_its_csv_twin() {
    let python = repo_root().join("target/pyenv/bin/python");
    assert!(
        python.exists(),
        "this test writes Parquet with pandas and pyarrow from target/pyenv: run `bash tests/run.sh`, which creates it"
    );
    let project = Project::new(
        "[pipeline]\nname = \"formats\"\n[inputs]\n\
         parquet = { path = \"wine.parquet\" }\ncsv = { path = \"wine.csv\", media_type = \"text/csv\" }\n\
         [steps.from_parquet]\nuses = \"ml/read-parquet\"\ninputs = { raw = \"inputs.parquet\" }\nparams = { target = \"cultivar\" }\n\
         [steps.from_csv]\nuses = \"ml/read-csv\"\ninputs = { raw = \"inputs.csv\" }\nparams = { target = \"cultivar\" }\n",
    );
    // The wine data with names, its cultivars as text, and a text feature;
    // the same frame as Snappy Parquet (pandas' default), as CSV, and as
    // zstd Parquet.
    let wine = repo_root().join("examples/wine/data/wine.csv");
    let script = format!(
        "import pandas as pd\n\
         names = ['alcohol', 'malic_acid', 'ash', 'alcalinity_of_ash', 'magnesium', 'total_phenols', 'flavanoids',\n\
         \x20        'nonflavanoid_phenols', 'proanthocyanins', 'color_intensity', 'hue', 'od280_od315', 'proline', 'cultivar']\n\
         df = pd.read_csv({wine:?}, skiprows=1, header=None, names=names)\n\
         df['cultivar'] = df['cultivar'].map({{0: 'barolo', 1: 'grignolino', 2: 'barbera'}})\n\
         df.insert(3, 'cask', ['oak', 'steel', 'chestnut'] * (len(df) // 3) + ['oak'] * (len(df) % 3))\n\
         df.to_parquet('wine.parquet', index=False)\n\
         df.to_csv('wine.csv', index=False)\n\
         df.to_parquet('wine.zstd.parquet', index=False, compression='zstd')\n"
    );
    let write_files = |project: &Project| {
        let written = Command::new(&python)
            .args(["-c", &script])
            .current_dir(project.path())
            .output()
            .unwrap();
        assert!(written.status.success(), "{}", stderr(&written));
    };
    write_files(&project);

    let outcome = run_json(&bare(&project, &["run", "--json"]).output().unwrap(), 0);
    assert_eq!(outcome["executed"], 2, "{outcome}");
    let get = |name: &str| stdout(&project.weft(&["artifacts", "get", name]));
    let (from_parquet, from_csv) = (get("formats/from_parquet.table"), get("formats/from_csv.table"));
    assert_eq!(from_parquet, from_csv);
    let header = from_parquet.lines().next().unwrap();
    assert!(
        header.starts_with("alcohol,malic_acid,ash,cask=chestnut,cask=oak,cask=steel,alcalinity_of_ash,"),
        "{header}"
    );
    assert!(header.ends_with(",proline,target"), "{header}");
    assert_eq!(from_parquet.lines().count(), 179);
    let classes: Vec<String> = project.run_detail("latest")["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["key"] == "classes")
        .map(|m| m["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(classes, [r#"["barbera","barolo","grignolino"]"#; 2]);

    // zstd is not built in: the step says so and what to write instead.
    let project = Project::new(
        "[pipeline]\nname = \"zstd\"\n[inputs]\ndata = { path = \"wine.zstd.parquet\" }\n\
         [steps.read]\nuses = \"ml/read-parquet\"\ninputs = { raw = \"inputs.data\" }\n",
    );
    write_files(&project);
    let outcome = run_json(&bare(&project, &["run", "--json"]).output().unwrap(), 1);
    let (status, error) = &errors(&outcome)["read"];
    assert_eq!(status, "failed");
    assert!(
        error.contains("cannot be read as Parquet") && error.contains("Snappy"),
        "{error}"
    );
}
