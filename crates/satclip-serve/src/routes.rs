//! The routes, their formats and errors.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Query, Request, State as Extract};
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use crate::batcher::Refused;
use crate::request::{self, EmbedRequest, Points, SimilarityRequest};
use crate::{Model, State};

type AppState = Extract<Arc<State>>;

pub fn router(state: Arc<State>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/embed", post(embed))
        .route("/similarity", post(similarity))
        .route("/locate", post(locate))
        .route("/health", get(health))
        .route("/info", get(info))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// An error as JSON: `{"error": "...", "status": 422}`.
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "status": self.status.as_u16() }).to_string();
        let mut response = (self.status, [(CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

type Result<T> = std::result::Result<T, ApiError>;

/// Authentication, then the request, then its metrics (route, status, time).
async fn guard(Extract(state): AppState, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let response = match &state.config.api_key {
        Some(key) if route != "/health" && !authorised(request.headers(), key) => {
            let mut r =
                ApiError::new(401, "missing or wrong bearer token: send `Authorization: Bearer <key>`").into_response();
            r.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer"));
            r
        }
        _ => next.run(request).await,
    };
    state.metrics.request(&route, response.status().as_u16(), started.elapsed());
    response
}

fn authorised(headers: &HeaderMap, key: &str) -> bool {
    let given = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|given| constant_time_eq(given.trim().as_bytes(), key.as_bytes()))
}

/// Equal or not in a time that does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    difference == 0
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Format {
    Json,
    Arrow,
    Npy,
}

const ARROW: &str = "application/vnd.apache.arrow.stream";
const NPY: &str = "application/x-npy";

impl Format {
    fn from_mime(mime: &str) -> Option<Self> {
        match mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
            "application/json" => Some(Self::Json),
            ARROW => Some(Self::Arrow),
            NPY | "application/npy" => Some(Self::Npy),
            _ => None,
        }
    }

    fn mime(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Arrow => ARROW,
            Self::Npy => NPY,
        }
    }
}

fn request_format(headers: &HeaderMap) -> Result<Format> {
    let given = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    Format::from_mime(given).ok_or_else(|| {
        ApiError::new(415, format!("Content-Type `{given}` is not one of application/json, {ARROW} or {NPY}"))
    })
}

/// The first format `Accept` names that we write, else the request's own.
fn response_format(headers: &HeaderMap, request: Format) -> Format {
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    accept.split(',').find_map(Format::from_mime).unwrap_or(request)
}

fn body(body: std::result::Result<Bytes, BytesRejection>) -> Result<Bytes> {
    body.map_err(|e| {
        let status = e.status().as_u16();
        let message = if status == 413 {
            "the body is larger than the service's limit (--max-body-bytes)".into()
        } else {
            e.body_text()
        };
        ApiError::new(status, message)
    })
}

fn model<'a>(state: &'a State, name: Option<&str>) -> Result<&'a Model> {
    state.model(name).ok_or_else(|| {
        let names: Vec<&str> = state.models.iter().map(|m| m.name.as_str()).collect();
        ApiError::new(422, format!("no model `{}`; this service has: {}", name.unwrap_or(""), names.join(", ")))
    })
}

/// The `[n × dim]` embeddings of `points` from the model's batcher.
async fn embed_points(state: &State, model: &Model, points: Vec<[f64; 2]>) -> Result<Vec<f32>> {
    let receiver = model.batcher.submit(points).map_err(|refused| match refused {
        Refused::Busy => ApiError {
            retry_after: Some(1),
            ..ApiError::new(429, "the service is busy (its queue of points is full); retry after a second")
        },
        Refused::TooLarge { limit } => {
            ApiError::new(413, format!("more points than the service queues at once ({limit}); split the request"))
        }
    })?;
    match tokio::time::timeout(state.config.request_timeout, receiver).await {
        Ok(Ok(Ok(values))) => Ok(values),
        Ok(Ok(Err(message))) => Err(ApiError::new(500, message)),
        Ok(Err(_)) => Err(ApiError::new(500, "the model's worker stopped")),
        Err(_) => Err(ApiError::new(503, "timed out waiting for the embeddings (--request-timeout)")),
    }
}

