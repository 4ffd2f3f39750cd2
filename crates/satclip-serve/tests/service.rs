//! The service on 127.0.0.1 with a free port: every route, every error code, concurrent
//! clients, auth, and shutdown while busy.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, FixedSizeListArray, Float32Array, Float64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use satclip::FeatureEncoder;
use satclip_serve::{ServeConfig, Service};

struct Server {
    url: String,
    service: satclip_serve::Background,
}

impl Server {
    fn start(models: &[(&str, &str)], config: ServeConfig) -> Self {
        let models: Vec<(String, String)> = models.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect();
        let service = satclip_serve::Background::start(Service::load(&models, config).unwrap()).unwrap();
        Self { url: format!("http://{}", service.addr), service }
    }

    /// Asks for a graceful shutdown and waits until the server has finished.
    fn stop(&mut self) {
        self.service.stop();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    retry_after: Option<String>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

fn post(url: &str, content_type: &str, accept: Option<&str>, body: &[u8], key: Option<&str>) -> Answer {
    let mut request = agent().post(url).header("Content-Type", content_type);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    if let Some(key) = key {
        request = request.header("Authorization", format!("Bearer {key}"));
    }
    let mut response = request.send(body).unwrap();
    answer(&mut response)
}

fn get(url: &str, key: Option<&str>) -> Answer {
    let mut request = agent().get(url);
    if let Some(key) = key {
        request = request.header("Authorization", format!("Bearer {key}"));
    }
    answer(&mut request.call().unwrap())
}

fn answer(response: &mut ureq::http::Response<ureq::Body>) -> Answer {
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (content_type, retry_after) = (header("content-type").unwrap_or_default(), header("retry-after"));
    let body = response.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
    Answer { status: response.status().as_u16(), content_type, body, retry_after }
}

fn json_post(url: &str, body: &serde_json::Value) -> Answer {
    post(url, "application/json", None, body.to_string().as_bytes(), None)
}

const POINTS: [[f64; 2]; 4] = [[-122.42, 37.77], [139.69, 35.69], [2.35, 48.86], [-58.38, -34.6]];

fn expected(spec: &str) -> Vec<f32> {
    FeatureEncoder::load(spec).unwrap().embed_f32(&POINTS).unwrap()
}

fn npy_body(points: &[[f64; 2]]) -> Vec<u8> {
    let mut w = satclip_io::npy::NpyWriter::new(Cursor::new(Vec::new()), satclip::Dtype::F64, 2).unwrap();
    w.write_rows(&points.concat()).unwrap();
    w.finish().unwrap().into_inner()
}

fn read_npy(bytes: &[u8]) -> (Vec<usize>, Vec<f64>) {
    satclip_io::npy::read_array("answer".as_ref(), &mut Cursor::new(bytes), bytes.len() as u64).unwrap()
}

#[test]
fn every_route_in_every_format() {
    let server = Server::start(&[("default", "default"), ("sh", "sh-l10")], ServeConfig::default());
    let url = |route: &str| format!("{}{route}", server.url);
    let want = expected("default");

    // JSON in, JSON out: the same numbers as the library.
    let a = json_post(&url("/embed"), &serde_json::json!({ "coordinates": POINTS }));
    assert_eq!((a.status, a.content_type.as_str()), (200, "application/json"));
    let v = a.json();
    assert_eq!((v["model"].as_str(), v["dim"].as_u64()), (Some("default"), Some(256)));
    let got: Vec<f32> = v["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32))
        .collect();
    assert_eq!(got, want);

    // Normalised, and another model by name.
    let v = json_post(&url("/embed"), &serde_json::json!({ "coordinates": POINTS, "normalize": true, "model": "sh" }))
        .json();
    assert_eq!(v["dim"], 100);
    for row in v["embeddings"].as_array().unwrap() {
        let norm: f64 = row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap().powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }

    // NPY in, NPY out; and JSON in with Accept: NPY.
    let a = post(&url("/embed"), "application/x-npy", None, &npy_body(&POINTS), None);
    assert_eq!((a.status, a.content_type.as_str()), (200, "application/x-npy"));
    let (shape, values) = read_npy(&a.body);
    assert_eq!(shape, vec![4, 256]);
    assert_eq!(values.iter().map(|v| *v as f32).collect::<Vec<_>>(), want);
    let body = serde_json::json!({ "coordinates": POINTS }).to_string();
    let a = post(&url("/embed"), "application/json", Some("application/x-npy"), body.as_bytes(), None);
    assert_eq!(read_npy(&a.body).1.iter().map(|v| *v as f32).collect::<Vec<_>>(), want);

    // Arrow IPC in (any extra columns travel), Arrow IPC out with a fixed-size list column.
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Float64, false),
        Field::new("longitude", DataType::Float64, false),
        Field::new("latitude", DataType::Float32, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])),
            Arc::new(Float64Array::from(POINTS.iter().map(|p| p[0]).collect::<Vec<_>>())),
            Arc::new(Float32Array::from(POINTS.iter().map(|p| p[1] as f32).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    let a = post(
        &url("/embed?normalize=false"),
        "application/vnd.apache.arrow.stream",
        None,
        &w.into_inner().unwrap(),
        None,
    );
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "application/vnd.apache.arrow.stream"),
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let batches: Vec<RecordBatch> =
        arrow_ipc::reader::StreamReader::try_new(Cursor::new(a.body), None).unwrap().map(Result::unwrap).collect();
    let out = &batches[0];
    assert_eq!(out.schema().field(0).name(), "id");
    let list = out.column(3).as_any().downcast_ref::<FixedSizeListArray>().unwrap();
    assert_eq!(list.value_length(), 256);
    let values = list.values().as_any().downcast_ref::<Float32Array>().unwrap();
    // The latitudes went through float32: compare with the library on those.
    let narrowed: Vec<[f64; 2]> = POINTS.iter().map(|p| [p[0], p[1] as f32 as f64]).collect();
    let want_narrow = FeatureEncoder::load("default").unwrap().embed_f32(&narrowed).unwrap();
    assert_eq!(values.values().to_vec(), want_narrow);

    // Similarity: a point is itself.
    let v = json_post(&url("/similarity"), &serde_json::json!({ "a": [POINTS[0]], "b": POINTS })).json();
    let row = v["similarity"][0].as_array().unwrap();
    assert_eq!(row.len(), 4);
    assert!((row[0].as_f64().unwrap() - 1.0).abs() < 1e-5);

    // Health, info, metrics, OpenAPI.
    assert_eq!(get(&url("/health"), None).json()["status"], "ok");
    let info = get(&url("/info"), None).json();
    assert_eq!(info["models"][0]["name"], "default");
    assert_eq!(info["models"][0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(info["models"][1]["dim"], 100);
    let metrics = String::from_utf8(get(&url("/metrics"), None).body).unwrap();
    for needle in [
        "satclip_requests_total{route=\"/embed\",status=\"200\"} 5",
        "satclip_points_embedded_total{model=\"default\"} 21",
        "satclip_queue_seconds_count",
        "satclip_batch_points_bucket",
    ] {
        assert!(metrics.contains(needle), "{needle} not in\n{metrics}");
    }
    let openapi = get(&url("/openapi.json"), None).json();
    assert_eq!(openapi["openapi"], "3.1.0");
    for route in ["/embed", "/similarity", "/locate", "/health", "/info", "/metrics"] {
        assert!(openapi["paths"][route].is_object(), "{route}");
    }
}

#[test]
fn every_error_code() {
    let config = ServeConfig {
        max_body_bytes: 4096,
        max_queue_points: 100,
        max_wait: Duration::from_millis(1500),
        ..ServeConfig::default()
    };
    let server = Server::start(&[("default", "default")], config);
    let url = format!("{}/embed", server.url);
    let code = |a: Answer| (a.status, a.json()["error"].as_str().unwrap_or_default().to_string());

    let (status, message) = code(post(&url, "application/json", None, b"{\"coordinates\": [[1, 2]", None));
    assert_eq!(status, 400, "{message}");
    let (status, message) = code(json_post(&url, &serde_json::json!({ "coordinates": [[1, 2], [3, 4], [5, -91]] })));
    assert_eq!(status, 422);
    assert!(message.contains("coordinates[2]: lat = -91"), "{message}");
    let (status, message) = code(json_post(&url, &serde_json::json!({ "coordinates": [[1, 2]], "model": "nope" })));
    assert_eq!(status, 422);
    assert!(message.contains("no model `nope`; this service has: default"), "{message}");
    let (status, message) = code(post(&url, "text/csv", None, b"lon,lat\n1,2\n", None));
    assert_eq!(status, 415, "{message}");
    let (status, _) = code(post(&url, "application/json", None, &vec![b' '; 5000], None));
    assert_eq!(status, 413);
    let (status, message) = code(post(&url, "application/x-npy", None, &npy_body(&[[0.0, 0.0]])[..60], None));
    assert_eq!(status, 400, "{message}");
    let (status, message) =
        code(post(&url, "application/vnd.apache.arrow.stream", None, b"\xff\xff\xff\xff\x10\x00\x00\x00abc", None));
    assert_eq!(status, 400, "{message}");
    assert_eq!(get(&format!("{}/nope", server.url), None).status, 404);

    // 101 points never fit the queue: 413. 60 fit, but not twice while the first waits for its
    // batch (1.5 s): the second gets 429 with Retry-After.
    let big: Vec<[f64; 2]> = (0..101).map(|i| [i as f64 * 0.1, 0.0]).collect();
    let body = npy_body(&big);
    assert_eq!(post(&url, "application/x-npy", None, &body, None).status, 413);
    let half = npy_body(&big[..60]);
    let first = {
        let (url, half) = (url.clone(), half.clone());
        std::thread::spawn(move || post(&url, "application/x-npy", None, &half, None).status)
    };
    std::thread::sleep(Duration::from_millis(300));
    let busy = post(&url, "application/x-npy", None, &half, None);
    assert_eq!((busy.status, busy.retry_after.as_deref()), (429, Some("1")));
    assert_eq!(first.join().unwrap(), 200);
}

#[test]
fn bearer_auth_guards_all_but_health() {
    let config = ServeConfig { api_key: Some("s3cret".into()), ..ServeConfig::default() };
    let server = Server::start(&[("default", "default")], config);
    let body = serde_json::json!({ "coordinates": [[1, 2]] }).to_string();
    let url = format!("{}/embed", server.url);
    assert_eq!(post(&url, "application/json", None, body.as_bytes(), None).status, 401);
    assert_eq!(post(&url, "application/json", None, body.as_bytes(), Some("s3cre")).status, 401);
    assert_eq!(post(&url, "application/json", None, body.as_bytes(), Some("s3cret")).status, 200);
    assert_eq!(get(&format!("{}/info", server.url), None).status, 401);
    assert_eq!(get(&format!("{}/metrics", server.url), Some("s3cret")).status, 200);
    assert_eq!(get(&format!("{}/health", server.url), None).status, 200);
}

#[test]
fn concurrent_clients_are_batched_and_each_gets_its_own_points() {
    let server = Server::start(
        &[("default", "default")],
        ServeConfig { max_wait: Duration::from_millis(5), ..ServeConfig::default() },
    );
    let encoder = FeatureEncoder::load("default").unwrap();
    let (clients, requests) = (16, 20);
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let url = format!("{}/embed", server.url);
            std::thread::spawn(move || {
                (0..requests)
                    .map(|r| {
                        let point = [-170.0 + (c * requests + r) as f64, (c as f64) - 8.0];
                        let a = json_post(&url, &serde_json::json!({ "coordinates": [point] }));
                        assert_eq!(a.status, 200);
                        let row: Vec<f32> = a.json()["embeddings"][0]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|x| x.as_f64().unwrap() as f32)
                            .collect();
                        (point, row)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        for (point, row) in thread.join().unwrap() {
            assert_eq!(row, encoder.embed_f32(&[point]).unwrap(), "{point:?}");
        }
    }
    let metrics = String::from_utf8(get(&format!("{}/metrics", server.url), None).body).unwrap();
    let batches: u64 =
        metrics.lines().find_map(|l| l.strip_prefix("satclip_batch_points_count ")).unwrap().parse().unwrap();
    assert!(
        batches < (clients * requests) as u64,
        "{batches} batches for {} requests: nothing was merged",
        clients * requests
    );
}

#[test]
fn shutdown_finishes_accepted_requests() {
    let mut server = Server::start(
        &[("default", "default")],
        ServeConfig { max_wait: Duration::from_millis(800), ..ServeConfig::default() },
    );
    let url = format!("{}/embed", server.url);
    let busy = {
        let url = url.clone();
        std::thread::spawn(move || json_post(&url, &serde_json::json!({ "coordinates": POINTS })).status)
    };
    std::thread::sleep(Duration::from_millis(200));
    server.stop();
    assert_eq!(busy.join().unwrap(), 200);
    assert!(agent().get(&format!("{}/health", server.url)).call().is_err(), "the listener is closed");
}

#[test]
fn locate_matches_the_command_line() {
    let Some(ckpt) = satclip_testkit::shared_file("fixtures/satclip-resnet18-l10.ckpt") else { return };
    let Some(tiles) = satclip_testkit::shared_file("data/s2-samples") else { return };
    let tile = std::fs::read_dir(&tiles)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tif"))
        .min()
        .unwrap();
    let config = ServeConfig { locate_points: 2000, ..ServeConfig::default() };
    let server = Server::start(&[("default", "default"), ("r18", ckpt.to_str().unwrap())], config);
    let bytes = std::fs::read(&tile).unwrap();
    let a = post(&format!("{}/locate?model=r18&top_k=3", server.url), "image/tiff", None, &bytes, None);
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    let want = satclip::locate(&ckpt, 2000, 3, std::slice::from_ref(&tile)).unwrap();
    let candidates = v["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 3);
    for (got, (at, cosine, _)) in candidates.iter().zip(&want[0].candidates) {
        assert_eq!((got["lon"].as_f64().unwrap(), got["lat"].as_f64().unwrap()), (at[0], at[1]));
        assert!((got["cosine"].as_f64().unwrap() - *cosine as f64).abs() < 1e-6);
    }
    // The built-in model has no image tower; a non-tile body is refused.
    let a = post(&format!("{}/locate", server.url), "image/tiff", None, &bytes, None);
    assert_eq!(a.status, 422);
    let a = post(&format!("{}/locate?model=r18", server.url), "image/tiff", None, b"II*\0garbage", None);
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
}
