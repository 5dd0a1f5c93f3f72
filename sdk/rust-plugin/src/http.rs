//! Outbound HTTP through `wasi:http/outgoing-handler`. The host sends a
//! request only to a host the user granted the plugin; any other fails
//! here with "the host refused the request".

use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// Largest response body read.
const MAX_RESPONSE: usize = 16 << 20;

/// An answer.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `body` to `url` (`http://` or `https://`) and reads the answer.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, String> {
    let (https, authority, path) = split_url(url)?;
    let mut entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    // A known length: the body goes out in one piece, not chunked.
    entries.push(("content-length".into(), body.len().to_string().into_bytes()));
    let fields = Fields::from_list(&entries).map_err(|e| format!("bad header: {e:?}"))?;
    let request = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_string()),
    };
    let invalid = |what: &str| format!("invalid {what} in {url}");
    request.set_method(&method).map_err(|_| invalid("method"))?;
    request
        .set_scheme(Some(if https { &Scheme::Https } else { &Scheme::Http }))
        .map_err(|_| invalid("scheme"))?;
    request.set_authority(Some(authority)).map_err(|_| invalid("host"))?;
    request.set_path_with_query(Some(path)).map_err(|_| invalid("path"))?;
    let outgoing = request.body().map_err(|_| "the request body is gone".to_string())?;
    // Hand the request over first: its body is streamed to the host.
    let future = outgoing_handler::handle(request, None).map_err(|e| describe(&e))?;
    // A refused request closes the body: its answer says why, so a write
    // error is reported only when the answer does not.
    let written = write_body(outgoing, body);
    let response = loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    let response = response
        .map_err(|_| "the response was taken twice".to_string())?
        .map_err(|e| describe(&e))?;
    written?;
    let status = response.status();
    let incoming = response.consume().map_err(|_| "no response body".to_string())?;
    let stream = incoming.stream().map_err(|_| "no response body".to_string())?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(65536) {
            Ok(chunk) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_RESPONSE {
                    return Err(format!("the response from {url} is over {MAX_RESPONSE} bytes"));
                }
            }
            Err(StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the response from {url}: {e:?}")),
        }
    }
    Ok(Response { status, body })
}

fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), String> {
    {
        let stream = outgoing
            .write()
            .map_err(|_| "cannot write the request body".to_string())?;
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("writing the request body: {e:?}"))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| describe(&e))
}

/// POSTs a JSON document.
pub fn post_json(url: &str, headers: &[(&str, &str)], json: &serde_json::Value) -> Result<Response, String> {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send("POST", url, &all, json.to_string().as_bytes())
}

/// (https, authority, path with query) of an http(s) URL.
fn split_url(url: &str) -> Result<(bool, &str, &str), String> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!("'{url}' is not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("'{url}' has no host"));
    }
    Ok((https, authority, path))
}

fn describe(e: &ErrorCode) -> String {
    match e {
        ErrorCode::HttpRequestDenied => "the host refused the request: that host was not granted to this plugin".into(),
        ErrorCode::ConnectionRefused => "connection refused".into(),
        ErrorCode::DnsError(_) => "the host name did not resolve".into(),
        ErrorCode::ConnectionTimeout => "the connection timed out".into(),
        other => format!("{other:?}"),
    }
}
