//! `satclip serve` as users run it: it says where it listens, answers, and stops on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

fn post(addr: &str, path: &str, body: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[cfg(unix)]
#[test]
fn serves_until_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_satclip"))
        .args(["serve", "--addr", "127.0.0.1:0", "--model", "default", "--model", "sh=sh-l10"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("serving default (256-d), sh (100-d) on http://127.0.0.1:"), "{line}");
    let addr = line.split("http://").nth(1).unwrap().split_whitespace().next().unwrap().to_string();

    let answer = post(&addr, "/embed", r#"{"coordinates": [[13.4, 52.5]], "model": "sh"}"#);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""model":"sh","dim":100"#), "{answer}");
    let answer = post(&addr, "/embed", r#"{"coordinates": [[13.4, 152.5]]}"#);
    assert!(answer.starts_with("HTTP/1.1 422") && answer.contains("coordinates[0]: lat = 152.5"), "{answer}");

    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success() && rest.contains("stopped"), "{status:?} {rest}");
}

#[test]
fn a_model_that_does_not_load_stops_before_listening() {
    let out = Command::new(env!("CARGO_BIN_EXE_satclip"))
        .args(["serve", "--addr", "127.0.0.1:0", "--model", "mine=runs/missing.ckpt"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("runs/missing.ckpt") && !stderr.contains("serving"), "{stderr}");
}
