//! The load: clients sending the tokens of several users (each several
//! times refreshed, in both token headers), about 10 % attacks, and
//! Server-Sent Event streams held open; every answer checked against what
//! the client meant.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meingpt_auth::testing::MockIssuer;

use crate::attacks::{Attack, attacks};
use crate::measure::Occurrences;
use crate::stack::JwksRelay;
use crate::timeline::Timeline;
use crate::upstream::{Expect, REQUEST_HEADER};
use crate::users::USERS;

/// Tokens per user and key: meinGPT refreshes a user's token every hour,
/// so the same user arrives with several.
const TOKENS_PER_USER: usize = 8;

/// How long after a replica got a new key set its requests may still be
/// answered with the old one (requests in flight).
const SETTLE_MS: u64 = 1_000;

/// Which nginx site a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Front {
    /// nginx → a replica (reverse proxy) → the upstream.
    Proxy,
    /// nginx `auth_request` → a replica; nginx → the upstream.
    ForwardAuth,
}

impl Front {
    pub fn name(self) -> &'static str {
        match self {
            Front::Proxy => "proxy mode",
            Front::ForwardAuth => "forward auth",
        }
    }
}

/// Every token the soak sends.
pub struct Tokens {
    /// `[key generation][user][n]`: key 0 is published from the start,
    /// keys 1 and 2 at the rotations.
    valid: Vec<Vec<Vec<String>>>,
    attacks: Vec<Attack>,
    /// The first admin's header and claims under the first member's
    /// signature.
    forged: String,
}

impl Tokens {
    /// Mints every token up front; returns them with the `kid`s of keys 1
    /// and 2, which the issuer does not publish yet.
    pub fn mint(issuer: &MockIssuer, other_issuer: &MockIssuer) -> (Self, [String; 2]) {
        let generation = |issuer: &MockIssuer| -> Vec<Vec<String>> {
            USERS
                .iter()
                .map(|user| {
                    (0..TOKENS_PER_USER)
                        .map(|_| {
                            issuer
                                .token()
                                .sub(user.sub)
                                .username(user.username)
                                .email(user.email)
                                .role(user.role)
                                .team(user.team, user.team)
                                .sign()
                        })
                        .collect()
                })
                .collect()
        };
        let mut attacks = attacks(issuer);
        attacks.push(Attack {
            name: "another issuer",
            token: other_issuer.token().audience(issuer.organization()).sign(),
        });
        let mut valid = vec![generation(issuer)];
        let (signed, _) = valid[0][0][0].rsplit_once('.').expect("a JWS");
        let (_, signature) = valid[0][2][0].rsplit_once('.').expect("a JWS");
        let forged = format!("{signed}.{signature}");
        let kid_1 = issuer.rotate();
        valid.push(generation(issuer));
        let kid_2 = issuer.rotate();
        valid.push(generation(issuer));
        issuer.unpublish(&kid_1);
        issuer.unpublish(&kid_2);
        (
            Self {
                valid,
                attacks,
                forged,
            },
            [kid_1, kid_2],
        )
    }

    /// The token attacks' names, then the header attacks'.
    pub fn attack_names(&self) -> Vec<&'static str> {
        self.attacks
            .iter()
            .map(|attack| attack.name)
            .chain(HEADER_ATTACKS)
            .collect()
    }
}

/// Attacks in the request's headers rather than its token.
const HEADER_ATTACKS: [&str; 5] = [
    "identity headers spoofed, no token",
    "identity headers spoofed (also with `_`) beside a member's token",
    "a public route's URI in X-Original-URI & co. on an admin path",
    "identity headers spoofed on a public route",
    "a forged X-meinGPT-JWT beside a valid Authorization",
];

