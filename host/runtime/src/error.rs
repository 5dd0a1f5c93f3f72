use std::path::PathBuf;

/// Errors of the runtime itself (as opposed to a step failing, which is a
/// [`crate::StepFailure`]).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The component file could not be read.
    #[error("cannot read component {path}: {source}")]
    ReadComponent {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid component, or it cannot be compiled.
    #[error("{path} is not a valid WebAssembly component: {message}")]
    InvalidComponent { path: PathBuf, message: String },
    /// Compiling the component would pass a bound (its shape, or the
    /// compiler's memory or time).
    #[error("{path} is refused: {message}")]
    CompileLimit { path: PathBuf, message: String },
    /// The component imports something a step is not given, or does not
    /// export the `weft:step` world.
    #[error(
        "{path} does not fit the weft:step world: {message}\n\
         hint: build it against wit/step (world `step`); a step may import only \
         wasi:cli, wasi:clocks, wasi:filesystem, wasi:io, wasi:random and weft:step/tracker"
    )]
    Incompatible { path: PathBuf, message: String },
    /// The compiled-component cache could not be used.
    #[error("compiled-component cache at {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The engine could not be created.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// A sandbox directory could not be prepared.
    #[error("cannot prepare the sandbox directory {path}: {message}")]
    Sandbox { path: PathBuf, message: String },
}
