//! Host bindings of the `weft:plugin` worlds; they share one `types`.

mod alerter {
    wasmtime::component::bindgen!({
        path: "../../wit/plugin",
        world: "alerter",
        exports: { default: async },
    });
}

mod tracker_sink {
    wasmtime::component::bindgen!({
        path: "../../wit/plugin",
        world: "tracker-sink",
        exports: { default: async },
        with: { "weft:plugin/types": super::types },
    });
}

mod data_validator {
    wasmtime::component::bindgen!({
        path: "../../wit/plugin",
        world: "data-validator",
        exports: { default: async },
        with: { "weft:plugin/types": super::types },
    });
}

mod materializer {
    wasmtime::component::bindgen!({
        path: "../../wit/plugin",
        world: "materializer",
        exports: { default: async },
        with: { "weft:plugin/types": super::types },
    });
}

pub use alerter::weft::plugin::types;
pub(crate) use alerter::Alerter;
pub(crate) use data_validator::DataValidator;
pub(crate) use materializer::Materializer;
pub(crate) use tracker_sink::TrackerSink;