/// The identity headers as a client would spoof them, in both spellings.
fn spoofed_identity() -> Vec<(String, String)> {
    let claims = "eyJzdWIiOiJhZG1pbi0xIn0";
    let spoof = [
        ("X-Auth-Request-User", "admin-1"),
        ("X-Auth-Request-Email", "boss@example.com"),
        ("X-Auth-Request-Preferred-Username", "Boss"),
        ("X-Auth-Request-Groups", "team-eng"),
        ("X-meinGPT-Org-Id", "another-org"),
        ("X-meinGPT-Role", "admin"),
        ("X-meinGPT-Claims", claims),
    ];
    spoof
        .iter()
        .flat_map(|(name, value)| {
            [
                (name.to_string(), value.to_string()),
                (name.replace('-', "_"), value.to_string()),
            ]
        })
        .collect()
}

/// One request to send.
struct Planned {
    front: Front,
    path: String,
    headers: Vec<(String, String)>,
    expect: Expect,
    /// The key generation of the valid token it carries, if any.
    generation: Option<usize>,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Valid,
    TokenAttack(usize),
    HeaderAttack(usize),
}

/// Everything the clients share: tokens, where to send, the keys
/// published, and what they saw.
pub struct Load {
    pub timeline: Arc<Timeline>,
    tokens: Tokens,
    proxy: String,
    forward_auth: String,
    /// The newest key generation published.
    generation: AtomicUsize,
    /// When each generation was published (ms; 0 for key 0).
    published_ms: [AtomicU64; 3],
    relays: Vec<JwksRelay>,
    next_id: AtomicU64,
    pub done: AtomicBool,
    pub seen: Outcomes,
}

/// A kind of failure: (cause, front, status or 0, who answered).
pub type Failure = (&'static str, Front, u16, &'static str);

