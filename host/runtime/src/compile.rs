//! Compiling a component with bounds.
//!
//! Compiling runs before any step limit applies, and a small crafted
//! component can make a compiler spend gigabytes and minutes. So a
//! component is first measured ([`Shape`]: functions, body sizes, locals,
//! nesting, branch tables) and refused past [`Shape::LIMITS`]; then, with a
//! [`Compiler::Child`], it is compiled in a child process of this executable
//! under an address-space and CPU-time limit and a wall-clock deadline, so
//! whatever it costs, the host survives it and says which bound was hit.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wasmparser::{Operator, Parser, Payload};

/// The argument that makes this executable a compiler child (see
/// [`compile_child_main`]).
pub const COMPILE_ARG: &str = "__weft-compile-component";

/// How a runtime compiles components.
#[derive(Debug, Clone)]
pub enum Compiler {
    /// In this process (tools and tests): shape bounds only.
    InProcess,
    /// In a child process: `exe COMPILE_ARG`, with the component on its
    /// stdin and the compiled artifact on its stdout, under `budget`.
    Child { exe: PathBuf, budget: CompileBudget },
}

/// What one compilation may use.
#[derive(Debug, Clone, Copy)]
pub struct CompileBudget {
    /// Address space of the compiler process (RLIMIT_AS).
    pub memory_bytes: u64,
    /// CPU time of the compiler process, all its threads (RLIMIT_CPU).
    pub cpu: Duration,
    /// Wall-clock time, after which it is killed.
    pub wall: Duration,
}

impl Default for CompileBudget {
    fn default() -> Self {
        Self {
            memory_bytes: 4 << 30,
            cpu: Duration::from_secs(300),
            wall: Duration::from_secs(300),
        }
    }
}

/// The shape of a component: how many functions, how large the largest
/// one, how many locals, how deep the nesting... Measured before compiling
/// ([`Shape::measure`]) against another `Shape` holding the bounds
/// ([`Shape::LIMITS`] by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Functions in all its core modules together.
    pub functions: u64,
    /// Bytes of the largest function body.
    pub function_bytes: u64,
    /// Bytes of code of all functions together.
    pub code_bytes: u64,
    /// Locals of the function with the most.
    pub locals: u64,
    /// Blocks, loops and ifs nested in one another, at the deepest.
    pub nesting: u64,
    /// Targets of the largest `br_table`.
    pub br_table_targets: u64,
    /// Core modules and components nested in the component.
    pub modules: u64,
}

impl Shape {
    /// The default bounds: several times what the largest real components
    /// here need (a Python step: 13,359 functions, 427 KB at most, 271
    /// locals, nesting 781, 3,202 `br_table` targets, 15 modules).
    pub const LIMITS: Shape = Shape {
        functions: 250_000,
        function_bytes: 8 << 20,
        code_bytes: 256 << 20,
        locals: 20_000,
        nesting: 2_000,
        br_table_targets: 100_000,
        modules: 1_000,
    };

