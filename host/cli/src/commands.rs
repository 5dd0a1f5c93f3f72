//! The subcommands.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use weft_artifacts::ArtifactKind;
use weft_pipeline::{
    Executor, ExecutorOptions, InputSource, Manifest, ModelRegistration, ParamOverride, Retry, RunHook, RunOptions,
    StepVerification, Verifier,
};
use weft_runtime::{Cancel, Runtime, RuntimeOptions};
use weft_store::{status, LineageNode};

use crate::context::{find_manifest, state_dir, CliError, CliResult, Stack, Stores};
use crate::progress::{format_duration, Progress};
use crate::remote::{Forwarder, Outbox, Reach, Remote};
use crate::{
    exit, ArtifactsCommand, Cli, Command, ModelsCommand, NewCommand, Page, PipelineCommand, PluginCommand, RunsCommand,
    ScheduleCommand, SecretCommand, StackCommand, StepCommand,
};

pub async fn dispatch(mut cli: Cli) -> CliResult<u8> {
    if !matches!(
        cli.command,
        Command::Stack(_) | Command::Secret(_) | Command::Plugin(_) | Command::Init { .. } | Command::New(_)
    ) {
        cli.stack = crate::stacks::resolve(&cli.stack)?;
    }
    match cli.command {
        Command::Plugin(command) => match command {
            PluginCommand::Install {
                path,
                allow,
                yes,
                config,
            } => crate::plugins::install(&path, &allow, yes, &config).await,
            PluginCommand::List { json } => crate::plugins::list(json),
            PluginCommand::Info { name } => crate::plugins::info(&name),
            PluginCommand::Config { name, values } => crate::plugins::configure(&name, &values),
            PluginCommand::Remove { name } => crate::plugins::remove(&name),
            PluginCommand::Convert {
                artifact,
                to,
                plugin,
                output,
            } => {
                cli.stack = crate::stacks::resolve(&cli.stack)?;
                let stores = Stores::open_existing(
                    &state_dir(cli.state_dir.as_deref(), cli.manifest.as_deref())?,
                    &cli.stack,
                )
                .await?;
                crate::plugins::convert(
                    &stores,
                    &cli.stack,
                    &artifact,
                    &to,
                    plugin.as_deref(),
                    output.as_deref(),
                )
                .await
            }
        },
        Command::Secret(command) => match command {
            SecretCommand::Set { name, from_env } => crate::secrets::set(&name, from_env.as_deref()),
            SecretCommand::List => crate::secrets::list(),
            SecretCommand::Delete { name } => crate::secrets::delete(&name),
        },
        Command::Stack(command) => match command {
            StackCommand::Create {
                name,
                db,
                artifacts,
                orchestrator,
                kubernetes,
                plugin_config,
                trust_imports,
            } => crate::stacks::create(crate::stacks::CreateArgs {
                name: &name,
                db,
                artifacts,
                orchestrator,
                plugin_config: &plugin_config,
                trust_imports,
                kubernetes: kubernetes.settings(),
            }),
            StackCommand::List => crate::stacks::list(),
            StackCommand::Use { name } => crate::stacks::use_stack(name.as_deref()),
            StackCommand::Show { name } => crate::stacks::show(name.as_deref()),
            StackCommand::Delete { name } => crate::stacks::delete(&name),
        },
        Command::Init { dir, name } => init(&dir, name),
        Command::New(NewCommand::Step { name, lang, dir }) => {
            let manifest = find_manifest(cli.manifest.as_deref())?;
            crate::new::new_step(&manifest, &name, lang, dir.as_deref())
        }
        Command::Build { steps } => build(cli.manifest.as_deref(), cli.state_dir.as_deref(), &steps).await,
        Command::Bundle {
            output,
            with_data,
            sign,
            json,
        } => bundle(
            cli.manifest.as_deref(),
            output.as_deref(),
            with_data,
            sign.as_deref(),
            json,
        ),
        Command::Run {
            bundle,
            require_signature,
            no_cache,
            params,
            max_parallel,
            json,
            detach,
            server,
            token,
        } => {
            if detach {
                let args = DetachArgs {
                    no_cache,
                    params: &params,
                    max_parallel,
                    json,
                };
                return detach_run(cli.manifest.as_deref(), cli.state_dir.as_deref(), &cli.stack, args).await;
            }
            if bundle.is_some() && cli.manifest.is_some() {
                return Err(CliError::usage(
                    "give either a bundle or --manifest, not both: a bundle holds its manifest",
                ));
            }
            let remote = match server {
                Some(url) => Some(Remote::connect(&url, token).await?),
                None => None,
            };
            run(
                cli.manifest.as_deref(),
                cli.state_dir.as_deref(),
                &cli.stack,
                RunArgs {
                    bundle: bundle.as_deref().map(|file| (file, require_signature.as_deref())),
                    no_cache,
                    params: &params,
                    max_parallel,
                    json,
                    remote,
                },
            )
            .await
        }
        Command::Push { server, token, json } => {
            let state = state_dir(cli.state_dir.as_deref(), cli.manifest.as_deref())?;
            push(&state, &cli.stack, server, token, json).await
        }
        Command::Runs(command) => {
            let stores = Stores::open_existing(
                &state_dir(cli.state_dir.as_deref(), cli.manifest.as_deref())?,
                &cli.stack,
            )
            .await?;
            match command {
                RunsCommand::List { pipeline, page } => runs_list(&stores, pipeline.as_deref(), &page).await,
                RunsCommand::Show { run, json } => runs_show(&stores, &run, json).await,
            }
        }
        Command::Artifacts(command) => {
            let stores = Stores::open_existing(
                &state_dir(cli.state_dir.as_deref(), cli.manifest.as_deref())?,
                &cli.stack,
            )
            .await?;
            match command {
                ArtifactsCommand::List { prefix, page } => artifacts_list(&stores, prefix.as_deref(), &page).await,
                ArtifactsCommand::Show { artifact, json } => artifacts_show(&stores, &artifact, json).await,
                ArtifactsCommand::Get { artifact, output } => {
                    artifacts_get(&stores, &artifact, output.as_deref()).await
                }
            }
        }
        Command::Lineage { artifact, json } => {
            let stores = Stores::open_existing(
                &state_dir(cli.state_dir.as_deref(), cli.manifest.as_deref())?,
                &cli.stack,
            )
            .await?;
            lineage(&stores, &artifact, json).await
        }
        Command::Models(command) => {
            let stores = Stores::open(
                &state_dir(cli.state_dir.as_deref(), cli.manifest.as_deref())?,
                &cli.stack,
            )
            .await?;
            match command {
                ModelsCommand::Register {
                    artifact,
                    file,
                    name,
                    alias,
                    served_by,
                } => {
                    let source = match (artifact, file) {
                        (_, Some(path)) => crate::models::Source::File(path),
                        (Some(key), None) => crate::models::Source::Artifact(key),
                        (None, None) => return Err(CliError::usage("name an artifact or give --file PATH")),
                    };
                    // A model server of weft's library, by name (ml/model-server).
                    let served_by = match served_by.as_deref().and_then(|p| p.to_str()) {
                        Some(name) if weft_library::model_server(name).is_some() => Some(
                            weft_pipeline::library_model_server("--served-by", name)
                                .map_err(|e| CliError::usage(e.to_string()))?,
                        ),
                        _ => served_by,
                    };
                    crate::models::register_command(&stores, &source, &name, alias.as_deref(), served_by.as_deref())
                        .await
                }
                ModelsCommand::Alias { name, alias, version } => {
                    crate::models::alias_command(&stores, &name, &alias, version).await
                }
                ModelsCommand::List { json } => crate::models::list_command(&stores, json).await,
                ModelsCommand::Show { name, json } => crate::models::show_command(&stores, &name, json).await,
            }
        }
        Command::Server {
            host,
            port,
            token,
            token_for_reads,
            allowed_hosts,
            cors_allowed_origins,
            serve_models,
            max_models,
        } => {
            let state = state_dir(cli.state_dir.as_deref(), cli.manifest.as_deref())?;
            let security = weft_server::Security {
                allowed_hosts: allowed_hosts.into_iter().filter(|h| !h.trim().is_empty()).collect(),
                allowed_origins: cors_allowed_origins
                    .into_iter()
                    .filter(|o| !o.trim().is_empty())
                    .collect(),
                token_for_reads,
            };
            server(
                &state,
                &cli.stack,
                std::net::SocketAddr::new(host, port),
                token,
                security,
                serve_models.then_some(max_models),
            )
            .await
        }
        Command::Serve {
            model,
            host,
            port,
            instances,
            memory,
            timeout,
            poll,
            max_request,
            component,
        } => {
            let state = state_dir(cli.state_dir.as_deref(), cli.manifest.as_deref())?;
            let mut limits = weft_serving::PoolLimits {
                memory_bytes: memory.as_u64(),
                timeout: timeout.into(),
                ..Default::default()
            };
            if let Some(n) = instances {
                limits.instances = n;
            }
            crate::serve::serve(crate::serve::ServeArgs {
                state: &state,
                stack: &cli.stack,
                model: &model,
                addr: std::net::SocketAddr::new(host, port),
                limits,
                poll: poll.into(),
                max_request_bytes: max_request.as_u64(),
                component,
            })
            .await
        }
        Command::Pipeline(PipelineCommand::Register) => {
            let stores = Stores::open(
                &state_dir(cli.state_dir.as_deref(), cli.manifest.as_deref())?,
                &cli.stack,
            )
            .await?;
            crate::triggers::register(cli.manifest.as_deref(), &stores).await
        }
        Command::Schedule(command) => {
            let stores = Stores::open(
                &state_dir(cli.state_dir.as_deref(), cli.manifest.as_deref())?,
                &cli.stack,
            )
            .await?;
            match command {
                ScheduleCommand::Create {
                    name,
                    pipeline,
                    cron,
                    params,
                    missed,
                } => {
                    crate::triggers::create(
                        &stores,
                        crate::triggers::NewScheduleArgs {
                            name: &name,
                            pipeline: &pipeline,
                            cron: &cron,
                            params: &params,
                            missed: &missed,
                        },
                    )
                    .await
                }
                ScheduleCommand::List { json } => crate::triggers::list(&stores, json).await,
                ScheduleCommand::Show { name, json } => crate::triggers::show(&stores, &name, json).await,
                ScheduleCommand::Pause { name } => crate::triggers::set_paused(&stores, &name, true).await,
                ScheduleCommand::Resume { name } => crate::triggers::set_paused(&stores, &name, false).await,
                ScheduleCommand::Delete { name } => crate::triggers::delete(&stores, &name).await,
            }
        }
        Command::Verify { run, steps, json } => {
            let state = state_dir(cli.state_dir.as_deref(), cli.manifest.as_deref())?;
            let stores = Stores::open_existing(&state, &cli.stack).await?;
            verify(&state, &stores, &run, &steps, json).await
        }
        Command::Step(StepCommand::Exec {
            step_run,
            retries,
            backoff_ms,
        }) => {
            let state = state_dir(cli.state_dir.as_deref(), cli.manifest.as_deref())?;
            let stores = Stores::open_existing(&state, &cli.stack).await?;
            let retry = Retry {
                max: retries,
                backoff: std::time::Duration::from_millis(backoff_ms),
            };
            crate::worker::exec(&state, &stores, &step_run, retry).await
        }
        Command::Logs { run, step } => {
            let stores = Stores::open_existing(
                &state_dir(cli.state_dir.as_deref(), cli.manifest.as_deref())?,
                &cli.stack,
            )
            .await?;
            let run = stores.store.run(&run).await?;
            let (_, logs) = stores.store.step_logs(&run.id, &step).await?;
            print!("{logs}");
            Ok(exit::OK)
        }
        Command::Library { json } => library(json),
    }
}

