//! Who may talk to the server, checked before any handler runs:
//!
//! - **Host** (DNS rebinding): a request must name an allowed host: by
//!   default loopback names and private addresses, with any port, as
//!   `mlflow server` allows; `--allowed-hosts` replaces the list (`*`
//!   wildcards, `*` alone for any). `/health` and `/version` are exempt.
//! - **Origin** (cross-site requests): a state-changing request (POST, PUT,
//!   PATCH, DELETE) that a browser sent from another site is refused unless
//!   its origin is loopback or listed in `--cors-allowed-origins`.
//! - **Content type**: a POST or PUT to a JSON API must say
//!   `Content-Type: application/json`, so no HTML form or `text/plain`
//!   "simple request" can reach a handler.
//! - **Token**: with `--token`, writes need `Authorization: Bearer <token>`
//!   (a search sent as POST is a read);
//!   with `--token-for-reads` too, every request but `/health` does.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

/// The server's request policy.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// Host header patterns (`*` wildcards); empty: loopback and private
    /// addresses.
    pub allowed_hosts: Vec<String>,
    /// Origins allowed to send state-changing requests, beside loopback
    /// ones (`*` wildcards; `*` alone allows any).
    pub allowed_origins: Vec<String>,
    /// When a token is set: reads need it too.
    pub token_for_reads: bool,
}

impl Security {
    fn host_allowed(&self, host: &str) -> bool {
        if self.allowed_hosts.is_empty() {
            return default_host(host);
        }
        self.allowed_hosts.iter().any(|pattern| glob(pattern, host))
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        loopback_origin(origin) || self.allowed_origins.iter().any(|pattern| glob(pattern, origin))
    }
}

/// Loopback names and private addresses (RFC 1918, RFC 4193), any port.
fn default_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:port
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    if matches!(name, "localhost" | "127.0.0.1" | "::1" | "0.0.0.0") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_private() || ip.is_loopback(),
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => false,
    }
}

/// `http://localhost[:port]`, `http://127.0.0.1[:port]`, `http://[::1][:port]`.
fn loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let name = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((name, port)) if port.is_empty() || port.strip_prefix(':').is_some_and(is_port) => name,
            _ => return false,
        },
        None => match rest.split_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => rest,
        },
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.chars().all(|c| c.is_ascii_digit())
}

/// Shell-style matching with `*` only (any run of characters), in linear
/// time: the pieces between stars are found left to right.
fn glob(pattern: &str, text: &str) -> bool {
    let pieces: Vec<&str> = pattern.split('*').collect();
    if pieces.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Whether a path is one of the JSON APIs (not the artifact proxy or the
/// blob upload of sync, which take raw bytes).
fn json_api(path: &str) -> bool {
    path.starts_with("/api/2.0/mlflow/")
        || path.starts_with("/ajax-api/2.0/mlflow/")
        || path == "/api/v1/sync/runs"
        || path == "/api/v1/sync/access"
        || path == "/api/v1/schedules"
        || (path.starts_with("/api/v1/pipelines/") && path.ends_with("/runs"))
}

/// POST endpoints of the MLflow API that only read.
fn read_only_post(path: &str) -> bool {
    let rest = path
        .strip_prefix("/api/2.0/mlflow/")
        .or_else(|| path.strip_prefix("/ajax-api/2.0/mlflow/"));
    matches!(
        rest,
        Some("runs/search" | "experiments/search" | "logged-models/search" | "registered-models/get-latest-versions")
    )
}

/// The checks above, in order.
pub(crate) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let policy = &state.security;
    let path = request.uri().path();
    let exempt = matches!(path, "/health" | "/version");
    if !exempt {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()))
            .unwrap_or("");
        if !policy.host_allowed(host) {
            tracing::warn!(host, "refused a request for a host that is not allowed");
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                "invalid Host header (a possible DNS rebinding attack); start the server with --allowed-hosts to allow it",
            )
            .into_response();
        }
    }
    let writes = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if writes {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let any = policy.allowed_origins.iter().any(|o| o == "*");
            if !any && !policy.origin_allowed(origin) {
                tracing::warn!(origin, "refused a cross-origin write");
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "PERMISSION_DENIED",
                    "cross-origin request blocked; start the server with --cors-allowed-origins to allow this origin",
                )
                .into_response();
            }
        }
    }
    if matches!(*request.method(), Method::POST | Method::PUT) && json_api(path) {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        match content_type.as_deref() {
            Some("application/json") => {}
            None => {
                return ApiError::invalid("bad request: the Content-Type header is missing (send application/json)")
                    .into_response()
            }
            Some(other) => {
                return ApiError::invalid(format!(
                    "bad request: Content-Type must be application/json, not '{other}'"
                ))
                .into_response()
            }
        }
    }
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    // Searches sent as POST (as the MLflow API has them) change nothing.
    let read = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || (*request.method() == Method::POST && read_only_post(path));
    if exempt || (read && !policy.token_for_reads) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "the bearer token is not valid",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            if read {
                "this server needs `Authorization: Bearer <token>` for every request"
            } else {
                "this server needs `Authorization: Bearer <token>` for writes"
            },
        )
        .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_hosts_are_loopback_and_private() {
        for ok in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:8080",
            "[::1]:5000",
            "10.1.2.3",
            "192.168.0.7:5000",
            "172.20.0.1:1",
        ] {
            assert!(default_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:5000",
            "8.8.8.8",
            "localhost.evil.example",
            "172.32.0.1",
            "",
        ] {
            assert!(!default_host(bad), "{bad}");
        }
    }

    #[test]
    fn origins_and_globs() {
        assert!(loopback_origin("http://localhost:3000"));
        assert!(loopback_origin("http://[::1]:3000"));
        assert!(!loopback_origin("http://localhost.evil.example"));
        assert!(!loopback_origin("https://evil.example"));
        assert!(glob("https://*.example.com", "https://app.example.com"));
        assert!(!glob("https://*.example.com", "https://example.org"));
        assert!(glob("*", "anything"));
        assert!(!glob(&"*a".repeat(20), &"a".repeat(10)), "linear, and false");
    }
}