    /// Measures `bytes` (a component or a core module), stopping at the
    /// first bound of `limits` it passes: `Err` names it.
    pub fn measure(bytes: &[u8], limits: &Shape) -> Result<Shape, String> {
        let mut shape = Shape::default();
        let over = |what: String, limit: u64| Err(format!("it has {what}; the limit is {limit} (a compile bound)"));
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(|e| format!("it is not valid WebAssembly: {e}"))? {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => {
                    shape.modules += 1;
                    if shape.modules > limits.modules {
                        return over(
                            format!("{} nested modules and components", shape.modules),
                            limits.modules,
                        );
                    }
                }
                Payload::CodeSectionEntry(body) => {
                    shape.functions += 1;
                    if shape.functions > limits.functions {
                        return over(format!("{} functions", shape.functions), limits.functions);
                    }
                    let size = body.range().len() as u64;
                    shape.code_bytes += size;
                    shape.function_bytes = shape.function_bytes.max(size);
                    if size > limits.function_bytes {
                        return over(format!("a function of {size} bytes"), limits.function_bytes);
                    }
                    if shape.code_bytes > limits.code_bytes {
                        return over(format!("{} bytes of code", shape.code_bytes), limits.code_bytes);
                    }
                    let mut locals = 0u64;
                    let mut reader = body.get_locals_reader().map_err(|e| format!("bad function: {e}"))?;
                    for _ in 0..reader.get_count() {
                        let (count, _) = reader.read().map_err(|e| format!("bad function: {e}"))?;
                        locals = locals.saturating_add(count as u64);
                        if locals > limits.locals {
                            return over(format!("a function with {locals} locals"), limits.locals);
                        }
                    }
                    shape.locals = shape.locals.max(locals);
                    let mut depth = 0u64;
                    let mut reader = body.get_operators_reader().map_err(|e| format!("bad function: {e}"))?;
                    while !reader.eof() {
                        match reader.read().map_err(|e| format!("bad function: {e}"))? {
                            Operator::Block { .. }
                            | Operator::Loop { .. }
                            | Operator::If { .. }
                            | Operator::TryTable { .. } => {
                                depth += 1;
                                shape.nesting = shape.nesting.max(depth);
                                if depth > limits.nesting {
                                    return over(format!("blocks nested {depth} deep"), limits.nesting);
                                }
                            }
                            Operator::End => depth = depth.saturating_sub(1),
                            Operator::BrTable { targets } => {
                                let n = targets.len() as u64;
                                shape.br_table_targets = shape.br_table_targets.max(n);
                                if n > limits.br_table_targets {
                                    return over(format!("a br_table with {n} targets"), limits.br_table_targets);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(shape)
    }
}

/// Compiles `bytes` in a child process under `budget`; the compiled
/// artifact, or why not (naming the bound that was hit).
pub(crate) fn compile_in_child(exe: &std::path::Path, budget: &CompileBudget, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut command = Command::new(exe);
    command
        .arg(COMPILE_ARG)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let memory = budget.memory_bytes;
        let cpu = budget.cpu.as_secs().max(1);
        // SAFETY: only async-signal-safe calls (setrlimit) between fork and
        // exec.
        unsafe {
            command.pre_exec(move || {
                let limit = |resource, value: u64| {
                    let rlimit = libc::rlimit {
                        rlim_cur: value as libc::rlim_t,
                        rlim_max: value as libc::rlim_t,
                    };
                    if libc::setrlimit(resource, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                };
                limit(libc::RLIMIT_AS, memory)?;
                limit(libc::RLIMIT_CPU, cpu)?;
                limit(libc::RLIMIT_CORE, 0)
            });
        }
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start the compiler process {}: {e}", exe.display()))?;
    let mut stdin = child.stdin.take().ok_or("the compiler process has no stdin")?;
    let mut stdout = child.stdout.take().ok_or("the compiler process has no stdout")?;
    let mut stderr = child.stderr.take().ok_or("the compiler process has no stderr")?;
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.by_ref().take(64 * 1024).read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + budget.wall;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "compiling it took more than {} s of wall-clock time (the compile time limit)",
                    budget.wall.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for the compiler process: {e}")),
        }
    };
    let _ = writer.join();
    let compiled = reader
        .join()
        .map_err(|_| "reading from the compiler process failed".to_string())?
        .map_err(|e| format!("reading from the compiler process: {e}"))?;
    let errors = errors.join().unwrap_or_default();
    if status.success() {
        return Ok(compiled);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        match status.signal() {
            Some(libc::SIGXCPU) | Some(libc::SIGKILL) => {
                return Err(format!(
                    "compiling it took more than {} s of CPU (the compile time limit)",
                    budget.cpu.as_secs()
                ))
            }
            Some(libc::SIGABRT) | Some(libc::SIGSEGV) if errors.contains("memory allocation") || errors.is_empty() => {
                return Err(format!(
                    "compiling it needed more than {} MiB of memory (the compile memory limit)",
                    budget.memory_bytes >> 20
                ))
            }
            _ => {}
        }
    }
    if errors.contains("memory allocation") {
        return Err(format!(
            "compiling it needed more than {} MiB of memory (the compile memory limit)",
            budget.memory_bytes >> 20
        ));
    }
    Err(errors
        .trim()
        .lines()
        .last()
        .unwrap_or("the compiler process failed")
        .to_string())
}

/// The compiler child: reads a component on stdin, writes the compiled
/// artifact on stdout, for an engine configured exactly as the parent's.
/// Call from `main` when the first argument is [`COMPILE_ARG`].
pub fn compile_child_main() -> std::process::ExitCode {
    let mut bytes = Vec::new();
    let limit = crate::MAX_COMPONENT_BYTES;
    if let Err(e) = std::io::stdin().take(limit + 1).read_to_end(&mut bytes) {
        eprintln!("reading the component: {e}");
        return std::process::ExitCode::from(2);
    }
    if bytes.len() as u64 > limit {
        eprintln!("the component is over {limit} bytes");
        return std::process::ExitCode::from(2);
    }
    // The same settings as the parent's engine (its compatibility hash is
    // checked when the parent loads the result), without the pooling
    // allocator's address-space reservation, which the limit would refuse.
    let engine = match wasmtime::Engine::new(&crate::runtime::engine_config(false)) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("{e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match engine.precompile_component(&bytes) {
        Ok(compiled) => match std::io::stdout().write_all(&compiled) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("writing the compiled component: {e}");
                std::process::ExitCode::from(2)
            }
        },
        Err(e) => {
            eprintln!("{e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
