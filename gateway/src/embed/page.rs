//! What the browser runs: the first-load page (served to a navigation
//! without a session) and the refresh script (added to the app's pages).
//!
//! The first-load page loads nothing from elsewhere; its one script and
//! one style carry a fresh nonce that its `Content-Security-Policy` names.
//! It takes the token from `#token=…` only when it is framed (at top level
//! a link with someone else's token would sign the user in as them), drops
//! it from the address at once, and otherwise asks the parent with
//! `MEINGPT_TOKEN_REFRESH`, accepting an answer only from `window.parent`
//! at a meinGPT origin. It posts the token to the session endpoint,
//! checks that the browser kept the cookie, and reloads the address
//! without the fragment. Every other outcome has a page that says what to
//! do.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

/// The texts of one embed route, made once when the route is built.
#[derive(Debug, Clone)]
pub struct Pages {
    /// The first-load page up to the nonce, and the rest, split where the
    /// nonce goes.
    first_load: Vec<String>,
    /// `frame-ancestors` sources, space-separated.
    frame_ancestors: String,
    /// The refresh script.
    script: String,
}

/// The session endpoint, relative to a route's prefix.
pub const SESSION_PATH: &str = "/_meingpt/session";
/// The logout endpoint, relative to a route's prefix.
pub const LOGOUT_PATH: &str = "/_meingpt/logout";
/// The refresh script, relative to a route's prefix.
pub const SCRIPT_PATH: &str = "/_meingpt/embed.js";

/// How long the pages wait for meinGPT's answer, in milliseconds.
const ANSWER_TIMEOUT_MS: u32 = 10_000;

const NONCE: &str = "{nonce}";

impl Pages {
    /// The pages for a route whose endpoints are under `base` (the route's
    /// prefix without a trailing `/`), framed by `origins` (meinGPT's).
    pub fn new(base: &str, origins: &[String]) -> Self {
        let config = serde_json::json!({
            "origins": origins,
            "session": format!("{base}{SESSION_PATH}"),
            "timeout": ANSWER_TIMEOUT_MS,
        })
        .to_string()
        // Inside <script>: no `</script>` or `<!--` can be spelled.
        .replace('<', "\\u003c");
        let home = origins.first().map_or("meinGPT", String::as_str);
        let first_load = FIRST_LOAD
            .replace("{config}", &config)
            .replace("{home}", &html_escape(home));
        let script = SCRIPT.replace("{config}", &config);
        Self {
            first_load: first_load.split(NONCE).map(str::to_owned).collect(),
            frame_ancestors: origins.join(" "),
            script,
        }
    }