/// `weft library`: the ready-made steps embedded in this binary.
fn library(json: bool) -> CliResult<u8> {
    let steps = weft_library::all();
    if json {
        let list: Vec<_> = steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "kind": match s.kind {
                        weft_library::Kind::Step => "step",
                        weft_library::Kind::ModelServer => "model-server",
                    },
                    "summary": s.summary,
                    "inputs": s.inputs,
                    "outputs": s.outputs.iter().map(|(n, m)| serde_json::json!({"name": n, "media_type": m})).collect::<Vec<_>>(),
                    "params": s.params,
                    "digest": s.digest(),
                })
            })
            .collect();
        return print_json(&list);
    }
    for s in steps {
        let outputs: Vec<_> = s.outputs.iter().map(|(n, _)| *n).collect();
        let kind = match s.kind {
            weft_library::Kind::Step => "",
            weft_library::Kind::ModelServer => " (a model server: served_by = \"…\")",
        };
        println!("{:<24} {}{kind}", s.name, s.summary);
        println!(
            "{:<24} inputs: {}; outputs: {}",
            "",
            s.inputs.join(", "),
            outputs.join(", ")
        );
        if !s.params.is_empty() {
            println!("{:<24} params: {}", "", s.params.join("; "));
        }
        println!("{:<24} digest {}", "", &s.digest()[..16]);
    }
    println!(
        "\nUse one in weft.toml: [steps.NAME] uses = \"ml/random-forest\" with inputs = {{ train = \"split.train\" }}"
    );
    Ok(exit::OK)
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> CliResult<u8> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::usage(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(exit::OK)
}

