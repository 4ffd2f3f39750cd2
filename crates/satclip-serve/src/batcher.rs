//! Dynamic batching: requests for one model queue up and a worker thread embeds them together,
//! as many points as arrive while the previous batch computes (up to `max_batch_points`), or
//! within `max_wait` of the first. Each model has its own worker; the matrix products inside
//! run on the shared rayon pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use satclip::FeatureEncoder;
use tokio::sync::oneshot;

use crate::metrics::Metrics;

pub type Reply = Result<Vec<f32>, String>;

struct Job {
    points: Vec<[f64; 2]>,
    enqueued: Instant,
    reply: oneshot::Sender<Reply>,
}

/// Why a request was not queued.
pub enum Refused {
    /// The queue is full now; try again shortly (429).
    Busy,
    /// The request alone is larger than the whole queue (413).
    TooLarge { limit: usize },
}

pub struct Batcher {
    jobs: mpsc::Sender<Job>,
    queued: Arc<AtomicUsize>,
    max_queue_points: usize,
}

impl Batcher {
    pub fn start(
        model: String,
        encoder: Arc<FeatureEncoder>,
        max_batch_points: usize,
        max_wait: Duration,
        max_queue_points: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&queued);
        std::thread::Builder::new()
            .name(format!("batcher-{model}"))
            .spawn(move || {
                // Ends when the service is dropped and with it every sender.
                while let Ok(first) = inbox.recv() {
                    let deadline = first.enqueued + max_wait;
                    let mut points = first.points.len();
                    let mut batch = vec![first];
                    while points < max_batch_points {
                        let wait = deadline.saturating_duration_since(Instant::now());
                        let next = if wait.is_zero() { inbox.try_recv().ok() } else { inbox.recv_timeout(wait).ok() };
                        let Some(job) = next else { break };
                        points += job.points.len();
                        batch.push(job);
                    }
                    run(&model, &encoder, batch, points, &metrics);
                    counter.fetch_sub(points, Ordering::SeqCst);
                }
            })
            .expect("a thread for the batcher");
        Self { jobs, queued, max_queue_points }
    }

    /// Queues `points`; the receiver gets their `[n × dim]` embeddings.
    pub fn submit(&self, points: Vec<[f64; 2]>) -> Result<oneshot::Receiver<Reply>, Refused> {
        let n = points.len();
        if n > self.max_queue_points {
            return Err(Refused::TooLarge { limit: self.max_queue_points });
        }
        let before = self.queued.fetch_add(n, Ordering::SeqCst);
        if before + n > self.max_queue_points {
            self.queued.fetch_sub(n, Ordering::SeqCst);
            return Err(Refused::Busy);
        }
        let (reply, receiver) = oneshot::channel();
        if self.jobs.send(Job { points, enqueued: Instant::now(), reply }).is_err() {
            self.queued.fetch_sub(n, Ordering::SeqCst);
            return Err(Refused::Busy);
        }
        Ok(receiver)
    }

    /// Points waiting or being embedded now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }
}

fn run(model: &str, encoder: &FeatureEncoder, batch: Vec<Job>, points: usize, metrics: &Metrics) {
    let started = Instant::now();
    let queue_times: Vec<Duration> = batch.iter().map(|j| started.duration_since(j.enqueued)).collect();
    let all: Vec<[f64; 2]> = batch.iter().flat_map(|j| j.points.iter().copied()).collect();
    let mut out = Vec::new();
    let result = encoder.embed_into_f32(&all, &mut out).map_err(|e| e.to_string());
    metrics.batch(model, points, &queue_times);
    let dim = encoder.dim();
    let mut offset = 0;
    for job in batch {
        let rows = job.points.len() * dim;
        let reply = match &result {
            Ok(()) => Ok(out[offset..offset + rows].to_vec()),
            Err(e) => Err(e.clone()),
        };
        offset += rows;
        // The client may have gone (timeout, closed connection): nothing to do then.
        let _ = job.reply.send(reply);
    }
}
