//! The components the rig starts: gateway replicas, an upstream that echoes
//! the headers it got, nginx, Caddy and a Python MCP server, each on an
//! ephemeral loopback port and stopped on every path out of a test.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use meingpt_auth::testing::MockIssuer;
use serde_json::{Map, Value};

#[path = "../../it/common/as_written.rs"]
mod as_written;

pub use as_written::{PATHS_READ_AS_ANOTHER_ROUTE, get_as_written};

/// How long a component may take to start listening.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The repository's root (the workspace root).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the gateway package lives in the workspace root")
        .to_owned()
}

/// A file of `gateway/deploy/`, as the repository has it.
pub fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The gateway settings a deployment file names in its comments: the lines
/// indented by four spaces after the comment mark (`#     [forward_auth]`),
/// so that the tests run the configuration the file documents.
pub fn gateway_settings_in(file: &str) -> String {
    file.lines()
        .filter_map(|line| line.strip_prefix("#     "))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// `text` with every `(from, to)` replaced; each `from` must occur in it, so
/// a configuration edited without its test fails here, not later.
pub fn substitute(text: &str, replacements: &[(&str, &str)]) -> String {
    let mut text = text.to_owned();
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "the deployed configuration no longer mentions {from:?}; update the rig with it"
        );
        text = text.replace(from, to);
    }
    text
}

/// A directory under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "meingpt-rig-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `name` inside the directory; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a temporary file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nobody listened on a moment ago (for programs that
/// cannot report the port they bound).
pub fn free_port() -> u16 {
    // Below the kernel's ephemeral range (32768 and up on Linux), where the
    // outgoing connections of parallel tests take their local ports: a port
    // from `127.0.0.1:0` could become one of those before nginx or Caddy
    // binds it. Each call in this process takes a new port.
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 1_000) as u16 * 12;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 12_000;
        let port = 20_000 + (start + offset) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Where `program` is on `PATH` (or in /usr/sbin, where Debian puts nginx).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The program a test needs, or `None` when `skip_var=1` is set; panics
/// with how to install it when it is missing.
pub fn require(program: &str, skip_var: &str, install: &str) -> Option<PathBuf> {
    if std::env::var(skip_var).as_deref() == Ok("1") {
        eprintln!("{skip_var}=1: skipping this test");
        return None;
    }
    match find_program(program) {
        Some(path) => Some(path),
        None => panic!(
            "this test needs {program}: {install} (`bash scripts/test.sh` installs it; \
             or set {skip_var}=1 to skip the test)"
        ),
    }
}

/// A child process in a process group of its own, stopped on every path
/// out of a test: with the signal the program expects (nginx's master
/// waits for its workers on `QUIT`), then anything left of the group is
/// killed, and the test fails if a process of the group survives. Its
/// stdout and stderr lines are collected on threads, or written to a file.
pub struct Process {
    name: String,
    child: Child,
    output: Output,
    lines: mpsc::Receiver<String>,
    /// The signal that stops the program cleanly; `KILL` when it has none.
    stop_signal: &'static str,
    stopped: bool,
}