fn load_manifest(explicit: Option<&Path>) -> CliResult<(std::path::PathBuf, Manifest)> {
    let path = find_manifest(explicit)?;
    let manifest = Manifest::load(&path).map_err(|e| CliError::usage(format!("invalid manifest: {e}")))?;
    Ok((path, manifest))
}

/// A cancellation flag set by Ctrl-C (SIGINT), which the orchestrators send to cancel a step.
/// Not by SIGTERM: Slurm's `scancel`, a time limit, a preempted job or an
/// evicted pod end the worker with it, and the run then treats the step's
/// worker as lost (retried by the step's policy) unless it is cancelling.
pub(crate) fn cancelled_by_ctrl_c() -> Cancel {
    let cancel = Cancel::default();
    let set = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            set.cancel();
        }
    });
    cancel
}

pub(crate) fn open_runtime(state: &Path) -> CliResult<Runtime> {
    Runtime::new(runtime_options(&state.join("cache").join("compiled"))?).map_err(|e| CliError::usage(e.to_string()))
}

/// Components compile in a child process of this executable, under the
/// compile budget (see weft_runtime::compile): by default 4 GiB of address
/// space and 300 s; `WEFT_COMPILE_MEMORY` (e.g. `8GiB`) and
/// `WEFT_COMPILE_TIME` (e.g. `10m`) change it.
pub fn runtime_options(cache_dir: &Path) -> CliResult<RuntimeOptions> {
    let mut options = RuntimeOptions::in_process(cache_dir.to_owned());
    let mut budget = weft_runtime::CompileBudget::default();
    if let Some(text) = std::env::var("WEFT_COMPILE_MEMORY").ok().filter(|t| !t.is_empty()) {
        let size: bytesize::ByteSize = text
            .parse()
            .map_err(|e| CliError::usage(format!("WEFT_COMPILE_MEMORY={text}: {e} (e.g. 4GiB)")))?;
        budget.memory_bytes = size.as_u64();
    }
    if let Some(text) = std::env::var("WEFT_COMPILE_TIME").ok().filter(|t| !t.is_empty()) {
        let time = humantime::parse_duration(&text)
            .map_err(|e| CliError::usage(format!("WEFT_COMPILE_TIME={text}: {e} (e.g. 5m)")))?;
        budget.cpu = time;
        budget.wall = time;
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::usage(format!("cannot find the weft executable to compile with: {e}")))?;
    options.compiler = weft_runtime::Compiler::Child { exe, budget };
    Ok(options)
}

const TEMPLATE: &str = r#"# A weft pipeline. See the README for every key.
[pipeline]
name = "NAME"

# External data, ingested (and hashed) as artifacts:
# [inputs]
# raw = { path = "data/raw.csv", media_type = "text/csv" }

# A step is a WebAssembly component built against wit/step (world `step`):
# [steps.clean]
# component = "target/wasm32-wasip2/release/clean.wasm"
# build = "cargo build --release --target wasm32-wasip2 -p clean"
# inputs = { data = "inputs.raw" }
# outputs = ["clean"]
# params = { drop_nulls = true }
# limits = { memory = "256MiB", timeout = "1m" }
# retry = { max = 2, backoff = "1s" }
"#;

fn init(dir: &Path, name: Option<String>) -> CliResult<u8> {
    std::fs::create_dir_all(dir).map_err(|e| CliError::usage(format!("cannot create {}: {e}", dir.display())))?;
    let manifest = dir.join("weft.toml");
    if manifest.exists() {
        return Err(CliError::usage(format!(
            "{} already exists; not overwriting it",
            manifest.display()
        )));
    }
    let name = match name {
        Some(n) => n,
        None => dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "pipeline".into()),
    };
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    std::fs::write(&manifest, TEMPLATE.replace("NAME", &name))
        .map_err(|e| CliError::usage(format!("cannot write {}: {e}", manifest.display())))?;
    std::fs::create_dir_all(dir.join(".weft")).map_err(|e| CliError::usage(format!("cannot create .weft: {e}")))?;
    let gitignore = dir.join(".gitignore");
    let existing = std::fs::read_to_string(&gitignore).unwrap_or_default();
    if !existing.lines().any(|l| l.trim() == ".weft/") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&gitignore)
            .map_err(|e| CliError::usage(format!("cannot write .gitignore: {e}")))?;
        let _ = writeln!(f, ".weft/");
    }
    eprintln!(
        "created {} (pipeline '{name}'); add steps, then `weft build` and `weft run`",
        manifest.display()
    );
    Ok(exit::OK)
}

async fn build(manifest: Option<&Path>, state: Option<&Path>, steps: &[String]) -> CliResult<u8> {
    let (path, manifest) = load_manifest(manifest)?;
    for step in steps {
        if manifest.step(step).is_none() {
            return Err(CliError::usage(format!("no step named '{step}' in {}", path.display())));
        }
    }
    let built = {
        let manifest = manifest.clone();
        let steps = steps.to_vec();
        let toolchains = crate::context::toolchains_dir()?;
        tokio::task::spawn_blocking(move || weft_pipeline::build_steps(&manifest, &steps, &toolchains))
            .await
            .map_err(|e| CliError::usage(e.to_string()))?
            .map_err(|e| CliError {
                code: exit::RUN_FAILED,
                message: e.to_string(),
            })?
    };
    // Check every component fits the step world and warm the compiled cache.
    let state = state_dir(state, Some(&path))?;
    let runtime = open_runtime(&state)?;
    let mut failed = false;
    for step in &manifest.steps {
        if !steps.is_empty() && !steps.contains(&step.name) {
            continue;
        }
        let runtime = runtime.clone();
        let component = step.component.clone();
        // Compiling a large component (Python, JavaScript) takes seconds:
        // a spinner says what is going on (on a terminal only).
        let size = std::fs::metadata(&component).map(|m| m.len()).unwrap_or(0);
        let spinner = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        spinner.set_style(
            indicatif::ProgressStyle::with_template("  {spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        spinner.set_message(format!(
            "{}: loading or compiling its component ({:.1} MB)",
            step.name,
            size as f64 / 1e6
        ));
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        let result = tokio::task::spawn_blocking(move || runtime.load(&component))
            .await
            .map_err(|e| CliError::usage(e.to_string()))?;
        spinner.finish_and_clear();
        match result {
            Ok(loaded) => eprintln!(
                "  ✓ {} {} ({}, {})",
                step.name,
                &loaded.digest()[..12],
                if loaded.compiled_from_cache() {
                    "compiled earlier"
                } else {
                    "compiled"
                },
                format_duration(loaded.load_time())
            ),
            Err(e) => {
                failed = true;
                eprintln!("  ✗ {}: {e}", step.name);
            }
        }
    }
    eprintln!("built {} step(s)", built.len());
    Ok(if failed { exit::RUN_FAILED } else { exit::OK })
}

