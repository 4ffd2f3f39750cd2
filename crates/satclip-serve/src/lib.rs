//! `satclip serve`: location embeddings over HTTP. Several models per process, requests merged
//! into batches per model, bounded queues (429), body limits (413), validation naming the bad
//! point (422), bearer auth, Prometheus metrics and an OpenAPI document; shuts down gracefully,
//! finishing the requests it accepted.

mod batcher;
mod metrics;
mod openapi;
pub mod request;
mod routes;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use satclip::FeatureEncoder;

use batcher::Batcher;
use metrics::Metrics;

/// Limits and batching.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// A batch closes at this many points.
    pub max_batch_points: usize,
    /// ... or this long after its first request arrived.
    pub max_wait: Duration,
    /// Points queued per model beyond which requests get 429.
    pub max_queue_points: usize,
    /// Larger bodies get 413.
    pub max_body_bytes: usize,
    /// Requests not answered within this get 503.
    pub request_timeout: Duration,
    /// Bearer token every route but `/health` requires, when set.
    pub api_key: Option<String>,
    /// Candidate points of `/locate` (a Fibonacci lattice, embedded once per model).
    pub locate_points: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_batch_points: 8192,
            max_wait: Duration::from_micros(500),
            max_queue_points: 1 << 20,
            max_body_bytes: 2 << 20,
            request_timeout: Duration::from_secs(30),
            api_key: None,
            locate_points: 100_000,
        }
    }
}

/// One model the service offers.
pub(crate) struct Model {
    pub name: String,
    pub spec: String,
    pub dim: usize,
    pub provenance: satclip::Provenance,
    /// The checkpoint file, for `/locate` (which needs its image tower).
    pub checkpoint: Option<PathBuf>,
    pub batcher: Batcher,
    pub locate: OnceLock<Result<Arc<routes::LocateModel>, String>>,
}

pub(crate) struct State {
    pub models: Vec<Model>,
    pub config: ServeConfig,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
}

impl State {
    /// The model a request names, or the default (the first).
    pub fn model(&self, name: Option<&str>) -> Option<&Model> {
        match name {
            None => self.models.first(),
            Some(name) => self.models.iter().find(|m| m.name == name),
        }
    }
}

/// The loaded models and limits; [`Service::router`] serves them.
pub struct Service {
    state: Arc<State>,
}

impl Service {
    /// Loads every `(name, spec)` (specs as the CLI takes them); the first is the default.
    pub fn load(models: &[(String, String)], config: ServeConfig) -> satclip::Result<Self> {
        let metrics = Arc::new(Metrics::default());
        let mut loaded: Vec<Model> = Vec::new();
        for (name, spec) in models {
            if loaded.iter().any(|m| &m.name == name) {
                return Err(satclip::Error::format(Path::new(spec), format!("the model name `{name}` is given twice")));
            }
            let encoder = Arc::new(FeatureEncoder::load(spec)?);
            // One point through the model now, so that the first request does not pay for
            // laying the weights out for inference (made on first use).
            encoder.embed_f32(&[[0.0, 0.0]])?;
            let provenance = encoder.provenance().clone();
            let checkpoint = match provenance.source.as_str() {
                "file" | "hub" => provenance.path.clone(),
                _ => None,
            };
            let batcher = Batcher::start(
                name.clone(),
                Arc::clone(&encoder),
                config.max_batch_points,
                config.max_wait,
                config.max_queue_points,
                Arc::clone(&metrics),
            );
            loaded.push(Model {
                name: name.clone(),
                spec: spec.clone(),
                dim: encoder.dim(),
                provenance,
                checkpoint,
                batcher,
                locate: OnceLock::new(),
            });
        }
        if loaded.is_empty() {
            return Err(satclip::Error::format(Path::new("--model"), "no model to serve"));
        }
        Ok(Self { state: Arc::new(State { models: loaded, config, metrics, started: Instant::now() }) })
    }

    pub fn router(&self) -> axum::Router {
        routes::router(Arc::clone(&self.state))
    }

    /// `(name, dim)` of each model, the default first.
    pub fn models(&self) -> Vec<(String, usize)> {
        self.state.models.iter().map(|m| (m.name.clone(), m.dim)).collect()
    }
}

/// Serves until `shutdown` completes, then finishes the requests already accepted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: &Service,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, service.router()).with_graceful_shutdown(shutdown).await
}

/// A service on a thread and runtime of its own, on 127.0.0.1 with a free port, for programs that
/// embed it (tests, benchmarks). Dropping it shuts it down gracefully.
pub struct Background {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Background {
    pub fn start(service: Service) -> std::io::Result<Self> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, address) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(listener) => listener,
                    Err(e) => {
                        let _ = bound.send(Err(std::io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                };
                let _ = bound.send(listener.local_addr());
                serve(listener, &service, async move {
                    let _ = stopped.await;
                })
                .await
            })
        });
        let addr = address.recv().map_err(|_| std::io::Error::other("the service thread stopped"))??;
        Ok(Self { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// Stops accepting, finishes the requests accepted, and waits for the thread.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}