#[derive(Deserialize)]
struct EmbedParams {
    model: Option<String>,
    #[serde(default)]
    normalize: bool,
    lon: Option<String>,
    lat: Option<String>,
}

async fn embed(
    Extract(state): AppState,
    params: std::result::Result<Query<EmbedParams>, QueryRejection>,
    headers: HeaderMap,
    raw: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let Query(params) = params.map_err(|e| ApiError::new(400, e.body_text()))?;
    let format = request_format(&headers)?;
    let bytes = body(raw)?;
    let origin = Path::new("request body");
    let (points, rows, name, normalize) = match format {
        Format::Json => {
            let r: EmbedRequest = request::parse(&bytes).map_err(|e| ApiError::new(e.status, e.message))?;
            (r.coordinates.0, None, r.model.or(params.model), r.normalize || params.normalize)
        }
        Format::Arrow => {
            let (rows, points) =
                satclip_io::tables::ipc::read_points(&bytes, origin, params.lon.as_deref(), params.lat.as_deref())
                    .map_err(io_error)?;
            (points, Some(rows), params.model, params.normalize)
        }
        Format::Npy => (npy_points(&bytes)?, None, params.model, params.normalize),
    };
    let model = model(&state, name.as_deref())?;
    let answer = response_format(&headers, format);
    let rows = match (answer, rows) {
        (Format::Arrow, None) => Some(lonlat_batch(&points)),
        (_, rows) => rows,
    };
    let mut values = embed_points(&state, model, points).await?;
    if normalize {
        values.chunks_exact_mut(model.dim).for_each(normalise);
    }
    let dim = model.dim;
    Ok(match answer {
        Format::Json => {
            let mut out = format!("{{\"model\":{},\"dim\":{dim},\"embeddings\":[", json!(model.name)).into_bytes();
            for (i, row) in values.chunks_exact(dim).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, row).map_err(|e| ApiError::new(500, e.to_string()))?;
            }
            out.extend_from_slice(b"]}");
            ([(CONTENT_TYPE, Format::Json.mime())], out).into_response()
        }
        Format::Npy => {
            let mut writer = satclip_io::npy::NpyWriter::new(Cursor::new(Vec::new()), satclip::Dtype::F32, dim)
                .and_then(|mut w| w.write_rows(&values).map(|_| w))
                .and_then(|w| w.finish())
                .map_err(|e| ApiError::new(500, e.to_string()))?;
            let bytes = std::mem::take(writer.get_mut());
            ([(CONTENT_TYPE, Format::Npy.mime())], bytes).into_response()
        }
        Format::Arrow => {
            let rows = rows.expect("set above for Arrow answers");
            let bytes = satclip_io::tables::ipc::write_embeddings(&rows, values, dim).map_err(io_error)?;
            ([(CONTENT_TYPE, Format::Arrow.mime())], bytes).into_response()
        }
    })
}

/// `lon` and `lat` columns, for an Arrow answer to a JSON or NPY request.
fn lonlat_batch(points: &[[f64; 2]]) -> arrow_array::RecordBatch {
    use arrow_schema::{DataType, Field, Schema};
    let column = |i: usize| -> arrow_array::ArrayRef {
        Arc::new(arrow_array::Float64Array::from(points.iter().map(|p| p[i]).collect::<Vec<_>>()))
    };
    let schema =
        Schema::new(vec![Field::new("lon", DataType::Float64, false), Field::new("lat", DataType::Float64, false)]);
    arrow_array::RecordBatch::try_new(Arc::new(schema), vec![column(0), column(1)]).expect("two columns of one length")
}