/// What `weft run` was asked, beyond where the stores are.
struct RunArgs<'a> {
    /// A bundle to run instead of the manifest, and the key it must be
    /// signed by.
    bundle: Option<(&'a Path, Option<&'a Path>)>,
    no_cache: bool,
    params: &'a [String],
    max_parallel: Option<usize>,
    json: bool,
    /// The server to send the run to, and whether it answered.
    remote: Option<(Remote, Reach)>,
}

/// The manifest of a run with its `-p` overrides applied, checked (its
/// files exist, `--max-parallel` is at least 1).
fn load_run_manifest(
    manifest: Option<&Path>,
    params: &[String],
    max_parallel: Option<usize>,
) -> CliResult<(std::path::PathBuf, Manifest)> {
    let (path, manifest) = load_manifest(manifest)?;
    Ok((path, prepare_manifest(manifest, params, max_parallel)?))
}

/// `manifest` with its `-p` overrides applied, checked.
fn prepare_manifest(mut manifest: Manifest, params: &[String], max_parallel: Option<usize>) -> CliResult<Manifest> {
    let overrides: Vec<ParamOverride> = params
        .iter()
        .map(|p| p.parse().map_err(|e| CliError::usage(format!("-p {p}: {e}"))))
        .collect::<Result<_, _>>()?;
    manifest
        .apply_overrides(&overrides)
        .map_err(|e| CliError::usage(format!("invalid param: {e}")))?;
    manifest
        .check_files()
        .map_err(|e| CliError::usage(format!("invalid manifest: {e}")))?;
    if max_parallel == Some(0) {
        return Err(CliError::usage("--max-parallel must be at least 1"));
    }
    Ok(manifest)
}

/// `weft bundle`: writes the pipeline of the manifest into one file.
fn bundle(
    manifest: Option<&Path>,
    output: Option<&Path>,
    with_data: bool,
    sign: Option<&Path>,
    json: bool,
) -> CliResult<u8> {
    let key = sign
        .map(weft_pipeline::bundle::SigningKey::load)
        .transpose()
        .map_err(|e| CliError::usage(format!("cannot sign: {e}")))?;
    let path = find_manifest(manifest)?;
    let out = match output {
        Some(out) => out.to_owned(),
        None => {
            let manifest = Manifest::load(&path).map_err(|e| CliError::usage(format!("invalid manifest: {e}")))?;
            std::path::PathBuf::from(format!("{}.weft", manifest.name))
        }
    };
    let written = weft_pipeline::bundle::write(&path, &out, with_data, key.as_ref())
        .map_err(|e| CliError::usage(format!("cannot bundle: {e}")))?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let header = &written.header;
    eprintln!(
        "bundled pipeline '{}' into {} ({}): {} component{}, {} input file{}, digest {}",
        header.pipeline,
        out.display(),
        bytesize::ByteSize::b(size).display().si(),
        header.pins.components.len(),
        if header.pins.components.len() == 1 { "" } else { "s" },
        header.pins.inputs.len(),
        if header.pins.inputs.len() == 1 { "" } else { "s" },
        written.digest
    );
    if let Some(key) = &written.signed_by {
        eprintln!("signed by {key}");
    }
    if json {
        print_json(&json!({
            "path": out,
            "digest": written.digest,
            "pipeline": header.pipeline,
            "bytes": size,
            "signed_by": written.signed_by,
            "components": header.pins.components,
            "inputs": header.pins.inputs.iter().map(|(k, v)| (k.clone(), v.digest.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        }))?;
    }
    Ok(exit::OK)
}

/// Opens the bundle `file` for a run whose state is in `state`: checks it
/// whole, places its blobs in a directory under `state` that lives as
/// long as the returned guard, and gives its manifest with the `-p`
/// overrides applied. External inputs it does not hold are read from
/// this directory.
fn open_bundle(
    file: &Path,
    require: Option<&Path>,
    state: &Path,
    params: &[String],
    max_parallel: Option<usize>,
) -> CliResult<(tempfile::TempDir, Manifest)> {
    let require = require
        .map(weft_pipeline::bundle::PublicKey::load)
        .transpose()
        .map_err(|e| CliError::usage(format!("--require-signature: {e}")))?;
    let parent = state.join("bundles");
    std::fs::create_dir_all(&parent)
        .map_err(|e| CliError::usage(format!("cannot create {}: {e}", parent.display())))?;
    let dir = tempfile::Builder::new()
        .prefix("open-")
        .tempdir_in(&parent)
        .map_err(|e| CliError::usage(format!("cannot create a directory in {}: {e}", parent.display())))?;
    let root = std::env::current_dir().map_err(|e| CliError::usage(format!("no current directory: {e}")))?;
    let (bundle, manifest) = weft_pipeline::bundle::open(file, dir.path(), &root, require.as_ref())
        .map_err(|e| CliError::usage(e.to_string()))?;
    eprintln!(
        "bundle {} of pipeline '{}' (digest {}, written by weft {})",
        file.display(),
        bundle.header.pipeline,
        bundle.digest,
        bundle.header.weft
    );
    match &bundle.signed_by {
        Some(key) => eprintln!("signed by {key}{}", if require.is_some() { " (required)" } else { "" }),
        None => eprintln!("not signed"),
    }
    Ok((dir, prepare_manifest(manifest, params, max_parallel)?))
}

/// What `weft run --detach` was asked.
struct DetachArgs<'a> {
    no_cache: bool,
    params: &'a [String],
    max_parallel: Option<usize>,
    json: bool,
}

/// `weft run --detach`: checks the manifest and the params here, then
/// submits `weft run` itself as a Slurm job on the same stack and state
/// and returns; that job hands each step to Slurm as a foreground run does.
async fn detach_run(
    manifest: Option<&Path>,
    state: Option<&Path>,
    stack: &Stack,
    args: DetachArgs<'_>,
) -> CliResult<u8> {
    if stack.orchestrator.as_deref() != Some(crate::slurm::SLURM) {
        return Err(CliError::usage(
            "--detach needs a stack whose orchestrator is slurm, where the run can go on without this process \
             (weft stack create NAME --orchestrator slurm; weft run --stack NAME --detach)",
        ));
    }
    let (path, manifest) = load_run_manifest(manifest, args.params, args.max_parallel)?;
    let path = std::path::absolute(&path).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
    let state = state_dir(state, Some(&path))?;
    let worker = crate::worker::WorkerCommand::new(&state, stack)?;
    let mut run_args: Vec<std::ffi::OsString> = vec!["--manifest".into(), path.into()];
    if args.no_cache {
        run_args.push("--no-cache".into());
    }
    for param in args.params {
        run_args.extend(["-p".into(), param.into()]);
    }
    if let Some(n) = args.max_parallel {
        run_args.extend(["--max-parallel".into(), n.to_string().into()]);
    }
    let (job, log) = crate::slurm::submit_run(&worker, &state, &manifest.name, &run_args)
        .await
        .map_err(|e| CliError::usage(format!("cannot submit the run: {e}")))?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "pipeline": manifest.name, "slurm_job": job, "log": log })
        );
    } else {
        eprintln!(
            "submitted the run of {} as Slurm job {job} (its output: {}); follow it with `weft runs show latest`",
            manifest.name,
            log.display()
        );
    }
    Ok(exit::OK)
}