/// What the clients saw.
#[derive(Default)]
pub struct Outcomes {
    pub sent: [AtomicU64; 2],
    pub served_as_user: AtomicU64,
    pub served_anonymous: AtomicU64,
    /// Token attacks and header attacks answered as they must be, by
    /// (attack, front, status).
    pub token_attacks: Mutex<BTreeMap<(&'static str, Front, u16), u64>>,
    pub header_attacks: Mutex<BTreeMap<(&'static str, Front, u16), u64>>,
    /// Valid tokens of a just-published key refused before every replica
    /// got the new key set, per key generation.
    pub tolerated: [Occurrences; 3],
    pub wrong_verdicts: AtomicU64,
    /// Answers that named another request or user than the one sent.
    pub wrong_answers: AtomicU64,
    /// 5xx answers and requests without an answer (status 0).
    pub failures: Mutex<BTreeMap<Failure, Occurrences>>,
    pub examples: Mutex<Vec<String>>,
    pub streams_opened: AtomicU64,
    pub stream_events: AtomicU64,
    /// Streams that ended before the run did, by (cause, front).
    pub stream_breaks: Mutex<BTreeMap<(&'static str, Front), u64>>,
    /// The longest wait for the next event on an open stream.
    pub longest_event_gap_ms: AtomicU64,
}

impl Outcomes {
    fn example(&self, text: String) {
        let mut examples = self.examples.lock().unwrap();
        if examples.len() < 20 {
            examples.push(text);
        }
    }

    fn failure(&self, failure: Failure, at_ms: u64) {
        self.failures
            .lock()
            .unwrap()
            .entry(failure)
            .or_default()
            .record(at_ms);
    }
}

impl Load {
    pub fn new(
        timeline: Arc<Timeline>,
        tokens: Tokens,
        proxy: String,
        forward_auth: String,
        relays: Vec<JwksRelay>,
    ) -> Self {
        Self {
            timeline,
            tokens,
            proxy,
            forward_auth,
            generation: AtomicUsize::new(0),
            published_ms: Default::default(),
            relays,
            next_id: AtomicU64::new(1),
            done: AtomicBool::new(false),
            seen: Outcomes::default(),
        }
    }

    /// Key generation `generation` is published now: clients send its
    /// tokens from now on.
    pub fn published(&self, generation: usize) {
        self.published_ms[generation].store(self.timeline.now_ms(), Ordering::Release);
        self.generation.store(generation, Ordering::Release);
    }

    /// Whether the issuer has served every replica a key set holding key
    /// `generation` (at least [`SETTLE_MS`] ago).
    pub fn every_replica_has(&self, generation: usize) -> bool {
        if generation == 0 {
            return true;
        }
        let published = self.published_ms[generation].load(Ordering::Acquire);
        let now = self.timeline.now_ms();
        published > 0
            && self
                .relays
                .iter()
                .all(|relay| relay.served_keys_after(published, now, SETTLE_MS))
    }

    pub fn published_at(&self, generation: usize) -> u64 {
        self.published_ms[generation].load(Ordering::Acquire)
    }

    fn url(&self, front: Front, path: &str) -> String {
        match front {
            Front::Proxy => format!("{}{path}", self.proxy),
            Front::ForwardAuth => format!("{}{path}", self.forward_auth),
        }
    }

    fn plan(&self, n: u64, id: u64) -> Planned {
        let mut draw = Draw::new(n);
        let front = if draw.below(4) == 0 {
            Front::ForwardAuth
        } else {
            Front::Proxy
        };
        let generation = self.generation.load(Ordering::Acquire);
        let dedicated_header = draw.below(2) == 0;
        let token_header = |token: String| {
            if dedicated_header {
                ("X-meinGPT-JWT".to_owned(), token)
            } else {
                ("Authorization".to_owned(), format!("Bearer {token}"))
            }
        };
        if draw.below(10) == 0 {
            if draw.below(2) == 0 {
                let attack = draw.below(self.tokens.attacks.len() as u64) as usize;
                return Planned {
                    front,
                    path: format!("/notes/{id}"),
                    headers: vec![token_header(self.tokens.attacks[attack].token.clone())],
                    expect: Expect::Refused,
                    generation: None,
                    kind: Kind::TokenAttack(attack),
                };
            }
            let attack = draw.below(HEADER_ATTACKS.len() as u64) as usize;
            return self.header_attack(attack, front, id, generation);
        }
        let user = draw.below(USERS.len() as u64) as usize;
        let token =
            &self.tokens.valid[generation][user][draw.below(TOKENS_PER_USER as u64) as usize];
        let headers = vec![token_header(token.clone())];
        let (path, expect) = if draw.below(9) == 0 {
            (format!("/public/page/{id}"), Expect::Anonymous)
        } else if USERS[user].is_admin() && draw.below(2) == 0 {
            (format!("/admin/report/{id}"), Expect::User(user))
        } else {
            (format!("/notes/{id}"), Expect::User(user))
        };
        Planned {
            front,
            path,
            headers,
            expect,
            generation: Some(generation),
            kind: Kind::Valid,
        }
    }

    fn header_attack(&self, attack: usize, front: Front, id: u64, generation: usize) -> Planned {
        const MEMBER: usize = 4;
        const ADMIN: usize = 1;
        let token = |user: usize| {
            self.tokens.valid[generation][user][id as usize % TOKENS_PER_USER].clone()
        };
        let (path, headers, expect, generation) = match attack {
            0 => (
                format!("/notes/{id}"),
                spoofed_identity(),
                Expect::Refused,
                None,
            ),
            1 => {
                let mut headers = spoofed_identity();
                headers.push(("X-meinGPT-JWT".to_owned(), token(MEMBER)));
                headers.push(("X_meinGPT_JWT".to_owned(), self.tokens.forged.clone()));
                (
                    format!("/notes/{id}"),
                    headers,
                    Expect::User(MEMBER),
                    Some(generation),
                )
            }
            2 => {
                let mut headers: Vec<(String, String)> = [
                    "X-Original-URI",
                    "X-Forwarded-Uri",
                    "X-Original-URL",
                    "X-Rewrite-URL",
                    "X_Original_URI",
                ]
                .iter()
                .map(|name| (name.to_string(), format!("/public/page/{id}")))
                .collect();
                headers.push(("X-Original-Method".to_owned(), "GET".to_owned()));
                headers.push(("X-meinGPT-JWT".to_owned(), token(MEMBER)));
                (
                    format!("/admin/report/{id}"),
                    headers,
                    Expect::Refused,
                    None,
                )
            }
            3 => (
                format!("/public/page/{id}"),
                spoofed_identity(),
                Expect::Anonymous,
                None,
            ),
            _ => (
                format!("/notes/{id}"),
                vec![
                    (
                        "Authorization".to_owned(),
                        format!("Bearer {}", token(ADMIN)),
                    ),
                    ("X-meinGPT-JWT".to_owned(), self.tokens.forged.clone()),
                ],
                Expect::Refused,
                None,
            ),
        };
        Planned {
            front,
            path,
            headers,
            expect,
            generation,
            kind: Kind::HeaderAttack(attack),
        }
    }
}

/// Choices drawn from a request's number: its bits mixed (splitmix64), so
/// that the choices do not follow each other.
struct Draw(u64);

impl Draw {
    fn new(n: u64) -> Self {
        let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self(z ^ (z >> 31))
    }

    /// A number below `k`.
    fn below(&mut self, k: u64) -> u64 {
        let choice = self.0 % k;
        self.0 /= k;
        choice
    }
}

/// A client: sends requests one after the other until the run is done,
/// and checks each answer.
pub async fn client(load: Arc<Load>, http: reqwest::Client, first: u64) {
    let mut n = first;
    while !load.done.load(Ordering::Relaxed) {
        n = n.wrapping_add(1);
        let id = load.next_id.fetch_add(1, Ordering::Relaxed);
        let planned = load.plan(n, id);
        let mut request = http
            .get(load.url(planned.front, &planned.path))
            .header(REQUEST_HEADER, planned.expect.header_value(id));
        for (name, value) in &planned.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let sent_ms = load.timeline.now_ms();
        load.seen.sent[planned.front as usize].fetch_add(1, Ordering::Relaxed);
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                Some((status, body))
            }
            Err(_) => None,
        };
        check(&load, &planned, id, sent_ms, answer);
    }
}

/// Who wrote an error answer: nginx's pages name it; the gateway's bodies
/// are plain text.
fn answered_by(body: &str) -> &'static str {
    if body.contains("<center>nginx") {
        "nginx"
    } else {
        "gateway"
    }
}

