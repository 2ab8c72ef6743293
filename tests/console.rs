//! The coordinators' console end to end: the real daemon, real calls to
//! simulated phones, and headless Chromium (Debian's `chromium` through
//! `chromedriver`'s WebDriver, driven by fantoccini). axe-core (from
//! tests/console/node_modules, pinned by its package-lock) checks every
//! page for accessibility in the same browser.
//!
//! With `CONSOLE_SCREENSHOTS=<dir>` the flow also saves a PNG of each page
//! there (docs/console/ holds the committed ones).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

/// chromedriver on a free port, and a headless Chromium session through it.
struct Browser {
    client: Client,
    _driver: KillOnDrop,
    base: String,
    shots: Option<PathBuf>,
}

async fn browser(dir: &std::path::Path, api: &str) -> Browser {
    assert!(
        Command::new("chromedriver").arg("--version").output().is_ok(),
        "chromedriver is needed: apt-get install chromium chromium-driver (the README's test command does)"
    );
    let port = free_tcp_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = KillOnDrop(driver);
    let profile = dir.join(format!("chromium-{port}"));
    std::fs::create_dir_all(&profile).unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--window-size=1366,768", "--lang=ja",
                     format!("--user-data-dir={}", profile.display())],
        }),
    );
    let start = Instant::now();
    let client = loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if start.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no WebDriver session: {e}"),
        }
    };
    Browser {
        client,
        _driver: driver,
        base: format!("http://{api}"),
        shots: std::env::var_os("CONSOLE_SCREENSHOTS").map(PathBuf::from),
    }
}

impl Browser {
    async fn go(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    async fn fill(&self, css: &str, value: &str) {
        let e = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        e.clear().await.ok();
        e.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    async fn sign_in(&self, login: &str, password: &str) {
        self.go("/console/signin").await;
        self.fill("#login", login).await;
        self.fill("#password", password).await;
        self.click("form button[type=submit]").await;
        self.wait_for("h1", |t| t.contains("今日"), Duration::from_secs(10))
            .await;
    }

    async fn sign_out(&self) {
        self.click("form[action='/console/signout'] button").await;
        self.wait_for("h1", |t| t.contains("ログイン"), Duration::from_secs(10))
            .await;
    }

    /// Wait until the text of `css` satisfies `pred`.
    async fn wait_for(&self, css: &str, pred: impl Fn(&str) -> bool, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if let Ok(t) = e.text().await {
                    if pred(&t) {
                        return t;
                    }
                }
            }
            if start.elapsed() > limit {
                let src = self.client.source().await.unwrap_or_default();
                panic!("{css}: not as expected after {limit:?}; the page:\n{src}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// axe-core on the page: no serious or critical violation of WCAG 2.x
    /// A/AA (JIS X 8341-3:2016 AA is WCAG 2.0 AA).
    async fn accessible(&self, page: &str) {
        let axe = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/console/node_modules/axe-core/axe.min.js"
        ))
        .expect(
            "axe-core is needed: (cd tests/console && npm ci) — the README's test command does",
        );
        self.client
            .execute(&axe, vec![])
            .await
            .expect("inject axe-core");
        let r = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a','wcag2aa','wcag21a','wcag21aa']}})
                   .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.slice(0, 3).map(n => n.html)}))))
                   .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));",
                vec![],
            )
            .await
            .expect("run axe-core");
        let bad: Vec<&Value> = r
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(bad.is_empty(), "{page}: accessibility violations: {bad:#?}");
    }

    /// The whole page (the window made as tall as it, then put back).
    async fn shot(&self, name: &str) {
        if let Some(dir) = &self.shots {
            std::fs::create_dir_all(dir).unwrap();
            let h = self
                .js("return document.documentElement.scrollHeight;")
                .await;
            let h = h.as_u64().unwrap_or(768).clamp(768, 2400) as u32;
            self.client.set_window_size(1366, h + 140).await.unwrap();
            let png = self.client.screenshot().await.unwrap();
            self.client.set_window_size(1366, 768).await.unwrap();
            std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        }
    }
}

/// A webhook receiver that answers 200 to everything (the watcher's
/// channel, so that resolving a case sends the all-clear to someone).
fn webhook_sink() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in l.incoming().flatten() {
            let mut s = s;
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 65536];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    format!("http://{addr}/hook")
}

/// A daemon, a tenant with a webhook watcher as its ladder, staff of each
/// role (password "correct horse 1"), and `n` people on phones that press
/// 1, the last `bad` of them on phones that press 2.
struct World {
    d: Daemon,
    http: Http,
    tid: u64,
    people: Vec<u64>,
    fine_port: u16,
    bad_port: u16,
}