/// Whether a run on `stack` in `state` starts with nothing recorded, so
/// that no step can be a cache hit: its SQLite database does not exist
/// yet. A shared database (PostgreSQL) is not asked: it counts as new.
fn expects_no_cache_hit(state: &Path, stack: &Stack) -> bool {
    match stack.db.as_deref() {
        None => !state.join("weft.db").exists(),
        Some(url) if url.contains("://") && !url.starts_with("sqlite://") => true,
        Some(url) => !Path::new(url.strip_prefix("sqlite://").unwrap_or(url)).exists(),
    }
}

async fn run(manifest: Option<&Path>, state: Option<&Path>, stack: &Stack, args: RunArgs<'_>) -> CliResult<u8> {
    let RunArgs {
        bundle,
        no_cache,
        params,
        max_parallel,
        json,
        remote,
    } = args;
    // A bundle's files stay where it was opened until the run ends.
    let (state, manifest, _opened) = match bundle {
        Some((file, require)) => {
            let state = state.map(Path::to_owned).unwrap_or_else(|| ".weft".into());
            let (opened, manifest) = open_bundle(file, require, &state, params, max_parallel)?;
            (state, manifest, Some(opened))
        }
        None => {
            let (path, manifest) = load_run_manifest(manifest, params, max_parallel)?;
            (state_dir(state, Some(&path))?, manifest, None)
        }
    };
    let runtime = open_runtime(&state)?;
    let dispatchers = crate::worker::dispatchers(&state, stack)?;
    crate::worker::check_step_orchestrators(&dispatchers, &manifest)?;
    // In a new state nothing can be a cache hit: the engine starts, and
    // the compiled component of the step that runs first (the first that
    // reads no other step's output) loads, while the stores open and the
    // run is recorded. In a state with a history the first steps are
    // likely cache hits, which need no engine: it starts with the first
    // step that executes here (a few milliseconds then, against a
    // quarter of a fully cached rerun's CPU time spent for nothing).
    if dispatchers.default.is_none() && expects_no_cache_hit(&state, stack) {
        let first = manifest
            .steps
            .iter()
            .find(|s| s.inputs.iter().all(|(_, src)| matches!(src, InputSource::External(_))));
        runtime.start_in_background(first.map(|s| s.component.clone()));
    }
    let stores = Stores::open(&state, stack).await?;
    let executor = Executor::new(
        runtime.clone(),
        stores.store.clone(),
        stores.artifacts.clone(),
        ExecutorOptions {
            work_dir: state.join("work"),
            max_parallel,
            trust_imported: stack.trust_imports,
            secrets: crate::secrets::open().ok(),
            dispatchers,
        },
    );
    let cancel = Cancel::default();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ncancelling: stopping running steps (Ctrl-C again to force quit)");
                cancel.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(exit::CANCELLED as i32);
                }
            }
        });
    }
    let mut hooks: Vec<Arc<dyn RunHook>> = Vec::new();
    if manifest.uses_plugins() {
        let (home, host) = crate::plugins::open(Some(runtime))?;
        let plugins = weft_pipeline::Plugins::new(host, home, stack.plugin_config.clone(), crate::secrets::open().ok());
        let plugin_hooks = plugins.hooks(&manifest).map_err(|e| CliError {
            code: exit::USAGE,
            message: e.to_string(),
        })?;
        hooks.push(Arc::new(plugin_hooks));
    }
    hooks.push(Arc::new(ModelRegistration));
    let unregistered = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let progress = Arc::new(Progress::new(false));
    let outbox = Outbox::new(&state);
    let online = match &remote {
        Some((remote, Reach::Online)) => Some(remote),
        _ => None,
    };
    match &remote {
        Some((remote, Reach::Online)) => send_queued(remote, &stores, &outbox).await,
        Some((remote, Reach::Offline(why))) => eprintln!(
            "{} cannot be reached ({why}): the run goes on here, and waits to be sent",
            remote.url()
        ),
        None => {}
    }
    let forwarder =
        online.map(|remote| Forwarder::start(remote.clone(), stores.store.clone(), stores.artifacts.clone()));
    let options = RunOptions {
        no_cache,
        cancel,
        on_event: {
            let progress = progress.clone();
            let events = forwarder.as_ref().map(|f| f.events.clone());
            let unregistered = unregistered.clone();
            Arc::new(move |event| {
                if let Some(events) = &events {
                    let _ = events.send(Some(event.clone()));
                }
                if matches!(event, weft_pipeline::Event::ModelNotRegistered { .. }) {
                    unregistered.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                progress.handle(event)
            })
        },
        hooks,
    };
    let result = executor.run(&manifest, options).await;
    if let Some(forwarder) = forwarder {
        forwarder.finish().await;
    }
    let outcome = result.map_err(|e| CliError {
        code: exit::RUN_FAILED,
        message: e.to_string(),
    })?;

    let executed = outcome.executed();
    let cached = outcome.cached();
    let mut summary = format!(
        "run #{} {} in {}: {} executed, {} cached",
        outcome.number,
        outcome.status,
        format_duration(outcome.duration),
        executed,
        cached
    );
    if executed == 0 && cached == outcome.steps.len() {
        summary.push_str(" (all cache hits, nothing executed)");
    }
    eprintln!("{summary}");
    eprintln!("run id {}", outcome.run_id);
    if let Some((remote, reach)) = &remote {
        let sent = match reach {
            Reach::Online => remote.send_run(&stores.store, &stores.artifacts, &outcome.run_id).await,
            Reach::Offline(why) => Err(why.clone()),
        };
        match sent {
            Ok(()) => eprintln!("sent to {}", remote.url()),
            Err(e) => {
                outbox.queue(&outcome.run_id, remote.url(), &e).map_err(|q| CliError {
                    code: exit::RUN_FAILED,
                    message: format!(
                        "the run finished here (run id {}) but could not be sent to {} ({e}) nor queued: {q}",
                        outcome.run_id,
                        remote.url()
                    ),
                })?;
                if crate::remote::is_refusal(&e) {
                    return Err(CliError {
                        code: exit::RUN_FAILED,
                        message: format!(
                            "the run finished here (run id {}) but could not be sent to {}: {e}; \
                             it is queued: `weft push {}` (with what the server needs) sends it",
                            outcome.run_id,
                            remote.url(),
                            remote.url()
                        ),
                    });
                }
                eprintln!(
                    "{} could not be reached ({e}): the run is recorded here and queued; \
                     `weft push` sends it, and so does the next `weft run --server`",
                    remote.url()
                );
            }
        }
    }
    if json {
        print_json(&json!({
            "run_id": outcome.run_id,
            "number": outcome.number,
            "status": outcome.status,
            "executed": executed,
            "cached": cached,
            "duration_ms": outcome.duration.as_secs_f64() * 1000.0,
            "steps": outcome.steps.iter().map(|s| json!({
                "name": s.name,
                "status": s.status,
                "duration_ms": s.duration.as_secs_f64() * 1000.0,
                "error": s.error,
                "cached_from": s.cached_from,
            })).collect::<Vec<_>>(),
        }))?;
    }
    if unregistered.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(CliError {
            code: exit::RUN_FAILED,
            message: format!(
                "run {} succeeded, but a model under [models] could not be registered (see above)",
                outcome.run_id
            ),
        });
    }
    Ok(match outcome.status.as_str() {
        status::SUCCEEDED => exit::OK,
        status::CANCELLED => exit::CANCELLED,
        _ => exit::RUN_FAILED,
    })
}