fn check(load: &Load, planned: &Planned, id: u64, sent_ms: u64, answer: Option<(u16, String)>) {
    let seen = &load.seen;
    let now = load.timeline.now_ms();
    let Some((status, body)) = answer else {
        let cause = load.timeline.cause(sent_ms, now);
        seen.failure((cause, planned.front, 0, "no answer"), now);
        return;
    };
    let wrong = |what: &str| {
        seen.wrong_verdicts.fetch_add(1, Ordering::Relaxed);
        seen.example(format!(
            "request {id} ({}, {}, {}): {what}",
            planned.front.name(),
            planned.expect,
            kind_name(load, planned.kind)
        ));
    };
    match (planned.expect, status) {
        (_, 500..=599) => {
            let cause = load.timeline.cause(sent_ms, now);
            seen.failure((cause, planned.front, status, answered_by(&body)), now);
        }
        (Expect::User(_) | Expect::Anonymous, 200) => {
            let who = match planned.expect {
                Expect::User(user) => USERS[user].sub,
                _ => "-",
            };
            if body != format!("{id} {who}") {
                seen.wrong_answers.fetch_add(1, Ordering::Relaxed);
                seen.example(format!(
                    "request {id} ({}): the answer was for {body:?}",
                    planned.front.name()
                ));
                return;
            }
            match planned.expect {
                Expect::User(_) => &seen.served_as_user,
                _ => &seen.served_anonymous,
            }
            .fetch_add(1, Ordering::Relaxed);
            count_attack(load, planned, status);
        }
        (Expect::Refused, 400 | 401 | 403 | 431) => count_attack(load, planned, status),
        (Expect::User(_), 401)
            if planned
                .generation
                .is_some_and(|generation| !load.every_replica_has(generation)) =>
        {
            let generation = planned.generation.unwrap_or_default();
            seen.tolerated[generation].record(now);
        }
        _ => wrong(&format!("answered {status}")),
    }
}