impl Process {
    pub fn spawn(name: &str, mut command: Command) -> Self {
        use std::os::unix::process::CommandExt;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let (send, lines) = mpsc::channel();
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("piped stdout"));
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("piped stderr"));
        for pipe in [stdout, stderr] {
            let output = output.clone();
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    output.lock().unwrap().push(line.clone());
                    let _ = send.send(line);
                }
            });
        }
        Self::new(name, child, Output::Lines(output), lines)
    }

    /// Like [`spawn`](Self::spawn), but stdout and stderr go to the file
    /// `log` (created or truncated), for a program that prints a line per
    /// request for minutes: nothing is kept in memory, and
    /// [`wait_for_line`](Self::wait_for_line) is not available.
    #[allow(dead_code, reason = "the gateway soak (gateway/bench/soak) uses it")]
    pub fn spawn_logging_to(name: &str, mut command: Command, log: &Path) -> Self {
        use std::os::unix::process::CommandExt;
        let file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let stderr = file.try_clone().expect("a second handle on the log file");
        command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr)
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        // No line ever arrives: the sender is dropped at once.
        let (_, lines) = mpsc::channel();
        Self::new(name, child, Output::File(log.to_owned()), lines)
    }

    fn new(name: &str, child: Child, output: Output, lines: mpsc::Receiver<String>) -> Self {
        Self {
            name: name.to_owned(),
            child,
            output,
            lines,
            stop_signal: "KILL",
            stopped: false,
        }
    }

    /// The id of the running program (its process group's id too).
    #[allow(dead_code, reason = "the gateway soak (gateway/bench/soak) uses it")]
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Stops the program with `signal` (`QUIT`, `TERM`, …) instead of
    /// `KILL`, so that it can stop the processes it started itself.
    pub fn stopped_by(mut self, signal: &'static str) -> Self {
        self.stop_signal = signal;
        self
    }

    /// Waits for a line that contains `marker`; returns it.
    pub fn wait_for_line(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) if line.contains(marker) => return line,
                Ok(_) => {}
                Err(_) => {
                    if let Some(status) = self.child.try_wait().expect("try_wait") {
                        std::thread::sleep(Duration::from_millis(100));
                        panic!(
                            "{} exited ({status}) before printing {marker:?}:\n{}",
                            self.name,
                            self.output()
                        );
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{} did not print {marker:?} within {PATIENCE:?}:\n{}",
                        self.name,
                        self.output()
                    );
                }
            }
        }
    }

    /// Waits until `addr` accepts connections (for programs that print no
    /// line when they are ready).
    pub fn wait_for_port(&mut self, addr: SocketAddr, log: Option<&Path>) {
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            let log = || {
                log.and_then(|path| std::fs::read_to_string(path).ok())
                    .unwrap_or_default()
            };
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "{} exited ({status}) instead of listening on {addr}:\n{}\n{}",
                    self.name,
                    self.output(),
                    log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {addr} within {PATIENCE:?}:\n{}\n{}",
                self.name,
                self.output(),
                log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the process printed so far, one line each.
    pub fn output(&self) -> String {
        match &self.output {
            Output::Lines(lines) => lines.lock().unwrap().join("\n"),
            Output::File(path) => String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default())
                .trim_end()
                .to_owned(),
        }
    }

    /// How many printed lines contain `text`.
    pub fn lines_containing(&self, text: &str) -> usize {
        match &self.output {
            Output::Lines(lines) => lines
                .lock()
                .unwrap()
                .iter()
                .filter(|line| line.contains(text))
                .count(),
            Output::File(path) => std::fs::File::open(path).map_or(0, |file| {
                BufReader::new(file)
                    .split(b'\n')
                    .map_while(Result::ok)
                    .filter(|line| line.windows(text.len()).any(|w| w == text.as_bytes()))
                    .count()
            }),
        }
    }

    /// Stops the program at once, as a crash would: every process of its
    /// group is killed.
    pub fn kill(&mut self) {
        self.signal_group("KILL");
        let _ = self.child.wait();
        self.stopped = true;
    }

    /// Stops the program with its stop signal, waits for it, kills what is
    /// left of its group, and returns the processes of the group that are
    /// still alive after [`PATIENCE`] (none, unless something is wrong).
    fn stop(&mut self) -> Vec<String> {
        if !self.stopped {
            signal(self.stop_signal, &self.child.id().to_string());
            let deadline = Instant::now() + PATIENCE;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            self.signal_group("KILL");
            let _ = self.child.wait();
            self.stopped = true;
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = live_processes_in_group(self.child.id());
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal_group(&self, name: &str) {
        signal(name, &format!("-{}", self.child.id()));
    }
}

/// Where a [`Process`]'s stdout and stderr go.
enum Output {
    /// Collected in memory, line by line.
    Lines(Arc<Mutex<Vec<String>>>),
    /// Written to this file.
    #[allow(dead_code, reason = "the gateway soak (gateway/bench/soak) uses it")]
    File(PathBuf),
}

impl Drop for Process {
    fn drop(&mut self) {
        let left = self.stop();
        if left.is_empty() {
            return;
        }
        let message = format!("{} left processes behind: {}", self.name, left.join("; "));
        // Kill them anyway; fail the test unless it is failing already.
        self.signal_group("KILL");
        if std::thread::panicking() {
            eprintln!("{message}");
        } else {
            panic!("{message}");
        }
    }
}

/// Sends signal `name` to `target` (a process id, or `-PGID` for a group).
fn signal(name: &str, target: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `pid (command)` of every process in group `group` that has not exited
/// (zombies, which hold no socket, aside), from `/proc`.
fn live_processes_in_group(group: u32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut live = Vec::new();
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (state, _ppid, pgrp) = (fields.next(), fields.next(), fields.next());
        if pgrp == Some(&group.to_string()) && state != Some("Z") && state != Some("X") {
            live.push(format!("{head})"));
        }
    }
    live
}

/// A running nginx: the master in the foreground with its own prefix in a
/// temporary directory, `site` included in its `http {}` block (access log
/// off), stopped with `QUIT`.
pub struct Nginx {
    /// `http://` and the first address it listens on.
    pub url: String,
    _process: Process,
    dir: TempDir,
}

impl Nginx {
    /// Starts `binary` with `site` and waits until it listens on every
    /// address of `listen` (the addresses `site` names).
    pub fn start(binary: &Path, site: &str, listen: &[SocketAddr]) -> Self {
        let dir = TempDir::new("nginx");
        dir.write("site.conf", site);
        let prefix = dir.path().display();
        let main = format!(
            "daemon off;\n\
             worker_processes 1;\n\
             pid {prefix}/nginx.pid;\n\
             error_log {prefix}/error.log notice;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
             \taccess_log off;\n\
             \tclient_body_temp_path {prefix}/client_body;\n\
             \tproxy_temp_path {prefix}/proxy;\n\
             \tfastcgi_temp_path {prefix}/fastcgi;\n\
             \tuwsgi_temp_path {prefix}/uwsgi;\n\
             \tscgi_temp_path {prefix}/scgi;\n\
             \tinclude {prefix}/site.conf;\n\
             }}\n"
        );
        let conf = dir.write("nginx.conf", &main);
        let error_log = dir.path().join("error.log");
        let mut command = Command::new(binary);
        command
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(&error_log)
            .arg("-c")
            .arg(&conf);
        // `QUIT`: the master stops its workers and waits for them; killing
        // the master alone would leave them listening.
        let mut process = Process::spawn("nginx", command).stopped_by("QUIT");
        for addr in listen {
            process.wait_for_port(*addr, Some(&error_log));
        }
        Self {
            url: format!("http://{}", listen[0]),
            _process: process,
            dir,
        }
    }

    /// What nginx wrote to its error log so far.
    #[allow(dead_code, reason = "the gateway soak (gateway/bench/soak) reads it")]
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// A running `meingpt-gateway`.
pub struct Gateway {
    pub process: Process,
    pub addr: SocketAddr,
    _dir: TempDir,
}