/// Sends the runs queued for `remote` before a run starts; what still
/// cannot be sent stays queued, with a warning.
async fn send_queued(remote: &Remote, stores: &Stores, outbox: &Outbox) {
    let queued = match outbox.list(Some(remote.url())) {
        Ok(queued) if !queued.is_empty() => queued,
        Ok(_) => return,
        Err(e) => {
            eprintln!("warning: the outbox: {e}");
            return;
        }
    };
    match crate::remote::push(remote, &stores.store, &stores.artifacts, outbox, &queued).await {
        Ok(pushed) => {
            if !pushed.sent.is_empty() {
                eprintln!("sent {} queued run(s) to {}", pushed.sent.len(), remote.url());
            }
            if let Some((run, why)) = pushed.failed.first() {
                eprintln!(
                    "warning: {} queued run(s) still wait (run {run}: {why})",
                    pushed.failed.len()
                );
            }
        }
        Err(e) => eprintln!("warning: the outbox: {e}"),
    }
}

/// `weft push [URL]`: sends the queued runs.
async fn push(state: &Path, stack: &Stack, server: Option<String>, token: Option<String>, json: bool) -> CliResult<u8> {
    let outbox = Outbox::new(state);
    let queued = outbox.list(None).map_err(CliError::usage)?;
    if queued.is_empty() {
        eprintln!(
            "nothing to push: no run is waiting in {}",
            state.join("outbox").display()
        );
        if json {
            print_json(&crate::remote::Pushed::default())?;
        }
        return Ok(exit::OK);
    }
    let stores = Stores::open_existing(state, stack).await?;
    // Each run to its own server, or all to the one given.
    let mut by_server: std::collections::BTreeMap<String, Vec<crate::remote::Queued>> = Default::default();
    for q in queued {
        let to = server.clone().unwrap_or_else(|| q.server.clone());
        by_server.entry(to).or_default().push(q);
    }
    let mut total = crate::remote::Pushed::default();
    for (url, runs) in by_server {
        let (remote, reach) = Remote::connect(&url, token.clone()).await?;
        let pushed = match reach {
            Reach::Offline(why) => crate::remote::Pushed {
                failed: runs.iter().map(|q| (q.run_id.clone(), why.clone())).collect(),
                ..Default::default()
            },
            Reach::Online => crate::remote::push(&remote, &stores.store, &stores.artifacts, &outbox, &runs)
                .await
                .map_err(CliError::usage)?,
        };
        for id in &pushed.sent {
            match stores.store.run(id).await {
                Ok(run) => eprintln!("sent run #{} of {} ({id}) to {url}", run.number, run.pipeline),
                Err(_) => eprintln!("sent run {id} to {url}"),
            }
        }
        for (id, why) in &pushed.failed {
            eprintln!("not sent: run {id} to {url}: {why}");
        }
        total.sent.extend(pushed.sent);
        total.failed.extend(pushed.failed);
        total.blobs += pushed.blobs;
        total.bytes += pushed.bytes;
    }
    eprintln!(
        "sent {} run(s) with {} new blob(s) ({}); {} still queued",
        total.sent.len(),
        total.blobs,
        bytesize::ByteSize::b(total.bytes).display().si(),
        total.failed.len()
    );
    if json {
        print_json(&total)?;
    }
    Ok(if total.failed.is_empty() {
        exit::OK
    } else {
        exit::RUN_FAILED
    })
}

