//! `serve-load`: a bounded load test of `satclip serve` on loopback, as a Markdown table.
//!
//! The service runs in this process on 127.0.0.1 (a free port) with its default limits. Two
//! loads, each for `--seconds` (default 20): `--clients` (default 64) clients each sending one
//! point per request as JSON, and `--bulk-clients` (default 2) clients sending 10 000 points per
//! request as NPY. Beside them, the same model embeds a file of points NPY to NPY through the
//! library (`satclip embed`'s path), for the bulk ratio. `--soak SECONDS` repeats the
//! single-point load that long and samples resident memory every 10 s.
//!
//! Usage: cargo run --release -p satclip-bench --bin serve-load -- [--model SPEC] [--seconds N]

use std::io::Cursor;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use satclip_serve::{ServeConfig, Service};

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// (current, peak) resident memory of this process in MB.
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Load {
    requests: usize,
    points: usize,
    errors: std::collections::BTreeMap<u16, usize>,
    latencies: Vec<Duration>,
    seconds: f64,
}

impl Load {
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1e3
    }
}

type Make = fn(&mut Pcg64) -> (&'static str, Vec<u8>, usize);

/// `clients` connections, each sending `make(rng)` (content type, body, points) and waiting for
/// the answer until `seconds` pass. The clients are tasks of one thread speaking minimal HTTP/1.1
/// with keep-alive (as wrk or oha do), so that the load generator takes little of the CPU the
/// service runs on.
fn load(addr: std::net::SocketAddr, clients: usize, seconds: f64, make: Make) -> Load {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let results = runtime.block_on(async move {
        let tasks: Vec<_> = (0..clients).map(|c| tokio::spawn(client(addr, make, deadline, c as u64))).collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    });
    let mut total = Load { requests: 0, points: 0, errors: Default::default(), latencies: Vec::new(), seconds: 0.0 };
    for (latencies, errors, points) in results {
        total.requests += latencies.len();
        total.latencies.extend(latencies);
        errors.into_iter().for_each(|s| *total.errors.entry(s).or_default() += 1);
        total.points += points;
    }
    total.seconds = started.elapsed().as_secs_f64();
    total.latencies.sort();
    total
}

async fn client(
    addr: std::net::SocketAddr,
    make: Make,
    deadline: Instant,
    seed: u64,
) -> (Vec<Duration>, Vec<u16>, usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut rng = Pcg64::seed_from_u64(seed);
    let (mut latencies, mut errors, mut points) = (Vec::new(), Vec::new(), 0);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    while Instant::now() < deadline {
        let (content_type, body, n) = make(&mut rng);
        let sent = Instant::now();
        let head = format!(
            "POST /embed HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(&body);
        stream.write_all(&request).await.unwrap();
        // The answer: status line and headers, then Content-Length bytes.
        buf.clear();
        let (status, total) = loop {
            let mut chunk = [0u8; 1 << 16];
            let got = stream.read(&mut chunk).await.unwrap();
            assert!(got > 0, "the service closed the connection");
            buf.extend_from_slice(&chunk[..got]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                break (status, end + 4 + length);
            }
        };
        while buf.len() < total {
            let mut chunk = vec![0u8; total - buf.len()];
            let got = stream.read(&mut chunk).await.unwrap();
            assert!(got > 0, "the service closed the connection");
            buf.extend_from_slice(&chunk[..got]);
        }
        latencies.push(sent.elapsed());
        if status == 200 {
            points += n;
        } else {
            errors.push(status);
        }
    }
    (latencies, errors, points)
}

fn random_point(rng: &mut Pcg64) -> [f64; 2] {
    [rng.random_range(-180.0..180.0), rng.random_range(-90.0..90.0)]
}

fn single(rng: &mut Pcg64) -> (&'static str, Vec<u8>, usize) {
    let p = random_point(rng);
    ("application/json", format!("{{\"coordinates\":[[{},{}]]}}", p[0], p[1]).into_bytes(), 1)
}

const BULK: usize = 10_000;

fn npy(points: &[[f64; 2]]) -> Vec<u8> {
    let mut w = satclip_io::npy::NpyWriter::new(Cursor::new(Vec::new()), satclip::Dtype::F64, 2).unwrap();
    w.write_rows(&points.concat()).unwrap();
    w.finish().unwrap().into_inner()
}

fn bulk(rng: &mut Pcg64) -> (&'static str, Vec<u8>, usize) {
    let points: Vec<[f64; 2]> = (0..BULK).map(|_| random_point(rng)).collect();
    ("application/x-npy", npy(&points), BULK)
}

fn row(what: &str, l: &Load) {
    let errors = if l.errors.is_empty() {
        "0".to_string()
    } else {
        l.errors.iter().map(|(s, n)| format!("{n}× {s}")).collect::<Vec<_>>().join(", ")
    };
    println!(
        "| {what} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {errors} | {:.0} |",
        l.requests as f64 / l.seconds,
        l.points as f64 / l.seconds,
        l.percentile_ms(0.5),
        l.percentile_ms(0.99),
        l.latencies.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        rss_mb().1
    );
}

fn main() {
    let spec: String = arg("--model", "default".to_string());
    let seconds: f64 = arg("--seconds", 20.0);
    let clients: usize = arg("--clients", 64);
    let bulk_clients: usize = arg("--bulk-clients", 2);
    let soak: f64 = arg("--soak", 0.0);
    let defaults = ServeConfig::default();
    let max_wait_ms: f64 = arg("--max-wait-ms", defaults.max_wait.as_secs_f64() * 1e3);
    let config = ServeConfig { max_wait: Duration::from_secs_f64(max_wait_ms / 1e3), ..defaults };

    let service = Service::load(&[(spec.clone(), spec.clone())], config).expect("the model loads");
    let server = satclip_serve::Background::start(service).expect("the service starts");
    let addr = server.addr;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_default();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "model `{spec}`, {threads} threads ({cpu}); clients and service in one process on loopback, {seconds} s per \
         load, batches wait at most {max_wait_ms} ms\n"
    );
    println!("| load | requests/s | points/s | p50 ms | p99 ms | max ms | non-2xx | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|---|");
    row(&format!("{clients} clients × 1 point (JSON)"), &load(addr, clients, seconds, single));
    let bulk_load = load(addr, bulk_clients.max(1), seconds, bulk);
    row(&format!("{} clients × {BULK} points (NPY)", bulk_clients.max(1)), &bulk_load);

    // The library's file path on the same model: NPY in, NPY out, as `satclip embed` runs it.
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("points.npy"), dir.path().join("embeddings.npy"));
    let mut rng = Pcg64::seed_from_u64(7);
    let points: Vec<[f64; 2]> = (0..500_000).map(|_| random_point(&mut rng)).collect();
    std::fs::write(&input, npy(&points)).unwrap();
    let encoder = satclip::FeatureEncoder::load(&spec).unwrap();
    let started = Instant::now();
    satclip::embed_file(&encoder, &input, &output, &satclip::EmbedOptions::default(), &mut |_| {}).unwrap();
    let file_rate = points.len() as f64 / started.elapsed().as_secs_f64();
    let http_rate = bulk_load.points as f64 / bulk_load.seconds;
    println!(
        "\nbulk over HTTP {http_rate:.0} points/s; the library's file path (`satclip embed`, NPY to NPY, 500 000 \
         points) {file_rate:.0} points/s: ratio {:.2}",
        http_rate / file_rate
    );

    if soak > 0.0 {
        println!("\nsoak: {clients} single-point clients for {soak} s; resident memory every 10 s (MB):");
        let (mut samples, mut requests, mut failures) = (Vec::new(), 0, 0);
        for _ in 0..(soak / 10.0).ceil() as usize {
            let l = load(addr, clients, 10.0, single);
            requests += l.requests;
            failures += l.errors.values().sum::<usize>();
            samples.push(format!("{:.0}", rss_mb().0));
        }
        println!("{} ({requests} requests, {failures} non-2xx)", samples.join(", "));
    }
    drop(server);
}
