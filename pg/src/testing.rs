//! A throw-away PostgreSQL server for tests and measurement scripts: the
//! Debian package's `initdb` in a temporary directory, `postgres` on a
//! free loopback port, trust authentication for the user `genki`. When
//! run as root, the server runs as the `postgres` user (PostgreSQL
//! refuses root) through `setpriv`, which also makes it stop if the test
//! process dies (`--pdeathsig`), so no server outlives its test.
//!
//! Depends on: std and libc only (and PostgreSQL's own binaries).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running throw-away server; stopped and removed on drop.
pub struct TestPg {
    dir: PathBuf,
    bin: PathBuf,
    child: Child,
    pub port: u16,
}

/// How the server keeps data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync and synchronous commit on, as in production (measurements,
    /// crash tests of PostgreSQL itself).
    Durable,
    /// No fsync (functional tests: genki's own crashes do not need it).
    Fast,
}

/// PostgreSQL's binaries: the newest `/usr/lib/postgresql/*/bin` (or
/// `GENKI_PG_BIN`).
pub fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(d) = std::env::var("GENKI_PG_BIN") {
        return Ok(PathBuf::from(d));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("PostgreSQL is not installed (/usr/lib/postgresql: {e}); scripts/deps installs postgresql-15"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| "no PostgreSQL server binaries under /usr/lib/postgresql".to_string())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The `postgres` user's uid and gid.
fn postgres_ids() -> Result<(u32, u32), String> {
    let name = std::ffi::CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns a pointer into static storage or NULL; we
    // copy the two ids out at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err("running as root needs the postgres user (from the postgresql package)".into());
    }
    // SAFETY: pw is non-null and points to a passwd record.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// A command run as the server's user (`postgres` when we are root).
fn as_server_user(prog: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--pdeathsig=SIGQUIT",
            "--",
        ])
        .arg(prog);
        c
    } else {
        Command::new(prog)
    }
}

fn chown_tree(p: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::chown(p, Some(uid), Some(gid))
        .map_err(|e| format!("chown {}: {e}", p.display()))
}

/// Spawn `cmd` from a thread that lives as long as the process: the
/// parent-death signal fires when the spawning *thread* ends, and a test's
/// thread ends long before the server should.
fn spawn_held(cmd: Command) -> std::io::Result<Child> {
    type Job = (Command, std::sync::mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("genki-pg-spawner".into())
            .spawn(move || {
                for (mut cmd, back) in rx {
                    let _ = back.send(cmd.spawn());
                }
                // Keep the thread (the servers' parent) until the process ends.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn thread");
        std::sync::Mutex::new(tx)
    });
    let (back, answer) = std::sync::mpsc::channel();
    tx.lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, back))
        .map_err(|_| std::io::Error::other("spawner gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("spawner gone"))?
}

/// Directories of servers whose test process is gone (a server kept for
/// a whole test binary is never dropped; its parent-death signal stopped
/// it, its files stay until here).
fn remove_orphans() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("genki-pg-"))
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

impl TestPg {
    /// Start a fresh server (a few seconds: initdb, then start-up).
    pub fn start(durability: Durability) -> Result<TestPg, String> {
        let bin = bin_dir()?;
        remove_orphans();
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "genki-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if is_root() {
            let (uid, gid) = postgres_ids()?;
            chown_tree(&dir, uid, gid)?;
        }
        let data = dir.join("data");
        let out = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "genki",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let mut cmd = as_server_user(&bin.join("postgres"));
            cmd.arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(port.to_string())
                .arg("-k")
                .arg(&dir)
                .args([
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=300",
                ])
                .args(["-c", "shared_buffers=128MB"]);
            if durability == Durability::Fast {
                cmd.args([
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ]);
            }
            let log = std::fs::File::create(dir.join(format!("log-{port}")))
                .map_err(|e| e.to_string())?;
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
            let child = spawn_held(cmd).map_err(|e| format!("postgres: {e}"))?;
            let mut pg = TestPg {
                dir: dir.clone(),
                bin: bin.clone(),
                child,
                port,
            };
            match pg.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return Ok(pg),
                Err(e) => {
                    last = e;
                    let _ = pg.child.kill();
                    let _ = pg.child.wait();
                    // Keep the directory for the next try.
                    pg.dir = PathBuf::new();
                }
            }
        }
        Err(format!("PostgreSQL did not start: {last}"))
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join(format!("log-{}", self.port)))
                    .unwrap_or_default();
                return Err(format!("postgres exited ({st}): {log}"));
            }
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err("not ready in time".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A connection string for database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("host=127.0.0.1 port={} user=genki dbname={db}", self.port)
    }

    /// Create an empty database.
    pub fn create_db(&self, name: &str) -> Result<(), String> {
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "genki",
                name,
            ])
            .output()
            .map_err(|e| format!("createdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "createdb {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// Run SQL with psql (for tests that look at the rows themselves).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "genki",
                "-d",
                db,
            ])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown (nothing here needs a checkpoint).
        // SAFETY: kill on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGQUIT);
        }
        let _ = self.child.wait();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
