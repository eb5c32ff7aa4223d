//! A small WebDriver client (W3C protocol, JSON over HTTP to chromedriver)
//! and the headless Chromium it drives. No client crate: the protocol
//! needs a dozen commands, sent with the HTTP client `cairn --url` uses.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use cairn::api::client::Client;
use hyper::Method;
use serde_json::{Value, json};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver running headless Chromium; killed on drop.
pub struct Browser {
    driver: Child,
    /// `127.0.0.1:port` of chromedriver.
    addr: String,
    client: Client,
    session: String,
    shots: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn find(names: &[&str]) -> Option<PathBuf> {
    names
        .iter()
        .map(PathBuf::from)
        .chain(names.iter().flat_map(|n| {
            std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).map(|d| d.join(n)).collect::<Vec<_>>())
                .unwrap_or_default()
        }))
        .find(|p| p.is_absolute() && p.is_file())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. Panics with
    /// what to install when either is missing: this test never skips.
    pub async fn start(shots: &Path) -> Self {
        let hint = "install them with `apt-get install -y chromium chromium-driver` (make test does: scripts/install-chromium.sh)";
        let chromium = find(&["/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"])
            .unwrap_or_else(|| panic!("Chromium is not installed; {hint}"));
        let chromedriver = find(&["/usr/bin/chromedriver", "chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver is not installed; {hint}"));
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {hint}", chromedriver.display()));
        let client = Client::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.send(Method::GET, "/status", &[], Vec::new()).await
                && r.json()["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--force-device-scale-factor=1", "--lang=en-GB"],
            },
        }}});
        let mut b = Self {
            driver,
            addr: format!("127.0.0.1:{port}"),
            client,
            session: String::new(),
            shots: shots.to_owned(),
        };
        let v = b.raw(Method::POST, "/session", Some(caps)).await;
        b.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium did not start under chromedriver: {v}; {hint}"))
            .to_owned();
        std::fs::create_dir_all(shots).unwrap();
        b
    }

    async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        let r = self
            .client
            .send(method, path, &[("content-type", "application/json")], body)
            .await
            .unwrap_or_else(|e| panic!("chromedriver: {path}: {e}"));
        let v = r.json();
        if r.status.as_u16() >= 400 {
            return json!({ "error": v["value"]["error"], "message": v["value"]["message"] });
        }
        v
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let v = self
            .raw(method, &format!("/session/{}{path}", self.session), body)
            .await;
        if let Some(e) = v.get("error") {
            return Err(format!("{e}: {}", v["message"]));
        }
        Ok(v["value"].clone())
    }

    pub async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .unwrap();
    }

    pub async fn url(&self) -> String {
        self.cmd(Method::GET, "/url", None)
            .await
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Elements matching a CSS selector (now).
    pub async fn all(&self, css: &str) -> Vec<String> {
        let v = self
            .cmd(
                Method::POST,
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .unwrap_or(Value::Null);
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits (at most `secs`) until `css` matches an element; returns it.
    pub async fn wait(&self, css: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(e) = self.all(css).await.into_iter().next() {
                return e;
            }
            if Instant::now() > deadline {
                self.shot("failure").await;
                panic!(
                    "{css:?} did not appear within {secs} s; page text:\n{}",
                    self.page_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the JavaScript expression `expr` is truthy.
    pub async fn wait_js(&self, expr: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self.js(&format!("return !!({expr});")).await == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                self.shot("failure").await;
                panic!(
                    "{expr} stayed false for {secs} s; page text:\n{}",
                    self.page_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        self.on_element(css, |e| (format!("/element/{e}/click"), vec![json!({})]))
            .await;
    }

    /// Replaces the text of an input.
    pub async fn fill(&self, css: &str, text: &str) {
        self.on_element(css, |e| {
            (format!("/element/{e}/clear"), vec![json!({}), json!({ "text": text })])
        })
        .await;
    }

    /// Sends commands to the element `css` finds: the first to `path`, the
    /// others to `path`'s element with `/clear` replaced by `/value`. An
    /// element the page re-rendered meanwhile (auto-refresh) is found again.
    async fn on_element(&self, css: &str, cmds: impl Fn(&str) -> (String, Vec<Value>)) {
        let mut last = String::new();
        for _ in 0..10 {
            let e = self.wait(css, 10).await;
            let (path, bodies) = cmds(&e);
            let mut ok = true;
            for (i, body) in bodies.into_iter().enumerate() {
                let p = if i == 0 {
                    path.clone()
                } else {
                    path.replace("/clear", "/value")
                };
                if let Err(err) = self.cmd(Method::POST, &p, Some(body)).await {
                    last = err;
                    ok = false;
                    break;
                }
            }
            if ok {
                return;
            }
            if !last.contains("stale") && !last.contains("intercepted") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.shot("failure").await;
        panic!("{css}: {last}");
    }

    /// Presses keys (WebDriver key codes, e.g. "\u{E007}" = Enter) in the focused element.
    pub async fn keys(&self, css: &str, text: &str) {
        let e = self.wait(css, 10).await;
        self.cmd(
            Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.wait(css, 10).await;
        self.cmd(Method::GET, &format!("/element/{e}/text"), None)
            .await
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn page_text(&self) -> String {
        self.js("return document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs a synchronous script; its return value.
    pub async fn js(&self, script: &str) -> Value {
        self.cmd(
            Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
        .unwrap_or(Value::Null)
    }

    /// Runs an asynchronous script (it calls `arguments[0]` with its result).
    pub async fn js_async(&self, script: &str) -> Value {
        self.cmd(
            Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Saves a PNG screenshot as `target/console/<name>.png`.
    pub async fn shot(&self, name: &str) -> PathBuf {
        let v = self.cmd(Method::GET, "/screenshot", None).await.unwrap_or(Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_default();
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Close the session first (chromedriver then ends Chromium), with a
        // blocking request: drop may run while a test panics.
        use std::io::{Read, Write};
        if !self.session.is_empty()
            && let Ok(mut s) = std::net::TcpStream::connect(&self.addr)
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session, self.addr
            );
            if s.write_all(req.as_bytes()).is_ok() {
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
