//! Prometheus metrics, kept by hand: requests by route and status, latency and queue-time
//! histograms, batch sizes and points embedded per model.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const SECONDS: &[f64] = &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const POINTS: &[f64] = &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0];

#[derive(Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(&mut self.counts) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    queue_time: Histogram,
    batch_points: Histogram,
    points: BTreeMap<String, u64>,
}

pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                requests: BTreeMap::new(),
                latency: BTreeMap::new(),
                queue_time: Histogram::new(SECONDS),
                batch_points: Histogram::new(POINTS),
                points: BTreeMap::new(),
            }),
        }
    }
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.requests.entry((route.to_string(), status)).or_default() += 1;
        m.latency.entry(route.to_string()).or_insert_with(|| Histogram::new(SECONDS)).observe(elapsed.as_secs_f64());
    }

    /// One batch of `points` for `model`, whose requests waited `queue_times` in the queue.
    pub fn batch(&self, model: &str, points: usize, queue_times: &[Duration]) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.batch_points.observe(points as f64);
        queue_times.iter().for_each(|t| m.queue_time.observe(t.as_secs_f64()));
        *m.points.entry(model.to_string()).or_default() += points as u64;
    }

    /// The exposition text; `queued` is the points waiting per model now.
    pub fn render(&self, queued: &[(String, usize)]) -> String {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out.push_str("# HELP satclip_requests_total Requests answered, by route and status.\n");
        out.push_str("# TYPE satclip_requests_total counter\n");
        for ((route, status), n) in &m.requests {
            let _ = writeln!(out, "satclip_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP satclip_request_duration_seconds Time from request to response, by route.\n");
        out.push_str("# TYPE satclip_request_duration_seconds histogram\n");
        for (route, h) in &m.latency {
            h.render(&mut out, "satclip_request_duration_seconds", &format!("route=\"{route}\""));
        }
        out.push_str("# HELP satclip_queue_seconds Time a request's points waited for their batch.\n");
        out.push_str("# TYPE satclip_queue_seconds histogram\n");
        m.queue_time.render(&mut out, "satclip_queue_seconds", "");
        out.push_str("# HELP satclip_batch_points Points per batch computed.\n");
        out.push_str("# TYPE satclip_batch_points histogram\n");
        m.batch_points.render(&mut out, "satclip_batch_points", "");
        out.push_str("# HELP satclip_points_embedded_total Points embedded, by model.\n");
        out.push_str("# TYPE satclip_points_embedded_total counter\n");
        for (model, n) in &m.points {
            let _ = writeln!(out, "satclip_points_embedded_total{{model=\"{model}\"}} {n}");
        }
        out.push_str("# HELP satclip_queued_points Points waiting to be embedded, by model.\n");
        out.push_str("# TYPE satclip_queued_points gauge\n");
        for (model, n) in queued {
            let _ = writeln!(out, "satclip_queued_points{{model=\"{model}\"}} {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let metrics = Metrics::default();
        for ms in [0, 3, 3, 40] {
            metrics.request("/embed", 200, Duration::from_millis(ms));
        }
        metrics.request("/embed", 422, Duration::from_millis(1));
        let text = metrics.render(&[("default".into(), 7)]);
        for line in [
            "satclip_requests_total{route=\"/embed\",status=\"200\"} 4",
            "satclip_requests_total{route=\"/embed\",status=\"422\"} 1",
            "satclip_request_duration_seconds_bucket{route=\"/embed\",le=\"0.0005\"} 1",
            "satclip_request_duration_seconds_bucket{route=\"/embed\",le=\"0.005\"} 4",
            "satclip_request_duration_seconds_bucket{route=\"/embed\",le=\"0.05\"} 5",
            "satclip_request_duration_seconds_count{route=\"/embed\"} 5",
            "satclip_queued_points{model=\"default\"} 7",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
