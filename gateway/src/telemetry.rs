//! Logging and traces: `RUST_LOG` filters (default `info`), `LOG_FORMAT` picks pretty or
//! JSON lines, and when `OTEL_EXPORTER_OTLP_ENDPOINT` is set the spans (one per request,
//! `crate::middleware::observe`) are also exported over OTLP/HTTP.
//!
//! In JSON, each line inside a request carries the request's span under `span`:
//! `{"timestamp":…,"level":"WARN","message":…,"target":…,"span":{"name":"request",
//! "request_id":…,"method":…,"route":…,"platform":…,"mode":…}}` — so
//! `jq 'select(.span.request_id == "…")'` (or a grep for `"request_id":"…"`) finds every
//! line a request caused, the domain and database layers' warnings included.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, OtlpProtocol, OtlpSettings};

/// Where log lines go: the server logs to stdout (a service's stream); commands whose
/// stdout is their result (`platform create`, `ledger verify` print JSON) log to stderr,
/// so that `feria platform create ... | jq` works at any log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    Stdout,
    Stderr,
}

/// The installed telemetry: holds the trace exporter, if any, until [`Telemetry::shutdown`]
/// (or drop) sends what is still buffered. Shut it down outside the async runtime: the
/// exporter's HTTP client is a blocking one, run on the batch processor's own thread.
#[must_use = "dropping it stops the trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still buffered and stops the exporter.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            // The subscriber may already be gone for other threads: say it on stderr too.
            eprintln!("exporting the last traces failed: {error}");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Installs the global subscriber; a second call (tests) keeps the first.
pub fn init(format: LogFormat) {
    let _ = init_to(format, LogTo::Stdout, None);
}

/// Installs the global subscriber writing to `to`, exporting spans when `otlp` says where;
/// a second call keeps the first (and builds no exporter). A trace exporter that cannot be
/// built is reported on stderr and left out: logging still works.
pub fn init_to(format: LogFormat, to: LogTo, otlp: Option<&OtlpSettings>) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer();
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match (format, to) {
        (LogFormat::Pretty, LogTo::Stdout) => fmt.boxed(),
        (LogFormat::Pretty, LogTo::Stderr) => fmt.with_writer(std::io::stderr).boxed(),
        (LogFormat::Json, LogTo::Stdout) => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        (LogFormat::Json, LogTo::Stderr) => fmt
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let provider = otlp.and_then(|settings| match tracer_provider(settings) {
        Ok(provider) => Some(provider),
        Err(error) => {
            eprintln!("traces are not exported: {error}");
            None
        }
    });
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("feria"))
            .boxed()
    });
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .with(filter)
        .try_init()
        .is_ok();
    Telemetry {
        // Another subscriber was there first: it gets no spans, so there is nothing to
        // export (and the exporter is stopped now).
        provider: if installed {
            provider
        } else {
            if let Some(provider) = provider {
                let _ = provider.shutdown();
            }
            None
        },
    }
}

/// A batch exporter to `{endpoint}/v1/traces` over HTTP (protobuf or JSON).
fn tracer_provider(settings: &OtlpSettings) -> Result<SdkTracerProvider, String> {
    let protocol = match settings.protocol {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(settings.traces_url())
        .build()
        .map_err(|error| error.to_string())?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build(),
        )
        .build())
}