fn io_error(e: satclip::Error) -> ApiError {
    match e {
        satclip::Error::Row { .. } => ApiError::new(422, e.to_string()),
        _ => ApiError::new(400, e.to_string()),
    }
}

/// An `[n, 2]` NPY array of (lon, lat), each row checked.
fn npy_points(bytes: &[u8]) -> Result<Vec<[f64; 2]>> {
    let origin = Path::new("request body");
    let (shape, values) =
        satclip_io::npy::read_array(origin, &mut Cursor::new(bytes), bytes.len() as u64).map_err(io_error)?;
    if shape.len() != 2 || shape[1] != 2 {
        return Err(ApiError::new(422, format!("the NPY array has shape {shape:?}; expected [N, 2] (lon, lat)")));
    }
    values
        .chunks_exact(2)
        .enumerate()
        .map(|(i, p)| {
            satclip_core::check_coordinate(p[0], p[1])
                .map(|()| [p[0], p[1]])
                .map_err(|problem| ApiError::new(422, format!("row {i}: {problem}")))
        })
        .collect()
}

fn normalise(row: &mut [f32]) {
    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        row.iter_mut().for_each(|v| *v /= norm);
    }
}

async fn similarity(
    Extract(state): AppState,
    headers: HeaderMap,
    raw: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    if request_format(&headers)? != Format::Json {
        return Err(ApiError::new(415, "/similarity takes application/json"));
    }
    let bytes = body(raw)?;
    let SimilarityRequest { a: Points(a), b: Points(b), model: name } =
        request::parse(&bytes).map_err(|e| ApiError::new(e.status, e.message))?;
    const MAX_CELLS: usize = 1_000_000;
    if a.len().saturating_mul(b.len()) > MAX_CELLS {
        return Err(ApiError::new(422, format!("{} × {} similarities is more than {MAX_CELLS}", a.len(), b.len())));
    }
    let model = model(&state, name.as_deref())?;
    let na = a.len();
    let mut values = embed_points(&state, model, a.into_iter().chain(b).collect()).await?;
    values.chunks_exact_mut(model.dim).for_each(normalise);
    let (left, right) = values.split_at(na * model.dim);
    let matrix: Vec<Vec<f32>> = left
        .chunks_exact(model.dim)
        .map(|x| right.chunks_exact(model.dim).map(|y| x.iter().zip(y).map(|(p, q)| p * q).sum()).collect())
        .collect();
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        model: &'a str,
        similarity: Vec<Vec<f32>>,
    }
    let body = serde_json::to_vec(&Answer { model: &model.name, similarity: matrix })
        .map_err(|e| ApiError::new(500, e.to_string()))?;
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

/// A checkpoint's image tower and the embedded candidate lattice, built on the first `/locate`.
pub struct LocateModel {
    tower: satclip::vision::Tower,
    locator: satclip::Locator,
}

fn locate_model(state: &State, model: &Model) -> Result<Arc<LocateModel>> {
    let Some(checkpoint) = &model.checkpoint else {
        return Err(ApiError::new(
            422,
            format!("model `{}` has no image tower; /locate needs an official checkpoint (e.g. vit16-l40)", model.name),
        ));
    };
    let built = model.locate.get_or_init(|| {
        use satclip::FromCheckpoint;
        let tower = satclip::load_tower(checkpoint).map_err(|e| e.to_string())?;
        let encoder = satclip::LocationEncoder::from_checkpoint(checkpoint).map_err(|e| e.to_string())?;
        let lattice = satclip_core::geo::fibonacci_lattice(state.config.locate_points.max(1));
        let locator = satclip::Locator::new(&encoder, lattice).map_err(|e| e.to_string())?;
        Ok(Arc::new(LocateModel { tower, locator }))
    });
    built.clone().map_err(|e| ApiError::new(422, e))
}

#[derive(Deserialize)]
struct LocateParams {
    model: Option<String>,
    #[serde(default = "five")]
    top_k: usize,
}

