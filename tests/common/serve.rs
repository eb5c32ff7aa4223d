//! `cairn serve` child processes for end-to-end tests: spawn one on a free
//! loopback port, wait until `/healthz` answers, talk to it over HTTP
//! (a small blocking client), SIGKILL or SIGTERM it. Dropping a
//! [`ServeProcess`] kills it.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most bytes of a server's log kept in memory (the oldest half is dropped).
const LOG_CAP: usize = 8 << 20;

/// A running `cairn serve` process.
pub struct ServeProcess {
    child: Child,
    /// Where its management API listens.
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl ServeProcess {
    /// `cairn --db DB serve --listen 127.0.0.1:0 ARGS...` (global flags may
    /// be among `args`), waiting until `/healthz` answers 200.
    pub fn start(db: impl AsRef<OsStr>, args: &[&str]) -> Self {
        Self::start_with_env(db, args, &[])
    }

    /// As [`Self::start`], with extra environment variables.
    pub fn start_with_env(db: impl AsRef<OsStr>, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.arg("--db")
            .arg(db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    /// Spawns `cmd` (a `cairn ... serve --listen 127.0.0.1:0 ...` command
    /// line), reads its address from the banner on stderr and waits until
    /// `/healthz` answers 200. Panics with the log when it does not start.
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cairn serve starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log: Arc<Mutex<String>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        // The address is on the banner line; the rest of stderr is kept.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("management API on http://").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.split('/').next().unwrap_or_default().to_owned());
                }
                let mut l = sink.lock().unwrap();
                if l.len() > LOG_CAP {
                    let cut = l.len() / 2;
                    let cut = (cut..l.len()).find(|i| l.is_char_boundary(*i)).unwrap_or(0);
                    l.drain(..cut);
                }
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().expect("a socket address in the banner"),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "cairn serve did not start (exit: {status:?}); its log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        let server = Self { child, addr, log };
        server.wait_healthy(Duration::from_secs(60));
        server
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `GET /healthz` answers 200 (panics after `limit`).
    pub fn wait_healthy(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(r) = try_request(self.addr, "GET", "/healthz", None, Duration::from_secs(5))
                && r.status == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/healthz of {} did not answer 200 within {limit:?}; log:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a graceful stop); waits at most `limit` for it to exit and
    /// returns its exit status (`None`: it did not exit in time, and was killed).
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        None
    }

    /// A request to this server (see [`request`]).
    pub fn req(&self, method: &str, path: &str, body: Option<&str>) -> HttpReply {
        request(self.addr, method, path, body)
    }

    pub fn get(&self, path: &str) -> HttpReply {
        self.req("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &str) -> HttpReply {
        self.req("POST", path, Some(body))
    }

    /// POSTs a component (`application/wasm`) to `/api/components`.
    pub fn deploy(&self, wasm: &[u8]) -> HttpReply {
        let r = try_send(
            self.addr,
            "POST",
            "/api/components",
            &[("Content-Type", "application/wasm")],
            wasm,
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("deploying on {}: {e}", self.addr));
        assert_eq!(r.status, 200, "deploy: {}", r.text());
        r
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A response of the blocking client.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} (status {})", self.text(), self.status))
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        self
    }
}

/// One request on a new connection (JSON body when given); panics when the
/// server cannot be reached. Waits up to 120 s for the answer.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> HttpReply {
    try_request(addr, method, path, body, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// As [`request`], returning connection errors.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    limit: Duration,
) -> std::io::Result<HttpReply> {
    let headers: &[(&str, &str)] = if body.is_some() {
        &[("Content-Type", "application/json")]
    } else {
        &[]
    };
    try_send(addr, method, path, headers, body.unwrap_or_default().as_bytes(), limit)
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the answer.
pub fn try_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> std::io::Result<HttpReply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(limit))?;
    s.set_write_timeout(Some(limit))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP response: {:?}", String::from_utf8_lossy(&raw)),
        )
    })
}

/// Parses a raw HTTP/1.1 response (Content-Length, chunked, or until the
/// connection closed).
pub fn parse(raw: &[u8]) -> Option<HttpReply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            let line_end = rest[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size = usize::from_str_radix(std::str::from_utf8(&rest[at..line_end]).ok()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                break;
            }
            body.extend_from_slice(rest.get(at..at + size)?);
            at += size + 2;
        }
        body
    } else {
        let len = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(rest.len());
        rest.get(..len)?.to_vec()
    };
    Some(HttpReply { status, headers, body })
}

/// Runs `cairn ARGS...` to completion; returns (success, stdout, stderr).
pub fn cairn_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .output()
        .expect("cairn runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