fn kind_name(load: &Load, kind: Kind) -> &'static str {
    match kind {
        Kind::Valid => "valid token",
        Kind::TokenAttack(i) => load.tokens.attacks[i].name,
        Kind::HeaderAttack(i) => HEADER_ATTACKS[i],
    }
}

fn count_attack(load: &Load, planned: &Planned, status: u16) {
    let table = match planned.kind {
        Kind::Valid => return,
        Kind::TokenAttack(_) => &load.seen.token_attacks,
        Kind::HeaderAttack(_) => &load.seen.header_attacks,
    };
    *table
        .lock()
        .unwrap()
        .entry((kind_name(load, planned.kind), planned.front, status))
        .or_default() += 1;
}

/// A Server-Sent Events stream held open for the whole run by `USERS[user]`:
/// reopened whenever it breaks, each event checked.
pub async fn stream(load: Arc<Load>, http: reqwest::Client, front: Front, user: usize) {
    let token = load.tokens.valid[0][user][0].clone();
    while !load.done.load(Ordering::Relaxed) {
        let id = load.next_id.fetch_add(1, Ordering::Relaxed);
        let expect = Expect::User(user);
        let opened_ms = load.timeline.now_ms();
        let answer = http
            .get(load.url(front, &format!("/events/{id}")))
            .header(REQUEST_HEADER, expect.header_value(id))
            .header("X-meinGPT-JWT", &token)
            .send()
            .await;
        let mut response = match answer {
            Ok(response) if response.status() == 200 => response,
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                let planned = Planned {
                    front,
                    path: String::new(),
                    headers: Vec::new(),
                    expect,
                    generation: Some(0),
                    kind: Kind::Valid,
                };
                check(&load, &planned, id, opened_ms, Some((status, body)));
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            Err(_) => {
                let now = load.timeline.now_ms();
                let cause = load.timeline.cause(opened_ms, now);
                load.seen.failure((cause, front, 0, "no answer"), now);
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        load.seen.streams_opened.fetch_add(1, Ordering::Relaxed);
        let mut buffer = String::new();
        let mut last_event_ms = opened_ms;
        let broke = loop {
            if load.done.load(Ordering::Relaxed) {
                break false;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(1), response.chunk()).await;
            let now = load.timeline.now_ms();
            match chunk {
                Err(_) => {}
                Ok(Ok(Some(bytes))) => {
                    buffer.push_str(&String::from_utf8_lossy(&bytes));
                    while let Some(end) = buffer.find("\n\n") {
                        let event: String = buffer.drain(..end + 2).collect();
                        let expected = format!("data: {id} {} ", USERS[user].sub);
                        if !event.starts_with(&expected) {
                            load.seen.wrong_answers.fetch_add(1, Ordering::Relaxed);
                            load.seen.example(format!(
                                "stream {id} ({}): an event for someone else: {:?}",
                                front.name(),
                                event.trim_end()
                            ));
                        }
                        load.seen.stream_events.fetch_add(1, Ordering::Relaxed);
                        load.seen
                            .longest_event_gap_ms
                            .fetch_max(now - last_event_ms, Ordering::Relaxed);
                        last_event_ms = now;
                    }
                }
                Ok(Ok(None) | Err(_)) => break true,
            }
        };
        if broke {
            let cause = load.timeline.cause(last_event_ms, load.timeline.now_ms());
            *load
                .seen
                .stream_breaks
                .lock()
                .unwrap()
                .entry((cause, front))
                .or_default() += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