/// `weft verify RUN`: re-executes the run's step runs and compares outputs.
async fn verify(state: &Path, stores: &Stores, run: &str, steps: &[String], json: bool) -> CliResult<u8> {
    let runtime = open_runtime(state)?;
    let verifier = Verifier::new(
        runtime,
        stores.store.clone(),
        stores.artifacts.clone(),
        &state.join("work"),
    )
    .with_secrets(crate::secrets::open().ok());
    let run = stores.store.run(run).await?;
    eprintln!("verifying run #{} of {} ({})", run.number, run.pipeline, run.id);
    let cancel = cancelled_by_ctrl_c();
    let width = stores
        .store
        .step_runs(&run.id)
        .await?
        .iter()
        .map(|s| s.step_name.len())
        .max()
        .unwrap_or(8);
    let results = verifier
        .verify_run(&run.id, steps, &cancel, &|v: &StepVerification| {
            let symbol = match v.outcome.as_str() {
                "match" => "✓",
                "mismatch" => "✗",
                "error" => "!",
                _ => "○",
            };
            let mut line = format!("  {symbol} {:width$} {:9}", v.step, v.outcome);
            match &v.message {
                Some(message) => line.push_str(&format!(" {message}")),
                None => line.push_str(&format!(
                    " {} output{} the same",
                    v.outputs.len(),
                    if v.outputs.len() == 1 { "" } else { "s" }
                )),
            }
            for o in v
                .outputs
                .iter()
                .filter(|o| o.now.as_deref() != Some(o.recorded.as_str()))
            {
                line.push_str(&format!(
                    "\n      {}: recorded {}, now {}",
                    o.name,
                    &o.recorded[..o.recorded.len().min(16)],
                    o.now.as_deref().map(|d| &d[..d.len().min(16)]).unwrap_or("nothing")
                ));
            }
            eprintln!("{line}");
        })
        .await
        .map_err(|e| CliError {
            code: exit::USAGE,
            message: e.to_string(),
        })?;
    let count = |outcome: &str| results.iter().filter(|v| v.outcome == outcome).count();
    let (matched, mismatched, errors) = (count("match"), count("mismatch"), count("error"));
    eprintln!(
        "{matched} matched, {mismatched} mismatched, {errors} could not be re-executed, {} not verifiable",
        count(weft_pipeline::VERIFY_SKIPPED)
    );
    if json {
        print_json(&json!({
            "run_id": run.id,
            "matched": matched,
            "mismatched": mismatched,
            "errors": errors,
            "steps": results.iter().map(|v| json!({
                "step": v.step,
                "step_run_id": v.step_run_id,
                "outcome": v.outcome,
                "message": v.message,
                "outputs": v.outputs,
            })).collect::<Vec<_>>(),
        }))?;
    }
    Ok(if mismatched > 0 || errors > 0 || cancel.is_cancelled() {
        exit::RUN_FAILED
    } else {
        exit::OK
    })
}

pub(crate) fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn took(start: Option<i64>, end: Option<i64>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format_duration(std::time::Duration::from_millis((e - s).max(0) as u64)),
        (Some(_), None) => "running".into(),
        _ => "-".into(),
    }
}

async fn runs_list(stores: &Stores, pipeline: Option<&str>, page: &Page) -> CliResult<u8> {
    let json = page.json;
    let runs = stores
        .store
        .runs(pipeline, None, page.limit.clamp(1, 10_000), page.offset.max(0))
        .await?;
    if json {
        return print_json(&runs);
    }
    println!(
        "{:<36}  {:<16} {:>4}  {:<10} {:<20}  {:>9}",
        "RUN", "PIPELINE", "#", "STATUS", "STARTED", "TOOK"
    );
    for r in runs {
        println!(
            "{:<36}  {:<16} {:>4}  {:<10} {:<20}  {:>9}",
            r.id,
            r.pipeline,
            r.number,
            r.status,
            time(r.started_at),
            took(Some(r.started_at), r.ended_at)
        );
    }
    Ok(exit::OK)
}

async fn runs_show(stores: &Stores, key: &str, json: bool) -> CliResult<u8> {
    let detail = stores.store.run_detail(key).await?;
    if json {
        return print_json(&detail);
    }
    let r = &detail.run;
    println!("run {} — {} #{} — {}", r.id, r.pipeline, r.number, r.status);
    println!(
        "started {}  took {}",
        time(r.started_at),
        took(Some(r.started_at), r.ended_at)
    );
    if let Some(e) = &r.error {
        println!("error: {e}");
    }
    if !detail.inputs.is_empty() {
        println!("\ninputs:");
        for i in &detail.inputs {
            println!(
                "  {:<12} {}:{}  {}  {} bytes",
                i.slot,
                i.artifact.name,
                i.artifact.version,
                &i.artifact.digest[..12],
                i.artifact.size
            );
        }
    }
    println!("\nsteps:");
    for s in &detail.steps {
        // A cached step shows what its original step run logged.
        let source = s.cached_from.as_deref().unwrap_or(&s.id);
        let mut line = format!(
            "  {:<12} {:<10} {:>9}  attempts {}",
            s.step_name,
            s.status,
            took(s.started_at, s.ended_at),
            s.attempts
        );
        if let Some(from) = &s.cached_from {
            line.push_str(&format!("  cached from step run {from}"));
        }
        if s.determinism.as_deref() == Some("real") {
            line.push_str("  nondeterministic (real time and randomness)");
        }
        if s.origin != "local" {
            line.push_str(&format!("  {}", s.origin));
        }
        if let Some(v) = detail.verifications.iter().rev().find(|v| v.step_run_id == s.id) {
            line.push_str(&format!("  verified: {}", v.outcome));
        }
        println!("{line}");
        println!("      params {}", s.params);
        if let Some(e) = &s.error {
            println!("      error: {e}");
        }
        // One line per metric key: its last value, and the size of its
        // history (`--json` has every point).
        let mut metrics: Vec<(&str, Vec<&weft_store::Metric>)> = Vec::new();
        for m in detail.metrics.iter().filter(|m| m.step_run_id == source) {
            match metrics.iter_mut().find(|(k, _)| *k == m.key) {
                Some((_, points)) => points.push(m),
                None => metrics.push((&m.key, vec![m])),
            }
        }
        for (key, points) in metrics {
            let last = points[points.len() - 1];
            match (points.len(), last.step) {
                (1, None) => println!("      metric {key} = {}", last.value),
                (1, Some(step)) => println!("      metric {key} = {} (step {step})", last.value),
                (n, step) => println!(
                    "      metric {key} = {} (last of {n} points{})",
                    last.value,
                    step.map(|s| format!(", step {s}")).unwrap_or_default()
                ),
            }
        }
        for p in detail.params.iter().filter(|p| p.step_run_id == source) {
            println!("      param {} = {}", p.key, p.value);
        }
        for t in detail.tags.iter().filter(|t| t.step_run_id == source) {
            println!("      tag {} = {}", t.key, t.value);
        }
        for o in stores.store.step_run_outputs(&s.id).await? {
            println!(
                "      output {} -> {}:{} ({})",
                o.slot, o.artifact.name, o.artifact.version, &o.artifact.id
            );
        }
    }
    Ok(exit::OK)
}