    /// The first-load page, as the answer to a navigation the gateway
    /// refused with `status` (its `WWW-Authenticate` is kept by the caller).
    pub fn first_load<B: From<String>>(&self, status: StatusCode) -> Response<B> {
        let nonce = nonce();
        let body = self.first_load.join(&nonce);
        let mut response = Response::new(B::from(body));
        *response.status_mut() = status;
        let csp = format!(
            "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {}",
            self.frame_ancestors
        );
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        if let Ok(csp) = HeaderValue::try_from(csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }

    /// The refresh script.
    pub fn script<B: From<String>>(&self) -> Response<B> {
        let mut response = Response::new(B::from(self.script.clone()));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

/// 128 random bits, base64.
fn nonce() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 16];
    // The system's generator does not fail on a running system; a zero
    // nonce would still only allow this page's own script.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The first-load page. `{config}`, `{home}` are filled in per route,
/// `{nonce}` per answer.
const FIRST_LOAD: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>meinGPT Custom AI App</title>
<style nonce="{nonce}">
  body { margin: 0; min-height: 100vh; display: grid; place-items: center;
         font: 16px/1.5 system-ui, sans-serif; color: #1e293b; background: #f8fafc; }
  main { max-width: 34rem; padding: 2rem; }
  h1 { font-size: 1.25rem; margin: 0 0 .5rem; }
  p { margin: .25rem 0; color: #475569; }
  [hidden] { display: none; }
</style></head>
<body><main id="meingpt-embed" data-state="signing-in">
<section data-for="signing-in"><h1>Signing in with meinGPT…</h1></section>
<section data-for="open-from-meingpt" hidden>
  <h1>Open this app from meinGPT</h1>
  <p>This app signs you in with your meinGPT account when meinGPT shows it.
     Open it from meinGPT (<a href="{home}" target="_top" rel="noreferrer">{home}</a>).</p>
</section>
<section data-for="token-error" hidden>
  <h1>meinGPT could not sign you in</h1>
  <p>Reload the app in meinGPT. If this keeps happening, sign in to meinGPT again.</p>
</section>
<section data-for="refused" hidden>
  <h1>No access</h1>
  <p>Your meinGPT account may not use this app. Ask your meinGPT administrator for access.</p>
</section>
<section data-for="cookies-blocked" hidden>
  <h1>Your browser keeps no sign-in for apps inside meinGPT</h1>
  <p>It blocks the app's cookie in meinGPT's frame (Safari before 26.2 does). Open meinGPT in a
     current Chrome, Edge, Firefox or Safari, or allow cookies for this site.</p>
</section>
</main>
<script nonce="{nonce}">
(() => {
  const config = {config};
  const root = document.getElementById('meingpt-embed');
  const show = (state) => {
    root.dataset.state = state;
    for (const section of root.querySelectorAll('section')) {
      section.hidden = section.dataset.for !== state;
    }
  };
  const address = location.pathname + location.search;
  const framed = window.parent !== window;
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromFragment = fragment.get('token');
  if (location.hash) history.replaceState(null, '', address);
  if (!framed) { show('open-from-meingpt'); return; }

  const signIn = async (token) => {
    const made = await fetch(config.session, {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    if (made.status === 403) return show('refused');
    if (!made.ok) return show('token-error');
    const kept = await fetch(config.session, { credentials: 'same-origin', cache: 'no-store' });
    if (!kept.ok) return show('cookies-blocked');
    location.replace(address);
  };
  const failed = () => show('token-error');

  if (fromFragment) { signIn(fromFragment).catch(failed); return; }
  const timer = setTimeout(failed, config.timeout);
  window.addEventListener('message', (event) => {
    if (event.source !== window.parent || !config.origins.includes(event.origin)) return;
    const data = event.data;
    if (!data || typeof data !== 'object') return;
    if (data.type === 'MEINGPT_TOKEN_RESPONSE' && typeof data.token === 'string') {
      clearTimeout(timer);
      signIn(data.token).catch(failed);
    } else if (data.type === 'MEINGPT_TOKEN_ERROR') {
      clearTimeout(timer);
      failed();
    }
  });
  for (const origin of config.origins) {
    window.parent.postMessage({ type: 'MEINGPT_TOKEN_REFRESH' }, origin);
  }
})();
</script></body></html>
"#;

/// The refresh script, `{config}` filled in per route. It runs first in
/// the page, so it takes a `#token=…` meinGPT put in the address (the
/// frame opened again while the session was still valid) out of it before
/// any of the app's scripts can read it, and makes the session with that
/// token. It runs in the app's own frame only (not in the app's nested
/// frames, which share its cookie), refreshes the session before it
/// expires (the expiry comes from its tag's `data-expires-at`, in
/// milliseconds) and when a same-origin `fetch` is answered `401` by the
/// gateway, then retries that request once.
const SCRIPT: &str = r#"(() => {
  const config = {config};
  const tag = document.currentScript;
  const fragment = new URLSearchParams(location.hash.slice(1));
  const handed = fragment.get('token');
  if (handed !== null) {
    fragment.delete('token');
    const rest = fragment.toString();
    history.replaceState(history.state, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }
  if (window.parent === window) return;
  try { if (window.parent.location.origin === location.origin) return; } catch (_) { /* meinGPT */ }
  const plainFetch = window.fetch.bind(window);
  let expiresAt = Number(tag && tag.dataset.expiresAt) || 0;
  let timer = 0;
  let running = null;

  const ask = () => new Promise((resolve, reject) => {
    const done = (outcome) => { clearTimeout(timeout); window.removeEventListener('message', listen); outcome(); };
    const listen = (event) => {
      if (event.source !== window.parent || !config.origins.includes(event.origin)) return;
      const data = event.data;
      if (!data || typeof data !== 'object') return;
      if (data.type === 'MEINGPT_TOKEN_RESPONSE' && typeof data.token === 'string') {
        done(() => resolve(data.token));
      } else if (data.type === 'MEINGPT_TOKEN_ERROR') {
        done(() => reject(new Error('meinGPT could not refresh the token')));
      }
    };
    const timeout = setTimeout(() => done(() => reject(new Error('meinGPT did not answer'))), config.timeout);
    window.addEventListener('message', listen);
    for (const origin of config.origins) {
      window.parent.postMessage({ type: 'MEINGPT_TOKEN_REFRESH' }, origin);
    }
  });

  const refresh = (given) => {
    running = running || (given ? Promise.resolve(given) : ask())
      .then((token) => plainFetch(config.session, {
        method: 'POST', credentials: 'same-origin', cache: 'no-store',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ token }),
      }))
      .then((response) => {
        if (!response.ok) throw new Error('the session endpoint answered ' + response.status);
        return response.json();
      })
      .then((session) => { expiresAt = session.expiresAt; schedule(); })
      .finally(() => { running = null; });
    return running;
  };

  const schedule = () => {
    clearTimeout(timer);
    if (!expiresAt) return;
    const left = expiresAt - Date.now();
    const early = Math.min(60000, Math.max(1000, left / 4));
    timer = setTimeout(() => refresh().catch(() => {}), Math.max(0, left - early));
  };

  const sameOrigin = (input) => {
    try {
      const url = new URL(input instanceof Request ? input.url : String(input), location.href);
      return url.origin === location.origin && url.pathname !== config.session;
    } catch (_) { return false; }
  };
  window.fetch = async (input, init) => {
    const again = input instanceof Request ? input.clone() : input;
    const response = await plainFetch(input, init);
    const challenge = response.headers.get('WWW-Authenticate') || '';
    if (response.status !== 401 || !/^Bearer\b/i.test(challenge) || !sameOrigin(input)) return response;
    try { await refresh(); } catch (_) { return response; }
    return plainFetch(again, init);
  };
  if (handed) refresh(handed).catch(schedule); else schedule();
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_has_its_own_nonce_named_by_its_policy() {
        let pages = Pages::new("", &["https://app.meingpt.com".to_owned()]);
        let first: Response<String> = pages.first_load(StatusCode::UNAUTHORIZED);
        let second: Response<String> = pages.first_load(StatusCode::UNAUTHORIZED);
        let policy = |r: &Response<String>| {
            r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_ne!(policy(&first), policy(&second));
        let csp = policy(&first);
        assert!(
            csp.ends_with("frame-ancestors https://app.meingpt.com"),
            "{csp}"
        );
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap();
        assert_eq!(
            first.body().matches(&format!("nonce=\"{nonce}\"")).count(),
            2
        );
        assert!(!first.body().contains("{nonce}"));
        assert!(first.body().contains(r#""session":"/_meingpt/session""#));
    }

    #[test]
    fn configuration_cannot_close_the_script_element() {
        let pages = Pages::new("/a</script>", &["https://app.meingpt.com".to_owned()]);
        let page: Response<String> = pages.first_load(StatusCode::UNAUTHORIZED);
        assert_eq!(page.body().matches("</script>").count(), 1);
        assert!(page.body().contains(r#"/a\u003c/script>/_meingpt/session"#));
    }
}
