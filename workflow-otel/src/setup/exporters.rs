//! The span exporters `setup()` makes of what was chosen: kinds from the
//! builder or `OTEL_TRACES_EXPORTER`, with their settings from the
//! environment unless the builder set them.

use crate::error::SetupError;
use crate::export::OtlpProtocol;
use crate::export::console::ConsoleExporter;
use crate::export::fanout::DynExporter;
use crate::export::file::JsonLinesExporter;
use crate::setup::Chosen;
use crate::setup::env::{self, EnvSettings, ExporterKind};

/// What the builder set that overrides the environment.
pub(crate) struct Overrides {
    pub(crate) otlp_endpoint: Option<String>,
    pub(crate) otlp_protocol: Option<OtlpProtocol>,
    pub(crate) zipkin_endpoint: Option<String>,
}

/// The exporters for `chosen`, in order; `trees_to_stderr` sends the
/// console's trees to stderr (when log lines have stdout).
pub(crate) fn build(
    chosen: Vec<Chosen>,
    env: &EnvSettings,
    overrides: Overrides,
    trees_to_stderr: bool,
) -> Result<Vec<Box<dyn DynExporter>>, SetupError> {
    let mut exporters: Vec<Box<dyn DynExporter>> = Vec::new();
    for choice in chosen {
        match choice {
            Chosen::Custom(exporter) => exporters.push(exporter),
            Chosen::Kind(ExporterKind::None) => {}
            Chosen::Kind(ExporterKind::Console) if trees_to_stderr => {
                exporters.push(Box::new(ConsoleExporter::with_writer(std::io::stderr())))
            }
            Chosen::Kind(ExporterKind::Console) => exporters.push(Box::new(ConsoleExporter::new())),
            Chosen::Kind(ExporterKind::File(path)) => {
                let exporter = JsonLinesExporter::create(&path).map_err(|error| {
                    SetupError::new(
                        "WORKFLOW_OTEL_FILE",
                        &path.display().to_string(),
                        format!("cannot open the file: {error}"),
                    )
                })?;
                exporters.push(Box::new(exporter));
            }
            Chosen::Kind(ExporterKind::Otlp) => exporters.push(otlp_exporter(
                &env.otlp,
                overrides.otlp_endpoint.clone(),
                overrides.otlp_protocol,
            )?),
            Chosen::Kind(ExporterKind::Zipkin) => exporters.push(zipkin_exporter(
                &env.zipkin,
                overrides.zipkin_endpoint.clone(),
            )?),
        }
    }
    Ok(exporters)
}

#[cfg(feature = "zipkin")]
fn zipkin_exporter(
    env: &env::ZipkinEnv,
    endpoint: Option<String>,
) -> Result<Box<dyn DynExporter>, SetupError> {
    use crate::export::zipkin::{ENDPOINT_SETTING, ZipkinExporter, ZipkinSettings};
    let defaults = ZipkinSettings::default();
    let (endpoint, source) = match (endpoint, &env.endpoint) {
        (Some(endpoint), _) => (endpoint, "Setup::zipkin_endpoint"),
        (None, Some(endpoint)) => (endpoint.clone(), "OTEL_EXPORTER_ZIPKIN_ENDPOINT"),
        (None, None) => (defaults.endpoint, "the default Zipkin endpoint"),
    };
    let settings = ZipkinSettings {
        endpoint,
        timeout: env.timeout.unwrap_or(defaults.timeout),
        gzip: defaults.gzip,
    };
    match ZipkinExporter::new(&settings) {
        Ok(exporter) => Ok(Box::new(exporter)),
        Err(mut error) => {
            // The exporter knows the URL, not where it came from.
            if error.setting == ENDPOINT_SETTING {
                error.setting = source.to_owned();
            }
            Err(error)
        }
    }
}

#[cfg(not(feature = "zipkin"))]
fn zipkin_exporter(
    _env: &env::ZipkinEnv,
    _endpoint: Option<String>,
) -> Result<Box<dyn DynExporter>, SetupError> {
    Err(SetupError::new(
        "OTEL_TRACES_EXPORTER",
        "zipkin",
        "this build has no Zipkin exporter: enable the `zipkin` feature of workflow-otel",
    ))
}

#[cfg(feature = "otlp")]
fn otlp_exporter(
    env: &env::OtlpEnv,
    endpoint: Option<String>,
    protocol: Option<OtlpProtocol>,
) -> Result<Box<dyn DynExporter>, SetupError> {
    let mut settings = env.settings(protocol);
    let mut source = env.endpoint_source();
    if let Some(endpoint) = endpoint {
        settings.endpoint = endpoint;
        source = "Setup::otlp_endpoint";
    }
    match crate::export::otlp::OtlpExporter::new(&settings) {
        Ok(exporter) => Ok(Box::new(exporter)),
        Err(mut error) => {
            // The exporter knows the URL, not where it came from.
            if error.setting == crate::export::otlp::ENDPOINT_SETTING {
                error.setting = source.to_owned();
            }
            Err(error)
        }
    }
}

#[cfg(not(feature = "otlp"))]
fn otlp_exporter(
    _env: &env::OtlpEnv,
    _endpoint: Option<String>,
    _protocol: Option<OtlpProtocol>,
) -> Result<Box<dyn DynExporter>, SetupError> {
    Err(SetupError::new(
        "OTEL_TRACES_EXPORTER",
        "otlp",
        "this build has no OTLP exporter: enable the `otlp` feature of workflow-otel",
    ))
}