async fn artifacts_list(stores: &Stores, prefix: Option<&str>, page: &Page) -> CliResult<u8> {
    let json = page.json;
    let artifacts = stores
        .store
        .artifacts(prefix, page.limit.clamp(1, 10_000), page.offset.max(0))
        .await?;
    if json {
        return print_json(&artifacts);
    }
    println!(
        "{:<36}  {:<28} {:>4}  {:<12} {:>10}  MEDIA TYPE",
        "ID", "NAME", "VER", "DIGEST", "SIZE"
    );
    for a in artifacts {
        println!(
            "{:<36}  {:<28} {:>4}  {:<12} {:>10}  {}",
            a.id,
            a.name,
            a.version,
            &a.digest[..12],
            a.size,
            a.media_type
        );
    }
    Ok(exit::OK)
}

async fn artifacts_show(stores: &Stores, key: &str, json: bool) -> CliResult<u8> {
    let a = stores.store.artifact(key).await?;
    let producer = match &a.producer_step_run_id {
        Some(id) => Some(stores.store.step_run(id).await?),
        None => None,
    };
    let kind = ArtifactKind::parse(&a.kind).unwrap_or(ArtifactKind::File);
    let present = stores.artifacts.contains(&a.digest, kind).await.unwrap_or(false);
    if json {
        return print_json(&json!({ "artifact": a, "producer": producer, "bytes_present": present }));
    }
    println!("{}:{}  ({})", a.name, a.version, a.id);
    println!("  digest      blake3:{}", a.digest);
    println!("  kind        {}  {} bytes  {}", a.kind, a.size, a.media_type);
    println!("  created     {}", time(a.created_at));
    match &producer {
        Some(p) => println!(
            "  produced by step '{}' of run {} (component {})",
            p.step_name,
            p.run_id,
            p.component_digest.as_deref().map(|d| &d[..12]).unwrap_or("?")
        ),
        None => println!("  source      {}", a.source_uri.as_deref().unwrap_or("external data")),
    }
    if !present {
        println!("  warning: its bytes are no longer in the artifact store");
    }
    Ok(exit::OK)
}

async fn artifacts_get(stores: &Stores, key: &str, output: Option<&Path>) -> CliResult<u8> {
    let a = stores.store.artifact(key).await?;
    let kind = ArtifactKind::parse(&a.kind).unwrap_or(ArtifactKind::File);
    match output {
        Some(path) => {
            if path.exists() {
                return Err(CliError::usage(format!(
                    "{} already exists; not overwriting it",
                    path.display()
                )));
            }
            stores.artifacts.export(&a.digest, kind, path).await?;
            eprintln!("wrote {}:{} to {}", a.name, a.version, path.display());
        }
        None => {
            if kind == ArtifactKind::Dir {
                return Err(CliError::usage(format!("{} is a directory; pass -o DIR", a.name)));
            }
            let bytes = stores.artifacts.get_bytes(&a.digest).await?;
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| CliError::usage(format!("cannot write to stdout: {e}")))?;
        }
    }
    Ok(exit::OK)
}

async fn lineage(stores: &Stores, key: &str, json: bool) -> CliResult<u8> {
    let node = stores.store.lineage(key).await?;
    if json {
        return print_json(&node);
    }
    fn print(node: &LineageNode, depth: usize, slot: Option<&str>) {
        let indent = "    ".repeat(depth);
        let a = &node.artifact;
        let via = slot.map(|s| format!("[{s}] ")).unwrap_or_default();
        println!(
            "{indent}{via}{}:{}  blake3:{}  {} bytes",
            a.name,
            a.version,
            &a.digest[..16],
            a.size
        );
        if node.repeated {
            println!("{indent}  └─ (its lineage is shown above)");
            return;
        }
        if node.truncated {
            println!(
                "{indent}  └─ … the walk stops here: lineage deeper than {} levels or larger than {} artifacts",
                weft_store::LINEAGE_MAX_DEPTH,
                weft_store::LINEAGE_MAX_NODES
            );
            return;
        }
        match &node.producer {
            Some(p) => {
                println!(
                    "{indent}  └─ made by step '{}' (step run {}, run {}, component {}, {})",
                    p.step_name,
                    p.id,
                    p.run_id,
                    p.component_digest.as_deref().map(|d| &d[..16]).unwrap_or("?"),
                    p.params
                );
                for (slot, input) in &node.inputs {
                    print(input, depth + 1, Some(slot));
                }
            }
            None => println!(
                "{indent}  └─ source data: {}",
                a.source_uri.as_deref().unwrap_or("external")
            ),
        }
    }
    print(&node, 0, None);
    Ok(exit::OK)
}

async fn server(
    state: &Path,
    stack: &Stack,
    addr: std::net::SocketAddr,
    token: Option<String>,
    security: weft_server::Security,
    max_models: Option<usize>,
) -> CliResult<u8> {
    weft_server::check_bind(addr, token.as_deref()).map_err(CliError::usage)?;
    let stores = Stores::open(state, stack).await?;
    let models = match max_models {
        Some(0) => return Err(CliError::usage("--max-models must be at least 1")),
        Some(max) => {
            let sources = weft_serving::Sources {
                runtime: open_runtime(state)?,
                store: stores.store.clone(),
                artifacts: stores.artifacts.clone(),
                component: None,
                limits: weft_serving::PoolLimits::default(),
            };
            let hub = weft_serving::Hub::new(sources, std::time::Duration::from_secs(1), 64 << 20, max);
            Some(weft_serving::hub_router(hub))
        }
        None => None,
    };
    let stores_url = stores.artifacts.url().to_string();
    let launcher = crate::triggers::ServerLauncher::new(state, stack, stores.clone())?;
    let ticker = weft_triggers::Ticker::new(
        stores.store.clone(),
        Arc::new(launcher.clone()),
        weft_pipeline::hostname(),
    );
    let (stop_ticker, ticker_stopped) = tokio::sync::oneshot::channel::<()>();
    let ticker = tokio::spawn(ticker.run(async {
        let _ = ticker_stopped.await;
    }));
    let app = weft_server::router(weft_server::AppState {
        store: stores.store,
        artifacts: stores.artifacts,
        token: token.map(Into::into),
        security: std::sync::Arc::new(security),
        launcher: Some(Arc::new(launcher.clone())),
        models,
    });
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().map_err(|e| CliError::usage(e.to_string()))?;
    eprintln!(
        "weft server listening on http://{local} (metadata: {}, artifacts: {})",
        crate::context::redact(stack.db.as_deref().unwrap_or("weft.db in the state directory")),
        stores_url
    );
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| CliError::usage(format!("server error: {e}")));
    // No schedule fires after this; runs still going are cancelled and
    // recorded as such.
    let _ = stop_ticker.send(());
    let _ = ticker.await;
    launcher.shutdown().await;
    served?;
    Ok(exit::OK)
}
