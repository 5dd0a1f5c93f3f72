//! `weft`: run sandboxed WebAssembly pipelines and inspect what they recorded.

mod commands;
mod context;
mod kubernetes;
mod models;
mod new;
mod plugins;
mod progress;
mod remote;
mod secrets;
mod serve;
mod slurm;
mod stacks;
mod triggers;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes scripts can rely on.
pub mod exit {
    /// Everything succeeded.
    pub const OK: u8 = 0;
    /// The pipeline ran and a step failed.
    pub const RUN_FAILED: u8 = 1;
    /// The command could not start: bad arguments, manifest or state.
    pub const USAGE: u8 = 2;
    /// The run, step or artifact asked for does not exist.
    pub const NOT_FOUND: u8 = 3;
    /// The run was cancelled (Ctrl-C).
    pub const CANCELLED: u8 = 130;
}

const EXIT_CODES: &str = "Exit codes: 0 success, 1 a step failed, 2 bad arguments/manifest/state, \
3 not found, 130 cancelled.";

#[derive(Parser)]
#[command(name = "weft", version, about = "Sandboxed WebAssembly ML pipelines with sound caching and tracking", after_help = EXIT_CODES)]
struct Cli {
    /// The pipeline manifest (default: weft.toml in this directory or the nearest parent).
    #[arg(short = 'f', long, global = true, env = "WEFT_MANIFEST")]
    manifest: Option<PathBuf>,
    /// Where weft keeps its database, artifacts and caches (default: .weft next to the manifest).
    #[arg(long, global = true, env = "WEFT_DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    stack: context::Stack,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a weft.toml and the .weft state directory.
    Init {
        /// Directory to initialise.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Pipeline name (default: the directory name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Create something new: `weft new step NAME --lang rust|python|js|c`.
    #[command(subcommand)]
    New(NewCommand),
    /// Run the build commands of the manifest's steps and check the components.
    Build {
        /// Only these steps.
        steps: Vec<String>,
    },
    /// Write the pipeline, its built components and (with --with-data) its
    /// input files into one file that `weft run FILE.weft` runs anywhere.
    Bundle {
        /// The file to write (default: PIPELINE.weft in this directory).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Also bundle the external input files ([inputs]).
        #[arg(long)]
        with_data: bool,
        /// Sign the bundle with this Ed25519 private key (PEM; make one with
        /// `openssl genpkey -algorithm ed25519 -out weft.key`).
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
        /// Print what was written as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run the pipeline, or the pipeline of a bundle (`weft run FILE.weft`).
    Run {
        /// A bundle written by `weft bundle` (instead of the manifest). Its
        /// state goes to .weft in this directory unless --state-dir says.
        #[arg(value_name = "BUNDLE", conflicts_with = "detach")]
        bundle: Option<PathBuf>,
        /// Run a bundle only if it is signed by this Ed25519 public key
        /// (PEM; `openssl pkey -in weft.key -pubout -out weft.pub`).
        #[arg(long, value_name = "PUBKEY", env = "WEFT_REQUIRE_SIGNATURE")]
        require_signature: Option<PathBuf>,
        /// Execute every step, ignoring cached results.
        #[arg(long)]
        no_cache: bool,
        /// Override a param: -p step.key=value (the value keeps the param's type).
        #[arg(short = 'p', long = "param", value_name = "STEP.KEY=VALUE")]
        params: Vec<String>,
        /// Most steps running at once (default: number of cores; 256 on a slurm stack).
        #[arg(long)]
        max_parallel: Option<usize>,
        /// Print the outcome as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Submit the run itself as a Slurm job and return at once (a stack
        /// whose orchestrator is slurm): the run goes on on the cluster.
        #[arg(long, conflicts_with = "server")]
        detach: bool,
        /// Also send the run, as it goes, to this `weft server` (http://HOST:PORT);
        /// when it cannot be reached, the run is queued for `weft push`.
        #[arg(long, value_name = "URL", env = "WEFT_SERVER")]
        server: Option<String>,
        /// The server's bearer token, when it requires one for writes.
        #[arg(long, env = "WEFT_SERVER_TOKEN", hide_env_values = true, requires = "server")]
        token: Option<String>,
    },
    /// Send the runs waiting in the outbox (made while the server was
    /// away) to the server they were for, or all of them to URL.
    Push {
        /// The weft server (default: each run's own).
        #[arg(value_name = "URL", env = "WEFT_SERVER")]
        server: Option<String>,
        /// The server's bearer token, when it requires one for writes.
        #[arg(long, env = "WEFT_SERVER_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Print what was sent as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List or show runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// List, show or fetch artifacts.
    #[command(subcommand)]
    Artifacts(ArtifactsCommand),
    /// Show where an artifact came from, back to the source data.
    Lineage {
        /// Artifact id (or prefix), name (latest version) or name:version.
        artifact: String,
        #[arg(long)]
        json: bool,
    },
    /// The model registry: register artifacts as model versions, set aliases.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Serve what weft records over HTTP (the native API under /api/v1).
    Server {
        /// Address to listen on; anything but loopback needs --token.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Port (0 picks a free one).
        #[arg(long, default_value_t = 5000)]
        port: u16,
        /// Require `Authorization: Bearer TOKEN` for writes (at least 16 characters).
        #[arg(long, env = "WEFT_SERVER_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// With --token: require it for reads too (everything but /health).
        #[arg(long, requires = "token")]
        token_for_reads: bool,
        /// Host headers to accept, comma-separated, `*` wildcards (default:
        /// localhost and private addresses, any port). Guards against DNS
        /// rebinding: list the names clients use to reach this server.
        #[arg(long, value_delimiter = ',', env = "WEFT_SERVER_ALLOWED_HOSTS")]
        allowed_hosts: Vec<String>,
        /// Origins allowed to send writes from a browser, beside loopback
        /// ones, comma-separated, `*` wildcards.
        #[arg(long, value_delimiter = ',', env = "WEFT_SERVER_CORS_ALLOWED_ORIGINS")]
        cors_allowed_origins: Vec<String>,
        /// Also answer registered models through their model servers, each
        /// loaded on its first request: POST
        /// /serve/models/NAME@ALIAS/invocations (or NAME/VERSION,
        /// NAME/latest), as `weft serve` does.
        #[arg(long)]
        serve_models: bool,
        /// With --serve-models: how many models stay loaded at once (the
        /// least recently used is unloaded).
        #[arg(long, default_value_t = 8, requires = "serve_models")]
        max_models: usize,
    },
    /// Serve a registered model over HTTP through its sandboxed model
    /// server: the MLflow scoring protocol on /invocations, and /predict,
    /// /ping, /version, /model, /metrics. An alias is followed: when it
    /// moves, the new version is loaded and swapped in.
    Serve {
        /// models:/NAME@ALIAS, models:/NAME/VERSION or models:/NAME/latest.
        model: String,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Port (0 picks a free one).
        #[arg(long, default_value_t = 5001)]
        port: u16,
        /// Instances of the model server: requests answered at once
        /// (default: one per CPU).
        #[arg(long)]
        instances: Option<usize>,
        /// Memory one instance may hold, the model included (e.g. 512MiB).
        #[arg(long, default_value = "512MiB")]
        memory: bytesize::ByteSize,
        /// Longest one request may compute (e.g. 10s, 500ms).
        #[arg(long, default_value = "10s")]
        timeout: humantime::Duration,
        /// How often to look up the version an alias names.
        #[arg(long, default_value = "1s")]
        poll: humantime::Duration,
        /// Largest request body.
        #[arg(long, default_value = "64MiB")]
        max_request: bytesize::ByteSize,
        /// A model server component to use instead of the one the version
        /// names.
        #[arg(long, value_name = "WASM")]
        component: Option<std::path::PathBuf>,
    },
    /// Stack integrations (alerters, tracker sinks, validators,
    /// materializers) as sandboxed WASM plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Named stacks: where metadata and artifacts live, and plugin config.
    #[command(subcommand)]
    Stack(StackCommand),
    /// Secrets that stacks and steps refer to as ${secret:NAME}: kept
    /// encrypted in weft's home, or given as WEFT_SECRET_<NAME>.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Execute a past run's steps again from their archived components and
    /// recorded inputs, and compare every output's digest (exit 1 on a
    /// mismatch). Needs no manifest or source tree.
    Verify {
        /// Run id (or prefix), or `latest`.
        run: String,
        /// Only this step (repeatable).
        #[arg(long = "step", value_name = "STEP")]
        steps: Vec<String>,
        /// Print the verifications as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Registered pipelines: what `weft server` can run without the
    /// project's tree (through its API and schedules).
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Cron schedules of registered pipelines, fired by `weft server`.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Step runs handed to workers: `weft step exec` is what an
    /// orchestrator starts for each step it does not serve from the cache.
    #[command(subcommand)]
    Step(StepCommand),
    /// Print the captured stdout/stderr of a step run.
    Logs {
        /// Run id (or prefix), or `latest`.
        run: String,
        /// Step name.
        step: String,
    },
    /// List weft's library of ready-made steps (use one in weft.toml with
    /// `uses = "ml/random-forest"`): inputs, outputs, params and digest.
    Library {
        /// Print the list as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Install a plugin (a .wasm component, or a directory with a
    /// weft-plugin.toml) after consent to what it asks for.
    Install {
        path: PathBuf,
        /// Grant a capability it asks for: http:HOST or http:HOST:PORT.
        #[arg(long = "allow", value_name = "CAPABILITY")]
        allow: Vec<String>,
        /// Consent to every host it names (hosts for `*` still need --allow).
        #[arg(long)]
        yes: bool,
        /// Set a configuration key: KEY=VALUE (JSON values are parsed).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
    /// List installed plugins and what each was granted.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a plugin: what it asks for, what it was granted, its config.
    Info { name: String },
    /// Set configuration keys of an installed plugin.
    Config {
        name: String,
        /// KEY=VALUE pairs.
        #[arg(required = true)]
        values: Vec<String>,
    },
    /// Uninstall a plugin.
    Remove { name: String },
    /// Convert an artifact to another media type with a materializer plugin.
    Convert {
        /// Artifact id (or prefix), name (latest version) or name:version.
        artifact: String,
        /// The media type to convert to (e.g. application/json).
        #[arg(long)]
        to: String,
        /// The materializer (default: the first installed one that offers the conversion).
        #[arg(long)]
        plugin: Option<String>,
        /// Write here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StepCommand {
    /// Execute one prepared step run of the stack: claim it, run it in the
    /// sandbox from its archived component and input blobs, record it. A
    /// step run another worker took, or that ended, is left as it is
    /// (exit 0).
    Exec {
        /// The step run's id.
        step_run: String,
        /// Attempts after the first, for a failure that may change on retry.
        #[arg(long, default_value_t = 0)]
        retries: u32,
        /// Wait before the first retry in milliseconds (doubled each time).
        #[arg(long = "backoff-ms", default_value_t = 1000)]
        backoff_ms: u64,
    },
}

#[derive(Subcommand)]
enum PipelineCommand {
    /// Archive the manifest's components and input data by digest and
    /// record them as the pipeline's newest definition (build first).
    Register,
}

#[derive(Subcommand)]
enum ScheduleCommand {
    /// Run a registered pipeline on a cron schedule (UTC).
    Create {
        /// The schedule's name.
        name: String,
        /// The registered pipeline to run.
        #[arg(long)]
        pipeline: String,
        /// 5 fields (min hour day month weekday), or 6 with seconds first:
        /// '0 3 * * *' is 03:00 every day, '*/30 * * * * *' every 30 s.
        #[arg(long)]
        cron: String,
        /// Override a param in each run: -p step.key=value.
        #[arg(short = 'p', long = "param", value_name = "STEP.KEY=VALUE")]
        params: Vec<String>,
        /// Due times missed while no server ran: skip them, or run once
        /// for them (catch-up).
        #[arg(long, default_value = "skip", value_parser = triggers::missed_policy)]
        missed: String,
    },
    /// List schedules, their next due time and last firing.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a schedule and what it fired.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop firing a schedule.
    Pause { name: String },
    /// Fire a paused schedule again from its next due time.
    Resume { name: String },
    /// Delete a schedule and its history (its runs stay).
    Delete { name: String },
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Store a secret, encrypted: its value is asked for at a terminal
    /// (not echoed), or read from standard input (`printf %s VALUE | weft
    /// secret set NAME`), or from a variable.
    Set {
        name: String,
        /// Read the value from this environment variable instead.
        #[arg(long, value_name = "VAR")]
        from_env: Option<String>,
    },
    /// List the secrets' names (never their values) and where each comes from.
    List,
    /// Delete a stored secret.
    Delete { name: String },
}

/// A stack's Kubernetes settings, for the `kubernetes` orchestrator or
/// the steps that name it.
#[derive(clap::Args)]
struct KubernetesFlags {
    /// Kubernetes: the image the pods run, holding the weft executable on
    /// its PATH (e.g. registry.example.com/weft:0.1).
    #[arg(long = "k8s-image", value_name = "IMAGE")]
    image: Option<String>,
    /// Kubernetes: the namespace of the Jobs (a step's resources may name another).
    #[arg(long = "k8s-namespace", value_name = "NAMESPACE", requires = "image")]
    namespace: Option<String>,
    /// Kubernetes: the service account the pods run as.
    #[arg(long = "k8s-service-account", value_name = "NAME", requires = "image")]
    service_account: Option<String>,
    /// Kubernetes: a Secret whose keys become the worker's environment
    /// (WEFT_SECRET_<NAME> for each ${secret:NAME} in the stack's URLs,
    /// AWS_* for the artifact store).
    #[arg(long = "k8s-env-secret", value_name = "SECRET", requires = "image")]
    env_secret: Option<String>,
    /// Kubernetes: the kubeconfig context (default: the current one, or
    /// the pod's own service account inside a cluster).
    #[arg(long = "k8s-context", value_name = "CONTEXT", requires = "image")]
    context: Option<String>,
}

impl KubernetesFlags {
    fn settings(self) -> Option<kubernetes::KubernetesSettings> {
        let image = self.image?;
        Some(kubernetes::KubernetesSettings {
            image,
            namespace: self.namespace.unwrap_or_else(kubernetes::default_namespace),
            service_account: self.service_account,
            env_secret: self.env_secret,
            context: self.context,
        })
    }
}

#[derive(Subcommand)]
enum StackCommand {
    /// Create a stack.
    Create {
        name: String,
        /// Metadata store: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB.
        #[arg(long)]
        db: Option<String>,
        /// Artifact store: file:///PATH or s3://BUCKET/PREFIX.
        #[arg(long)]
        artifacts: Option<String>,
        /// Where the steps of a run execute: `local` (in the run's
        /// process), `process` (each step that is not a cache hit in a
        /// `weft step exec` worker process of its own), `slurm` (a batch
        /// job each) or `kubernetes` (a Job each; see --k8s-image).
        #[arg(long, default_value = "local")]
        orchestrator: String,
        #[command(flatten)]
        kubernetes: Box<KubernetesFlags>,
        /// Plugin configuration: PLUGIN.KEY=VALUE.
        #[arg(long = "plugin-config", value_name = "PLUGIN.KEY=VALUE")]
        plugin_config: Vec<String>,
        /// Let step runs imported from other machines (the sync API) serve
        /// cache hits before `weft verify` re-executed them here.
        #[arg(long)]
        trust_imports: bool,
    },
    /// List stacks (* marks the active one).
    List,
    /// Make a stack the default for every command (none: back to each project's .weft).
    Use { name: Option<String> },
    /// Show a stack (default: the active one).
    Show { name: Option<String> },
    /// Delete a stack.
    Delete { name: String },
}

#[derive(Subcommand)]
enum NewCommand {
    /// A step that builds and runs as it is, added to weft.toml.
    Step {
        /// The step's name.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum)]
        lang: new::Lang,
        /// Its folder, relative to weft.toml (default: steps/NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Paging and output format of a list.
#[derive(clap::Args)]
struct Page {
    /// Most rows to show (1 to 10000).
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Rows to skip.
    #[arg(long, default_value_t = 0)]
    offset: i64,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Register an artifact, or a model file made elsewhere (`--file`), as
    /// the next version of a model.
    Register {
        /// Artifact id (or prefix), name (latest version) or name:version.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        artifact: Option<String>,
        /// A model file trained outside weft (e.g. an ONNX export): stored
        /// in the artifact store and registered by its digest.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Model name (created if needed).
        #[arg(long)]
        name: String,
        /// Also point this alias at the new version.
        #[arg(long)]
        alias: Option<String>,
        /// The model server component (`wit/inference`) that `weft serve`
        /// runs for this version, or one of weft's library
        /// (`ml/model-server`); archived with it.
        #[arg(long, value_name = "WASM")]
        served_by: Option<std::path::PathBuf>,
    },
    /// Point an alias (e.g. champion) at a version.
    Alias { name: String, alias: String, version: i64 },
    /// List registered models.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a model's versions, aliases and where each version came from.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List runs, newest first.
    List {
        #[arg(long)]
        pipeline: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Show a run: its steps, inputs, params and metrics.
    Show {
        /// Run id (or prefix), or `latest`.
        #[arg(default_value = "latest")]
        run: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ArtifactsCommand {
    /// List artifacts, newest first.
    List {
        /// Only names starting with this (e.g. `iris/train.`).
        #[arg(long)]
        prefix: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Show one artifact.
    Show {
        artifact: String,
        #[arg(long)]
        json: bool,
    },
    /// Copy an artifact's content out (a file to stdout unless -o is given).
    Get {
        artifact: String,
        /// Write here instead (required for directory artifacts).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Output piped into `head` ends quietly when the reader goes away, as
    // with any command-line tool, instead of a panic on a broken pipe.
    // SAFETY: setting a signal's disposition to its default, before any
    // thread is started.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A child started to compile one component under a memory and time
    // budget (see weft_runtime::compile), not a command.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == weft_runtime::COMPILE_ARG)
    {
        return weft_runtime::compile_child_main();
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {}", error.message);
            ExitCode::from(error.code)
        }
    }
}