impl Gateway {
    /// Starts the gateway with `[auth]` pointing at `issuer` and the given
    /// `[[route]]` tables (TOML text), listening on an ephemeral port.
    pub fn start(issuer: &MockIssuer, routes: &str) -> Self {
        let config = format!(
            "listen = \"127.0.0.1:0\"\n\n[auth]\norganizations = [\"{}\"]\nissuer = \"{}\"\njwks_url = \"{}\"\n\n{routes}",
            issuer.organization(),
            issuer.issuer(),
            issuer.jwks_url()
        );
        Self::from_config(&config)
    }

    /// Starts the gateway with the configuration file `config` (TOML
    /// text), which listens on port 0; with `[tls]` it listens on https.
    pub fn from_config(config: &str) -> Self {
        Self::start_with(config, &[])
    }

    /// [`from_config`](Self::from_config) with, of the variables the
    /// gateway reads, `env` set.
    pub fn start_with(config: &str, env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new("gateway");
        let path = dir.write("gateway.toml", config);
        let mut command = Self::command(&path);
        command.envs(env.iter().copied());
        let mut process = Process::spawn("meingpt-gateway", command);
        let line = process.wait_for_line("meingpt-gateway listening on http");
        let addr = line
            .rsplit("://")
            .next()
            .and_then(|rest| rest.trim().trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self {
            process,
            addr,
            _dir: dir,
        }
    }

    /// The command that runs the gateway built with the tests on the
    /// configuration file `config`, with none of the environment variables
    /// the gateway reads set (`RUST_LOG` included: the access log is on).
    pub fn command(config: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_meingpt-gateway"));
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("MEINGPT_")
                || name.starts_with("JWT_")
                || name.starts_with("MCP_")
                || ["AUTH_TYPE", "LISTEN_ADDR", "GATEWAY_UPSTREAM", "RUST_LOG"]
                    .contains(&name.as_ref())
            {
                command.env_remove(name.as_ref());
            }
        }
        command.arg("--config").arg(config);
        command
    }

