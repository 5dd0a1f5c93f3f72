//! `weft secret set|list|delete`: the secrets that stacks and steps refer
//! to as `${secret:NAME}` (see weft_secrets). A value is never printed.

use std::io::{IsTerminal as _, Read as _};

use weft_secrets::{env_var, Secrets, KEY_VAR};

use crate::context::{weft_home, CliError, CliResult};
use crate::exit;

/// The secrets of weft's home.
pub fn open() -> CliResult<Secrets> {
    Ok(Secrets::new(weft_home()?))
}

fn failed(e: weft_secrets::SecretError) -> CliError {
    CliError::usage(e.to_string())
}

pub fn set(name: &str, from_env: Option<&str>) -> CliResult<u8> {
    weft_secrets::validate_name(name).map_err(failed)?;
    let value = zeroize::Zeroizing::new(match from_env {
        Some(var) => {
            std::env::var(var).map_err(|_| CliError::usage(format!("--from-env {var}: the variable is not set")))?
        }
        None if std::io::stdin().is_terminal() => {
            rpassword::prompt_password(format!("value of secret {name} (not shown): "))
                .map_err(|e| CliError::usage(format!("reading the value: {e}")))?
        }
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CliError::usage(format!("reading the value from standard input: {e}")))?;
            // A value typed or echoed ends with a newline that is not part of it.
            let kept = text.trim_end_matches(['\n', '\r']).len();
            text.truncate(kept);
            text
        }
    });
    if value.is_empty() {
        return Err(CliError::usage(format!(
            "no value for secret '{name}': pipe it in (`printf %s VALUE | weft secret set {name}`) or use --from-env VAR"
        )));
    }
    let secrets = open()?;
    let made_key = secrets.set(name, &value).map_err(failed)?;
    if made_key {
        eprintln!(
            "created the secret key {} (readable by you only): keep a copy; without it, or {KEY_VAR}, the secrets cannot be read",
            secrets.key_file().display()
        );
    }
    eprintln!("stored secret {name} (encrypted); refer to it as ${{secret:{name}}}");
    Ok(exit::OK)
}

pub fn list() -> CliResult<u8> {
    let secrets = open()?;
    let stored = secrets.names().map_err(failed)?;
    for name in &stored {
        let source = if std::env::var_os(env_var(name)).is_some() {
            format!("environment ({}), over the store", env_var(name))
        } else {
            "store (encrypted)".to_string()
        };
        println!("{name:32} {source}");
    }
    let mut given: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("WEFT_SECRET_") && k != KEY_VAR)
        .filter(|k| !stored.iter().any(|name| env_var(name) == *k))
        .collect();
    given.sort();
    for var in given {
        println!(
            "{:32} environment",
            var.trim_start_matches("WEFT_SECRET_").to_ascii_lowercase()
        );
    }
    Ok(exit::OK)
}

pub fn delete(name: &str) -> CliResult<u8> {
    if open()?.delete(name).map_err(failed)? {
        eprintln!("deleted secret {name}");
        Ok(exit::OK)
    } else {
        Err(CliError {
            code: exit::NOT_FOUND,
            message: format!("no stored secret named '{name}' (see `weft secret list`)"),
        })
    }
}

/// `text` with its `${secret:NAME}` references resolved (`what` names the
/// setting in errors).
pub fn resolve(text: &str, what: &str) -> CliResult<String> {
    if !text.contains(weft_secrets::REFERENCE_START) {
        return Ok(text.to_string());
    }
    let resolved = open()?
        .resolve(text)
        .map_err(|e| CliError::usage(format!("{what}: {e}")))?;
    Ok(resolved.text.to_string())
}