const PW: &str = "correct horse 1";

fn world(name: &str, n: usize, bad: usize) -> World {
    let dir = temp_dir(name);
    let d = Daemon::start(
        dir,
        &[
            ("GENKI_ALERTS_WEBHOOK_ALLOW", "127.0.0.0/8"),
            ("GENKI_SIP_RTP_PORTS", "39000-39399"),
            ("GENKI_API_RATE_PER_S", "0"),
        ],
        &[],
    );
    let http = d.http();
    let tid = create_tenant(
        &http,
        &json!({"name": "柏市 見守りステーション", "time_zone": "Asia/Tokyo",
                "window_start": "00:00", "window_end": "23:59", "retry": no_retries()}),
    );
    webhook_ladder(&http, tid, &webhook_sink(), "s3cret-s3cret-s3cret");
    for (login, role) in [
        ("sato", "coordinator"),
        ("suzuki", "viewer"),
        ("tanaka", "admin"),
    ] {
        let r = http.post(
            "/v1/staff",
            &json!({"tenant_id": tid, "login": login, "name": format!("{login}さん"), "role": role, "password": PW}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let (fine_port, bad_port) = (free_port(), free_port());
    let names = [
        "山田 花子",
        "佐藤 一郎",
        "鈴木 トメ",
        "高橋 ハル",
        "伊藤 正",
        "渡辺 キヨ",
        "小林 清",
        "加藤 ミツ",
    ];
    let mut people = Vec::new();
    for i in 0..n {
        let port = if i >= n - bad { bad_port } else { fine_port };
        let r = http.post(
            &format!("/v1/tenants/{tid}/subscribers"),
            &json!({"name": names[i % names.len()], "phone": format!("sip:{}@127.0.0.1:{port}", 1000 + i)}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        people.push(r.json()["id"].as_u64().unwrap());
    }
    World {
        d,
        http,
        tid,
        people,
        fine_port,
        bad_port,
    }
}

/// Acceptance 1 and 2: sign in, watch a live round of simulated phones
/// fill the Today page without a reload, open the needs-contact case, take
/// it, resolve it with a note, see the all-clear in its timeline; every
/// page passes axe-core; the case flow again by keyboard alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_watches_the_round_and_resolves_the_case() {
    let w = world("console-round", 5, 1);
    let b = browser(&w.d.dir, &w.d.api).await;
    b.go("/console/signin").await;
    b.accessible("sign-in").await;
    b.shot("signin").await;
    b.sign_in("sato", PW).await;
    b.accessible("today (empty)").await;
    // A marker that a reload would erase.
    b.js("window.__notReloaded = true; return null;").await;
    let fine = phones_for(
        &w.d.dir,
        w.fine_port,
        4,
        &["--digits", "1", "--answer-delay-ms", "200"],
    );
    let bad = phones_for(
        &w.d.dir,
        w.bad_port,
        1,
        &["--digits", "2", "--answer-delay-ms", "200"],
    );
    for sid in &w.people {
        check_now(&w.http, *sid);
    }
    // The page fills itself: 4 fine, 1 needs contact.
    b.wait_for(".tile.fine .count", |t| t == "4", Duration::from_secs(60))
        .await;
    b.wait_for(
        ".tile.needs_contact .count",
        |t| t == "1",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        b.js("return window.__notReloaded === true;").await,
        json!(true),
        "the Today page reloaded"
    );
    let row = b.text("#not-yet-fine tr[data-state='needs_contact']").await;
    assert!(row.contains("要連絡"), "{row}");
    records_of(fine, 4, Duration::from_secs(30));
    records_of(bad, 1, Duration::from_secs(30));
    b.accessible("today (round done)").await;
    b.shot("today").await;
    // The case opens once the alert engine has taken the outcome.
    let start = Instant::now();
    while !b
        .has("#not-yet-fine tr[data-state='needs_contact'] a[href^='/console/cases/']")
        .await
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no case link on the Today page"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    b.click("#not-yet-fine tr[data-state='needs_contact'] a[href^='/console/cases/']")
        .await;
    b.wait_for(
        "#case-state",
        |t| t.contains("未対応"),
        Duration::from_secs(10),
    )
    .await;
    b.accessible("case (open)").await;
    b.shot("case").await;
    b.click("#take").await;
    b.wait_for(
        "#case-state",
        |t| t.contains("対応中"),
        Duration::from_secs(10),
    )
    .await;
    b.fill("#note", "電話で本人と話し、無事を確認しました")
        .await;
    b.click("#resolve").await;
    b.wait_for(
        "#case-state",
        |t| t.contains("完了"),
        Duration::from_secs(10),
    )
    .await;
    let timeline = b
        .wait_for(
            "#timeline",
            |t| t.contains("無事の連絡を予定"),
            Duration::from_secs(10),
        )
        .await;
    assert!(timeline.contains("無事を確認しました"), "{timeline}");
    assert!(b.has("#timeline li[data-kind='all_clear_queued']").await);
    b.accessible("case (resolved)").await;
    // The other pages, each checked by axe-core.
    b.go("/console/cases?state=all").await;
    b.accessible("cases").await;
    b.shot("cases").await;
    b.go("/console/people").await;
    assert!(b.text("#people").await.contains("山田 花子"));
    b.accessible("people").await;
    b.shot("people").await;
    b.go(&format!("/console/people/{}", w.people[4])).await;
    assert!(b.text("#history").await.contains("要連絡"));
    assert_eq!(
        b.client
            .find_all(Locator::Css("#chart li"))
            .await
            .unwrap()
            .len(),
        90
    );
    b.accessible("person").await;
    b.shot("person").await;
    b.go("/console/import").await;
    b.accessible("import").await;
    b.go("/console/report").await;
    assert!(b.text("#report-totals").await.contains("要連絡"));
    b.accessible("report").await;
    b.shot("report").await;
    // English, the second locale.
    b.click("form[action='/console/locale'] button").await;
    b.wait_for(
        "h1",
        |t| t.contains("Monthly report"),
        Duration::from_secs(10),
    )
    .await;
    b.click("form[action='/console/locale'] button").await;
    b.wait_for("h1", |t| t.contains("月次報告"), Duration::from_secs(10))
        .await;
    b.sign_out().await;
    b.sign_in("tanaka", PW).await;
    b.go("/console/settings").await;
    assert!(b.text("#staff").await.contains("sato"));
    b.accessible("settings").await;
    b.shot("settings").await;

    // Keyboard only: a second needs-contact case, taken and resolved
    // without the mouse.
    let bad = phones_for(
        &w.d.dir,
        w.bad_port,
        1,
        &["--digits", "2", "--answer-delay-ms", "200"],
    );
    check_now(&w.http, w.people[4]);
    records_of(bad, 1, Duration::from_secs(60));
    let case = poll(
        &w.http,
        &format!("/v1/tenants/{}/alerts?state=open", w.tid),
        Duration::from_secs(30),
        |v| !v["alerts"].as_array().unwrap().is_empty(),
    )["alerts"][0]["id"]
        .as_u64()
        .unwrap();
    b.go(&format!("/console/cases/{case}")).await;
    let tab_to = |id: &'static str| {
        let b = &b;
        async move {
            for _ in 0..60 {
                b.client
                    .active_element()
                    .await
                    .unwrap()
                    .send_keys(TAB)
                    .await
                    .unwrap();
                if b.js("return document.activeElement && document.activeElement.id;")
                    .await
                    == json!(id)
                {
                    // The focus is visible: an outline is drawn.
                    let outline = b
                        .js("return getComputedStyle(document.activeElement).outlineStyle;")
                        .await;
                    assert_ne!(outline, json!("none"), "no visible focus on #{id}");
                    return;
                }
            }
            panic!("#{id} cannot be reached with Tab");
        }
    };
    tab_to("take").await;
    b.client
        .active_element()
        .await
        .unwrap()
        .send_keys(ENTER)
        .await
        .unwrap();
    b.wait_for(
        "#case-state",
        |t| t.contains("対応中"),
        Duration::from_secs(10),
    )
    .await;
    tab_to("note").await;
    b.client
        .active_element()
        .await
        .unwrap()
        .send_keys("留守でしたが、隣の方が無事を確認")
        .await
        .unwrap();
    tab_to("resolve").await;
    b.client
        .active_element()
        .await
        .unwrap()
        .send_keys(ENTER)
        .await
        .unwrap();
    b.wait_for(
        "#case-state",
        |t| t.contains("完了"),
        Duration::from_secs(10),
    )
    .await;
    b.client.clone().close().await.ok();
}

/// Acceptance 1 (import, viewer): a CSV with one bad row shows the row's
/// error in the page; a viewer sees no buttons and a POST of theirs is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_shows_the_bad_row_and_a_viewer_changes_nothing() {
    let w = world("console-import", 1, 0);
    let b = browser(&w.d.dir, &w.d.api).await;
    b.sign_in("sato", PW).await;
    let csv = w.d.dir.join("people.csv");
    std::fs::write(
        &csv,
        "\u{feff}name,phone,days,times\n中村 フミ,0471234567,1-5,09:30\n小川 ヨシ,not a phone,1-5,09:30\n",
    )
    .unwrap();
    b.go("/console/import").await;
    b.client
        .find(Locator::Css("#file"))
        .await
        .unwrap()
        .send_keys(csv.to_str().unwrap())
        .await
        .unwrap();
    b.click("#import").await;
    let result = b
        .wait_for("#import-result", |_| true, Duration::from_secs(10))
        .await;
    assert!(result.contains('1'), "{result}");
    let errors = b.text("#row-errors").await;
    assert!(errors.contains("phone") && errors.contains('3'), "{errors}");
    b.accessible("import (result)").await;
    b.shot("import").await;
    // A coordinator pauses a person until a date, and resumes them.
    let sid = w.people[0];
    b.go(&format!("/console/people/{sid}")).await;
    b.js("document.querySelector('#until').value = '2099-01-31'; return null;")
        .await;
    b.click("form[action$='/pause'] button").await;
    b.wait_for(
        ".flash",
        |t| t.contains("一時停止を保存しました"),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(b.text("#paused").await, "2099-01-31");
    assert_eq!(
        w.http.get(&format!("/v1/subscribers/{sid}")).json()["paused_until"],
        json!("2099-01-31")
    );
    b.click("form[action$='/pause'] input[value=''] + button")
        .await;
    b.wait_for("#paused", |t| t == "—", Duration::from_secs(10))
        .await;
    assert!(w.http.get(&format!("/v1/subscribers/{sid}")).json()["paused_until"].is_null());
    b.sign_out().await;

    b.sign_in("suzuki", PW).await;
    let sid = w.people[0];
    b.go(&format!("/console/people/{sid}")).await;
    assert!(
        !b.has("form[action$='/pause']").await,
        "a viewer sees the pause form"
    );
    assert!(!b.has("form[action$='/call']").await);
    b.go("/console/import").await;
    assert!(!b.has("#import").await);
    // The POST itself is refused, with the viewer's own session and token.
    let cookie = b.client.get_named_cookie("genki_session").await.unwrap();
    let csrf = b
        .js("return document.querySelector(\"input[name='_csrf']\").value;")
        .await;
    let body = format!("_csrf={}&until=2099-01-01", csrf.as_str().unwrap());
    let r = Http {
        addr: w.d.api.clone(),
        token: String::new(),
    }
    .request(
        "POST",
        &format!("/console/people/{sid}/pause"),
        Some(body.as_bytes()),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &format!("genki_session={}", cookie.value())),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(w.http.get(&format!("/v1/subscribers/{sid}")).json()["paused_until"].is_null());
    b.client.clone().close().await.ok();
}

/// Sign in over plain HTTP: the session cookie (and the Set-Cookie lines).
fn sign_in_raw(http: &Http, login: &str, password: &str, extra: &[(&str, &str)]) -> HttpResponse {
    let page = http.request("GET", "/console/signin", None, extra);
    let pre = cookie_of(&page.headers, "genki_signin").expect("sign-in cookie");
    let token = page
        .body
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("form token")
        .to_string();
    let body = format!(
        "_csrf={token}&login={login}&password={}&locale=ja",
        password.replace(' ', "+")
    );
    let cookie = format!("genki_signin={pre}");
    let mut headers = vec![
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookie.as_str()),
    ];
    headers.extend_from_slice(extra);
    http.request("POST", "/console/signin", Some(body.as_bytes()), &headers)
}

fn cookie_of(headers: &str, name: &str) -> Option<String> {
    headers
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .find_map(|l| {
            l.split_once(':')?
                .1
                .trim()
                .strip_prefix(&format!("{name}="))?
                .split(';')
                .next()
                .map(str::to_string)
        })
}

/// Acceptance 3: the form token is required, another tenant's case is the
/// 404 page, the session cookie's flags, and ten wrong passwords lock the
/// account (the right one is refused after them).
#[test]
fn the_console_refuses_forged_forms_other_tenants_and_guessers() {
    let w = world("console-security", 1, 0);
    let web = Http {
        addr: w.d.api.clone(),
        token: String::new(),
    };
    // Cookie flags, plain and behind a TLS proxy.
    let r = sign_in_raw(&web, "sato", PW, &[]);
    assert_eq!(r.status, 303, "{}", r.body);
    let line = r
        .headers
        .lines()
        .find(|l| l.contains("genki_session="))
        .unwrap()
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(line.contains(flag), "{line}");
    }
    assert!(!line.contains("Secure"), "{line}");
    let tls = sign_in_raw(&web, "sato", PW, &[("X-Forwarded-Proto", "https")]);
    assert!(
        tls.headers
            .lines()
            .any(|l| l.contains("genki_session=") && l.contains("; Secure")),
        "{}",
        tls.headers
    );
    let session = cookie_of(&r.headers, "genki_session").unwrap();
    let cookie = format!("genki_session={session}");
    // A change without the form token (or with another) is refused.
    let sid = w.people[0];
    for body in ["until=2099-01-01", "_csrf=0000&until=2099-01-01"] {
        let r = web.request(
            "POST",
            &format!("/console/people/{sid}/pause"),
            Some(body.as_bytes()),
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", &cookie),
            ],
        );
        assert_eq!(r.status, 403, "{body}: {}", r.body);
    }
    assert!(w.http.get(&format!("/v1/subscribers/{sid}")).json()["paused_until"].is_null());
    // Another tenant's case and person: the 404 page, as if they did not exist.
    let other = create_tenant(
        &w.http,
        &json!({"name": "別の市", "time_zone": "Asia/Tokyo", "window_start": "00:00", "window_end": "23:59"}),
    );
    let r = w.http.post(
        &format!("/v1/tenants/{other}/subscribers"),
        &json!({"name": "他人", "phone": "sip:9@127.0.0.1:9"}),
    );
    let stranger = r.json()["id"].as_u64().unwrap();
    for path in [
        format!("/console/people/{stranger}"),
        "/console/cases/999999".to_string(),
    ] {
        let r = web.request("GET", &path, None, &[("Cookie", &cookie)]);
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.body.contains("見つかりません") && !r.body.contains("他人"),
            "{path}: {}",
            r.body
        );
    }
    // Without a session: to the sign-in page.
    let r = web.request("GET", "/console/today", None, &[]);
    assert_eq!(r.status, 303);
    assert!(r.headers.contains("/console/signin"));
    // Ten wrong passwords: locked, and then the right one is refused too.
    for i in 0..10 {
        let r = sign_in_raw(&web, "suzuki", "wrong password!", &[]);
        assert!(
            r.headers.contains("err=wrong") || (i == 9 && r.headers.contains("err=locked")),
            "{i}: {}",
            r.headers
        );
    }
    let r = sign_in_raw(&web, "suzuki", PW, &[]);
    assert!(r.headers.contains("err=locked"), "{}", r.headers);
    assert!(cookie_of(&r.headers, "genki_session").is_none());
    let staff = w.http.get(&format!("/v1/tenants/{}/staff", w.tid)).json();
    let suzuki = staff["staff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["login"] == "suzuki")
        .unwrap()
        .clone();
    assert!(suzuki["locked_until_ms"].as_u64().is_some(), "{suzuki}");
    // The operator unlocks it.
    let r = w.http.patch(
        &format!("/v1/staff/{}", suzuki["id"]),
        &json!({"unlock": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = sign_in_raw(&web, "suzuki", PW, &[]);
    assert_eq!(r.status, 303);
    let old = format!(
        "genki_session={}",
        cookie_of(&r.headers, "genki_session").unwrap()
    );
    assert_eq!(
        web.request("GET", "/console/today", None, &[("Cookie", &old)])
            .status,
        200
    );
    // A new password ends every session begun with the old one.
    let r = w.http.patch(
        &format!("/v1/staff/{}", suzuki["id"]),
        &json!({"password": "another long phrase"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = web.request("GET", "/console/today", None, &[("Cookie", &old)]);
    assert_eq!(r.status, 303, "the old session still works");
    // The sign-in page shows no words a link brings.
    let r = web.request(
        "GET",
        "/console/signin?err=locked&until=CALL-0120-000-000",
        None,
        &[],
    );
    assert!(!r.body.contains("CALL-0120"), "{}", r.body);
    // Every sign-in and failure is in the audit trail.
    let audit = w.http.get(&format!("/v1/audit?tenant={}", w.tid));
    assert!(
        audit.body.contains("sign_in_locked") && audit.body.contains("sign_in"),
        "{}",
        audit.body
    );
    drop(w);
}
