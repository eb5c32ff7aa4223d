//! `cairn serve` child processes for end-to-end tests: spawn one on a free
//! loopback port, wait until `/healthz` answers, talk to it over HTTP
//! (a small blocking client), SIGKILL or SIGTERM it. Dropping a
//! [`ServeProcess`] kills it.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
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
    pub fn spawn(cmd: Command) -> Self {
        let server = Self::launch(cmd, "http");
        server.wait_healthy(Duration::from_secs(60));
        server
    }

    /// Spawns `cmd` and reads its address from the banner on stderr
    /// (`management API on SCHEME://ADDR`); panics with the log when it
    /// does not start.
    fn launch(mut cmd: Command, scheme: &str) -> Self {
        let banner = format!("management API on {scheme}://");
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
                if let Some(rest) = line.split(banner.as_str()).nth(1)
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
        Self { child, addr, log }
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

// ---- HTTPS ----------------------------------------------------------------

/// A test certificate authority and a server certificate it signed for
/// `localhost` and `127.0.0.1` (ECDSA P-256, valid two days), written with
/// the `openssl` command into `dir`: returns (ca.pem, cert.pem, key.pem).
/// The server certificate is a leaf (CA:FALSE, serverAuth) as webpki wants.
pub fn test_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = dir.join("tls-ca.pem");
    let ca_key = dir.join("tls-ca-key.pem");
    let cert = dir.join("tls-cert.pem");
    let key = dir.join("tls-key.pem");
    let csr = dir.join("tls-cert.csr");
    let ext = dir.join("tls-cert.ext");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let openssl = |args: &[&OsStr]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("the openssl command is needed for the TLS tests: {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = |t: &'static str| OsStr::new(t);
    openssl(&[
        s("req"),
        s("-x509"),
        s("-newkey"),
        s("ec"),
        s("-pkeyopt"),
        s("ec_paramgen_curve:prime256v1"),
        s("-nodes"),
        s("-days"),
        s("2"),
        s("-subj"),
        s("/CN=cairn test CA"),
        s("-addext"),
        s("basicConstraints=critical,CA:TRUE"),
        s("-addext"),
        s("keyUsage=critical,keyCertSign,cRLSign"),
        s("-keyout"),
        ca_key.as_os_str(),
        s("-out"),
        ca.as_os_str(),
    ]);
    openssl(&[
        s("req"),
        s("-new"),
        s("-newkey"),
        s("ec"),
        s("-pkeyopt"),
        s("ec_paramgen_curve:prime256v1"),
        s("-nodes"),
        s("-subj"),
        s("/CN=localhost"),
        s("-keyout"),
        key.as_os_str(),
        s("-out"),
        csr.as_os_str(),
    ]);
    openssl(&[
        s("x509"),
        s("-req"),
        s("-in"),
        csr.as_os_str(),
        s("-CA"),
        ca.as_os_str(),
        s("-CAkey"),
        ca_key.as_os_str(),
        s("-CAcreateserial"),
        s("-days"),
        s("2"),
        s("-extfile"),
        ext.as_os_str(),
        s("-out"),
        cert.as_os_str(),
    ]);
    (ca, cert, key)
}

impl ServeProcess {
    /// `cairn --db DB serve --listen 127.0.0.1:0 --tls-cert … --tls-key … ARGS...`
    /// over HTTPS, with a certificate for `localhost` and `127.0.0.1` signed
    /// by a test CA (files written beside `db`), waiting until `/healthz`
    /// answers 200 over HTTPS. Returns the server and the CA's PEM file,
    /// the root to verify it with.
    pub fn start_tls(db: &Path, args: &[&str]) -> (Self, PathBuf) {
        let dir = db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let (ca, cert, key) = test_certificates(dir);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.arg("--db")
            .arg(db)
            .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .args(args);
        (Self::spawn_tls(cmd, &ca), ca)
    }

    /// As [`Self::spawn`] for a server on HTTPS (its banner says
    /// `https://`), checked with the root certificate `ca`.
    pub fn spawn_tls(cmd: Command, ca: &Path) -> Self {
        let server = Self::launch(cmd, "https");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match try_send_tls(
                server.addr,
                ca,
                "localhost",
                "GET",
                "/healthz",
                &[],
                b"",
                Duration::from_secs(5),
            ) {
                Ok(r) if r.status == 200 => break,
                other => assert!(
                    Instant::now() < deadline,
                    "/healthz of https://{} did not answer 200: {other:?}; log:\n{}",
                    server.addr,
                    server.log()
                ),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `https://localhost:PORT` (the name its test certificate holds).
    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// An HTTPS request to this server, verified against `ca` (see [`try_send_tls`]).
    pub fn tls_req(&self, ca: &Path, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpReply {
        try_send_tls(
            self.addr,
            ca,
            "localhost",
            method,
            path,
            headers,
            body,
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("{method} {path} on https://{}: {e}", self.addr))
    }
}

/// Client settings trusting only the PEM certificates of `ca` (rustls, ring).
pub fn tls_client_config(ca: &Path) -> std::io::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| invalid(format!("{}: {e}", ca.display())))? {
        let cert = cert.map_err(|e| invalid(format!("{}: {e}", ca.display())))?;
        roots.add(cert).map_err(|e| invalid(e.to_string()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// As [`try_send`] over HTTPS: the server's certificate must be valid for
/// `server_name` (`localhost`, or an IP address such as `127.0.0.1`) and
/// chain to a certificate of `ca`. A failed verification is an error.
#[allow(clippy::too_many_arguments)]
pub fn try_send_tls(
    addr: SocketAddr,
    ca: &Path,
    server_name: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> std::io::Result<HttpReply> {
    let config = tls_client_config(ca)?;
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(limit))?;
    tcp.set_write_timeout(Some(limit))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {server_name}:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
        addr.port(),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    s.flush()?;
    let mut raw = Vec::new();
    // A peer that closes without close_notify ends the response too.
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP response: {:?}", String::from_utf8_lossy(&raw)),
        )
    })
}