    /// How many requests to `path` the access log shows.
    pub fn logged_requests_to(&self, path: &str) -> usize {
        self.process.lines_containing(path)
    }

    /// How many requests to `path` the access log shows once it shows at
    /// least `expected` (its lines are written in batches, every 100 ms),
    /// or after [`PATIENCE`].
    pub async fn logged_requests_to_at_least(&self, path: &str, expected: usize) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let logged = self.logged_requests_to(path);
            if logged >= expected || Instant::now() >= deadline {
                return logged;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// An upstream app on loopback that answers every request with the
/// headers it received, as JSON `{name: [values…]}` (names lowercase), and
/// counts the requests.
pub struct Echo {
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl Echo {
    pub async fn start() -> Self {
        let requests = Arc::new(AtomicUsize::new(0));
        async fn echo(State(requests): State<Arc<AtomicUsize>>, headers: HeaderMap) -> Json<Value> {
            requests.fetch_add(1, Ordering::SeqCst);
            let mut seen: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for (name, value) in &headers {
                seen.entry(name.as_str().to_owned())
                    .or_default()
                    .push(Value::String(
                        String::from_utf8_lossy(value.as_bytes()).into(),
                    ));
            }
            Json(Value::Object(
                seen.into_iter()
                    .map(|(name, values)| (name, Value::Array(values)))
                    .collect::<Map<_, _>>(),
            ))
        }
        let app = Router::new().fallback(echo).with_state(requests.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the echo upstream");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, requests }
    }

    /// How many requests reached the upstream so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// The one value of header `name` in an echoed header map, `None` when the
/// upstream did not get it; panics when it got several.
pub fn echoed(headers: &Value, name: &str) -> Option<String> {
    let values = headers.get(name)?.as_array().expect("an array of values");
    assert_eq!(
        values.len(),
        1,
        "the upstream got {name} {} times: {values:?}",
        values.len()
    );
    Some(values[0].as_str().expect("a string").to_owned())
}

/// An HTTP client that never uses a proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .expect("an HTTP client")
}

/// The routes the forward-auth tests use: `/admin` for admins, `/public`
/// for anyone, everything else for any signed-in user.
pub fn forward_auth_routes(upstream: SocketAddr) -> String {
    format!(
        "[[route]]\nprefix = \"/\"\nupstream = \"http://{upstream}\"\n\n\
         [[route]]\nprefix = \"/admin\"\nupstream = \"http://{upstream}\"\nroles = [\"admin\"]\n\n\
         [[route]]\nprefix = \"/public\"\nupstream = \"http://{upstream}\"\npublic = true\n"
    )
}

/// The identity headers of the gateway's contract, lowercase.
pub const IDENTITY_HEADERS: [&str; 7] = [
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-preferred-username",
    "x-auth-request-groups",
    "x-meingpt-org-id",
    "x-meingpt-role",
    "x-meingpt-claims",
];

/// The identity and token headers with `_` for `-`, lowercase: servers that
/// map `_` to `-` (CGI, WSGI, PHP, Rails) read them as the real ones.
pub const UNDERSCORE_SPELLINGS: [&str; 8] = [
    "x_auth_request_user",
    "x_auth_request_email",
    "x_auth_request_preferred_username",
    "x_auth_request_groups",
    "x_meingpt_org_id",
    "x_meingpt_role",
    "x_meingpt_claims",
    "x_meingpt_jwt",
];

/// Every name a proxy or an app gives the original URI or method,
/// lowercase, `_` spellings included.
pub const ORIGINAL_REQUEST_SPELLINGS: [&str; 8] = [
    "x-original-uri",
    "x-forwarded-uri",
    "x-original-url",
    "x-rewrite-url",
    "x-original-method",
    "x-forwarded-method",
    "x_original_uri",
    "x_forwarded_uri",
];

/// How a proxy in front of the gateway answers the client when the gateway
/// refuses a request with `400`.
#[derive(Debug, Clone, Copy)]
pub enum RefusalSeen {
    /// The proxy passes the gateway's `400` on (Caddy).
    AsIs,
    /// nginx's `auth_request` answers any status but 2xx, 401 and 403 with
    /// its own `500` (and nginx itself refuses `%00` with `400`).
    AsServerError,
}

impl RefusalSeen {
    fn statuses(self) -> &'static [u16] {
        match self {
            Self::AsIs => &[400],
            Self::AsServerError => &[500, 400],
        }
    }
}

/// The verdicts a proxy in front of the gateway must hand out, checked
/// through the proxy at `front` (`http://127.0.0.1:PORT`) whose app is
/// `echo`. With `gateway_body` the proxy passes the gateway's own 401/403
/// answer on (Caddy does; nginx answers with its own error page).
pub async fn assert_forward_auth_verdicts(
    front: &str,
    issuer: &MockIssuer,
    echo: &Echo,
    gateway_body: bool,
    refusal: RefusalSeen,
) {
    let http = client();
    let admin = issuer.demo_admin().sign();
    let member = issuer.demo_member().sign();

    // An admin on the admin route: through, with the identity from the token.
    let before = echo.requests();
    let response = http
        .get(format!("{front}/admin/report?month=11"))
        .header("x-meingpt-jwt", &admin)
        .send()
        .await
        .expect("request through the proxy");
    assert_eq!(response.status(), 200, "an admin on /admin");
    let seen: Value = json_of(response).await;
    assert_eq!(echo.requests(), before + 1);
    assert_eq!(
        echoed(&seen, "x-auth-request-user").as_deref(),
        Some("admin-1")
    );
    assert_eq!(
        echoed(&seen, "x-auth-request-email").as_deref(),
        Some("ada@example.com")
    );
    assert_eq!(
        echoed(&seen, "x-auth-request-preferred-username").as_deref(),
        Some("Ada Admin")
    );
    assert_eq!(
        echoed(&seen, "x-auth-request-groups").as_deref(),
        Some("team-eng")
    );
    assert_eq!(
        echoed(&seen, "x-meingpt-org-id").as_deref(),
        Some(issuer.organization())
    );
    assert_eq!(echoed(&seen, "x-meingpt-role").as_deref(), Some("admin"));
    assert_eq!(
        echoed(&seen, "x-meingpt-claims").as_deref(),
        admin.split('.').nth(1),
        "X-meinGPT-Claims is the token's payload segment as signed"
    );
    assert_eq!(
        echoed(&seen, "x-meingpt-jwt"),
        None,
        "the app never sees the token"
    );
    assert_eq!(echoed(&seen, "authorization"), None);

    // `Authorization: Bearer` works as well as X-meinGPT-JWT.
    let response = http
        .get(format!("{front}/notes"))
        .bearer_auth(&member)
        .send()
        .await
        .expect("request through the proxy");
    assert_eq!(response.status(), 200, "a member with a bearer token");
    let seen: Value = json_of(response).await;
    assert_eq!(
        echoed(&seen, "x-auth-request-user").as_deref(),
        Some("member-1")
    );
    assert_eq!(
        echoed(&seen, "authorization"),
        None,
        "the app never sees the token"
    );

    // No token: 401 with a Bearer challenge; the app sees nothing.
    let before = echo.requests();
    let response = http
        .get(format!("{front}/notes"))
        .send()
        .await
        .expect("request through the proxy");
    assert_eq!(response.status(), 401, "no token");
    let challenge = challenge_of(&response);
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    if gateway_body {
        let body: Value = json_of(response).await;
        assert_eq!(body["error"], "unauthorized", "{body}");
    }
    assert_eq!(
        echo.requests(),
        before,
        "a refused request never reaches the app"
    );

    // A forged token: 401 invalid_token.
    // (the admin's header and claims under the member's signature)
    let (signed, _) = admin.rsplit_once('.').expect("a JWS");
    let (_, signature) = member.rsplit_once('.').expect("a JWS");
    let forged = format!("{signed}.{signature}");
    let response = http
        .get(format!("{front}/notes"))
        .header("x-meingpt-jwt", forged)
        .send()
        .await
        .expect("request through the proxy");
    assert_eq!(response.status(), 401, "a forged token");
    let challenge = challenge_of(&response);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(echo.requests(), before);

    // A member on the admin route: 403; the app sees nothing.
    let response = http
        .get(format!("{front}/admin/report"))
        .header("x-meingpt-jwt", &member)
        .send()
        .await
        .expect("request through the proxy");
    assert_eq!(response.status(), 403, "a member on /admin");
    let challenge = challenge_of(&response);
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    if gateway_body {
        let body: Value = json_of(response).await;
        assert_eq!(body["error"], "insufficient_scope", "{body}");
    }
    assert_eq!(echo.requests(), before);

    // Spoofed identity headers from the client are replaced by the token's,
    // and one the token does not carry (an e-mail) is removed.
    let quiet = issuer.demo_member().sub("member-2").without("email").sign();
    let spoof = |request: reqwest::RequestBuilder| {
        request
            .header("X-Auth-Request-User", "admin-1")
            .header("X-Auth-Request-Email", "boss@example.com")
            .header("X-Auth-Request-Preferred-Username", "Boss")
            .header("X-Auth-Request-Groups", "team-eng")
            .header("X-meinGPT-Org-Id", "another-org")
            .header("X-meinGPT-Role", "admin")
            .header("X-meinGPT-Claims", "eyJzdWIiOiJhZG1pbi0xIn0")
            .header("X_Auth_Request_User", "admin-1")
            .header("X_Auth_Request_Email", "boss@example.com")
            .header("X_Auth_Request_Preferred_Username", "Boss")
            .header("X_Auth_Request_Groups", "team-eng")
            .header("X_meinGPT_Org_Id", "another-org")
            .header("X_meinGPT_Role", "admin")
            .header("X_meinGPT_Claims", "eyJzdWIiOiJhZG1pbi0xIn0")
            .header("X_meinGPT_JWT", "eyJhbGciOiJub25lIn0.e30.")
    };
    let response = spoof(http.get(format!("{front}/notes")))
        .header("x-meingpt-jwt", &quiet)
        .send()
        .await
        .expect("request through the proxy");
    assert_eq!(response.status(), 200, "a member with spoofed headers");
    let seen: Value = json_of(response).await;
    assert_eq!(
        echoed(&seen, "x-auth-request-user").as_deref(),
        Some("member-2")
    );
    assert_eq!(echoed(&seen, "x-auth-request-email"), None, "{seen}");
    assert_eq!(
        echoed(&seen, "x-auth-request-preferred-username").as_deref(),
        Some("Max Member")
    );
    assert_eq!(
        echoed(&seen, "x-auth-request-groups").as_deref(),
        Some("team-mkt")
    );
    assert_eq!(
        echoed(&seen, "x-meingpt-org-id").as_deref(),
        Some(issuer.organization())
    );
    assert_eq!(echoed(&seen, "x-meingpt-role").as_deref(), Some("member"));
    assert_eq!(
        echoed(&seen, "x-meingpt-claims").as_deref(),
        quiet.split('.').nth(1)
    );

    // A token with nothing but a subject: only the headers it vouches for
    // reach the app, whatever the client sent.
    let bare = issuer
        .token()
        .sub("member-3")
        .without("email")
        .without("username")
        .without("role")
        .sign();
    let response = spoof(http.get(format!("{front}/notes")))
        .header("x-meingpt-jwt", &bare)
        .send()
        .await
        .expect("request through the proxy");
    assert_eq!(response.status(), 200, "a bare token with spoofed headers");
    let seen: Value = json_of(response).await;
    assert_eq!(
        echoed(&seen, "x-auth-request-user").as_deref(),
        Some("member-3")
    );
    for name in [
        "x-auth-request-email",
        "x-auth-request-preferred-username",
        "x-auth-request-groups",
        "x-meingpt-role",
    ] {
        assert_eq!(echoed(&seen, name), None, "{name} reached the app: {seen}");
    }
    assert_eq!(
        echoed(&seen, "x-meingpt-org-id").as_deref(),
        Some(issuer.organization())
    );
    assert_eq!(
        echoed(&seen, "x-meingpt-claims").as_deref(),
        bare.split('.').nth(1)
    );

    // Spoofed headers alone are no way in...
    let before = echo.requests();
    let response = spoof(http.get(format!("{front}/admin/report")))
        .send()
        .await
        .expect("request through the proxy");
    assert_eq!(response.status(), 401, "spoofed headers without a token");
    assert_eq!(echo.requests(), before);

    // ...and on a public route they never reach the app.
    let response = spoof(http.get(format!("{front}/public/page")))
        .send()
        .await
        .expect("request through the proxy");
    assert_eq!(response.status(), 200, "a public route without a token");
    let seen: Value = json_of(response).await;
    for name in IDENTITY_HEADERS.iter().chain(&UNDERSCORE_SPELLINGS) {
        assert_eq!(echoed(&seen, name), None, "{name} reached the app: {seen}");
    }

    assert_original_request_is_the_proxys(front, issuer, echo).await;
    assert_paths_read_as_another_route_are_refused(front, issuer, echo, refusal).await;
}

/// The original URI and method under every name a proxy or an app reads,
/// sent by the client, pick no route's policy and never reach the app.
async fn assert_original_request_is_the_proxys(front: &str, issuer: &MockIssuer, echo: &Echo) {
    let http = client();
    let member = issuer.demo_member().sign();
    let spoof = |request: reqwest::RequestBuilder| {
        request
            .header("X-Original-URI", "/public/x")
            .header("X-Forwarded-Uri", "/public/x")
            .header("X-Original-URL", "http://app.example.com/public/x")
            .header("X-Rewrite-URL", "/public/x")
            .header("X-Original-Method", "GET")
            .header("X-Forwarded-Method", "GET")
            .header("X_Original_URI", "/public/x")
            .header("X_Forwarded_Uri", "/public/x")
    };
    let before = echo.requests();
    let anonymous = spoof(http.get(format!("{front}/admin/x")))
        .send()
        .await
        .expect("request through the proxy");
    assert_eq!(
        anonymous.status(),
        401,
        "a public original URI without a token"
    );
    let member_on_admin = spoof(http.get(format!("{front}/admin/x")))
        .header("x-meingpt-jwt", &member)
        .send()
        .await
        .expect("request through the proxy");
    assert_eq!(
        member_on_admin.status(),
        403,
        "a public original URI with a member token"
    );
    assert_eq!(
        echo.requests(),
        before,
        "a refused request never reaches the app"
    );

    let response = spoof(http.get(format!("{front}/public/page")))
        .send()
        .await
        .expect("request through the proxy");
    assert_eq!(response.status(), 200);
    let seen: Value = json_of(response).await;
    for name in ORIGINAL_REQUEST_SPELLINGS {
        assert_eq!(echoed(&seen, name), None, "{name} reached the app: {seen}");
    }

    // nginx's $request_uri is absolute when the request target is.
    let host = front.trim_start_matches("http://");
    let status = get_as_written(
        front,
        &format!("http://{host}/admin/x"),
        &[("x-meingpt-jwt", &member)],
    )
    .await;
    assert_eq!(status, 403, "an absolute-form request target");
    assert_eq!(echo.requests(), before + 1);
}

/// Every path spelling an upstream could read as another route is refused
/// through the proxy, and never reaches the app.
async fn assert_paths_read_as_another_route_are_refused(
    front: &str,
    issuer: &MockIssuer,
    echo: &Echo,
    refusal: RefusalSeen,
) {
    let member = issuer.demo_member().sign();
    let mut wrong = Vec::new();
    let spellings = PATHS_READ_AS_ANOTHER_ROUTE
        .iter()
        .chain(&["/admin/x://y{public}"]);
    for spelling in spellings {
        let path = spelling.replace("{public}", "/public");
        for token in [None, Some(member.as_str())] {
            let before = echo.requests();
            let headers: Vec<(&str, &str)> =
                token.map(|t| ("x-meingpt-jwt", t)).into_iter().collect();
            let status = get_as_written(front, &path, &headers).await;
            let reached = echo.requests() != before;
            if reached || !refusal.statuses().contains(&status) {
                wrong.push(format!(
                    "{path} (token: {}) -> {status}, reached the app: {reached}",
                    token.is_some()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "not refused: {wrong:#?}");
}

/// The JSON body of `response`.
pub async fn json_of(response: reqwest::Response) -> Value {
    let body = response.bytes().await.expect("a response body");
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

/// The one `WWW-Authenticate` challenge of `response`.
pub fn challenge_of(response: &reqwest::Response) -> String {
    let challenges: Vec<_> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|value| value.to_str().expect("an ASCII challenge").to_owned())
        .collect();
    assert_eq!(challenges.len(), 1, "one challenge, not {challenges:?}");
    challenges.into_iter().next().expect("one challenge")
}