fn five() -> usize {
    5
}

async fn locate(
    Extract(state): AppState,
    params: std::result::Result<Query<LocateParams>, QueryRejection>,
    raw: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let Query(params) = params.map_err(|e| ApiError::new(400, e.body_text()))?;
    let bytes = body(raw)?;
    let top_k = params.top_k.clamp(1, 1000);
    let name = model(&state, params.model.as_deref())?.name.clone();
    let worker = Arc::clone(&state);
    let answer = tokio::task::spawn_blocking(move || -> Result<serde_json::Value> {
        let model = worker.model(Some(&name)).expect("the model was found above");
        let located = locate_model(&worker, model)?;
        // The tile goes through the same reader, with the same size limits, as `satclip locate`.
        let mut file =
            tempfile::Builder::new().suffix(".tif").tempfile().map_err(|e| ApiError::new(500, e.to_string()))?;
        std::io::Write::write_all(&mut file, &bytes).map_err(|e| ApiError::new(500, e.to_string()))?;
        let (image, centre) = satclip::read_sentinel2(file.path(), located.tower.input_size())
            .map_err(|e| ApiError::new(422, e.to_string().replace(&file.path().display().to_string(), "the tile")))?;
        let embedding = located.tower.embed(&image);
        let candidates: Vec<serde_json::Value> = located
            .locator
            .top_k(&embedding, top_k)
            .into_iter()
            .map(|(at, cosine)| {
                let km = centre.map(|c| satclip_core::geo::haversine_km(c, at));
                json!({ "lon": at[0], "lat": at[1], "cosine": cosine, "distance_km": km })
            })
            .collect();
        Ok(json!({ "model": name, "centre": centre, "candidates": candidates }))
    });
    let answer = tokio::time::timeout(state.config.request_timeout, answer)
        .await
        .map_err(|_| ApiError::new(503, "timed out locating the tile (--request-timeout)"))?
        .map_err(|e| ApiError::new(500, e.to_string()))??;
    Ok(([(CONTENT_TYPE, "application/json")], answer.to_string()).into_response())
}

async fn health() -> Response {
    ([(CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#).into_response()
}

async fn info(Extract(state): AppState) -> Response {
    let models: Vec<serde_json::Value> = state
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({
                "name": m.name, "spec": m.spec, "dim": m.dim, "sha256": m.provenance.sha256,
                "default": i == 0, "image_tower": m.checkpoint.is_some(), "provenance": m.provenance,
            })
        })
        .collect();
    let c = &state.config;
    let body = json!({
        "service": "satclip",
        "version": env!("CARGO_PKG_VERSION"),
        "gemm_isa": satclip_core::kernels::gemm_isa(),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "models": models,
        "limits": {
            "max_batch_points": c.max_batch_points, "max_wait_ms": c.max_wait.as_secs_f64() * 1e3,
            "max_queue_points": c.max_queue_points, "max_body_bytes": c.max_body_bytes,
            "request_timeout_s": c.request_timeout.as_secs_f64(), "locate_points": c.locate_points,
            "auth": c.api_key.is_some(),
        },
    });
    ([(CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn metrics(Extract(state): AppState) -> Response {
    let queued: Vec<(String, usize)> = state.models.iter().map(|m| (m.name.clone(), m.batcher.queued())).collect();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(&queued)).into_response()
}

async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/json")], crate::openapi::document().to_string()).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(404, "no such route; see /openapi.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn formats_by_mime_type() {
        assert_eq!(Format::from_mime("application/json; charset=utf-8"), Some(Format::Json));
        assert_eq!(Format::from_mime(ARROW), Some(Format::Arrow));
        assert_eq!(Format::from_mime("text/csv"), None);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("text/html, application/x-npy"));
        assert_eq!(response_format(&headers, Format::Json), Format::Npy);
        assert_eq!(response_format(&HeaderMap::new(), Format::Arrow), Format::Arrow);
    }
}
