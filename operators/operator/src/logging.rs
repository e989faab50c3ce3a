//! The operator's log, kept free of what some dependencies print below info.

/// Targets that print credentials below info, so they never log below info whatever
/// `RUST_LOG` asks: azure_core logs every request with its body (Key Vault secrets)
/// and, inverting its own redaction, its Authorization header; tokio-postgres logs every
/// statement (role passwords) should its `log` output ever be bridged.
const CREDENTIAL_PRINTING_TARGETS: &[&str] = &["azure_core", "tokio_postgres"];

fn prints_credentials(m: &tracing::Metadata<'_>) -> bool {
    *m.level() > tracing::Level::INFO
        && CREDENTIAL_PRINTING_TARGETS.iter().any(|t| {
            m.target()
                .strip_prefix(t)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// The operator's log: `RUST_LOG` (default info), as JSON or text, without the
/// credential-printing targets' debug output (a filter of its own, so no directive,
/// however specific, turns them back on).
fn log_subscriber<W>(
    rust_log: Option<&str>,
    format: &str,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::{filter::filter_fn, layer::SubscriberExt, EnvFilter, Layer};
    let env = rust_log
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new("info,kube=warn,tower=warn,hyper=warn"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt = if format == "text" {
        fmt.boxed()
    } else {
        fmt.json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed()
    };
    Box::new(
        tracing_subscriber::registry()
            .with(env)
            .with(fmt.with_filter(filter_fn(|m| !prints_credentials(m)))),
    )
}

pub fn init_tracing(format: &str) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let subscriber = log_subscriber(rust_log.as_deref(), format, std::io::stderr);
    tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    fn logged(rust_log: &str) -> String {
        let out = Capture::default();
        let subscriber = super::log_subscriber(Some(rust_log), "json", out.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "tokio_postgres::simple_query", "ALTER ROLE r PASSWORD 's3cret'");
            tracing::debug!(target: "azure_core::policies::transport", "Authorization: Bearer t0ken");
            tracing::debug!(target: "paved_operator", "reconciled");
            tracing::info!(target: "tokio_postgres", "connection closed");
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn debug_logging_never_reaches_the_targets_that_print_credentials() {
        for rust_log in [
            "debug",
            "trace",
            "debug,azure_core::policies::transport=trace,tokio_postgres=debug",
        ] {
            let log = logged(rust_log);
            assert!(log.contains("reconciled"), "{rust_log}: debug is on: {log}");
            assert!(
                log.contains("connection closed"),
                "{rust_log}: info still shows"
            );
            assert!(
                !log.contains("s3cret"),
                "{rust_log}: a statement was logged"
            );
            assert!(!log.contains("t0ken"), "{rust_log}: a request was logged");
        }
    }
}
