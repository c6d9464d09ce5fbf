// The Custom AI App's client: signs in with the token meinGPT puts in the
// URL fragment, calls the app's API with it, and keeps it fresh through
// meinGPT's postMessage protocol.
//
//   app    -> meinGPT  { type: 'MEINGPT_TOKEN_REFRESH' }
//   meinGPT -> app     { type: 'MEINGPT_TOKEN_RESPONSE', token, expiresAt }
//                      { type: 'MEINGPT_TOKEN_ERROR', error }
//
// Messages are sent to, and accepted from, the meinGPT origin only (the
// server puts it in <meta name="meingpt-origin">). The token is never
// logged, stored or put back into the URL.
'use strict';

(function () {
  const MEINGPT_ORIGIN = document.querySelector('meta[name="meingpt-origin"]').content;
  /** Ask for a new token this long before the current one expires… */
  const REFRESH_BEFORE_MS = 30 * 1000;
  /** …but for short-lived tokens no earlier than halfway through. */
  const MIN_DELAY_MS = 1000;
  /** How long to wait for meinGPT's answer before asking again. */
  const ANSWER_WITHIN_MS = 10 * 1000;

  const $ = (id) => document.getElementById(id);
  const app = $('meingpt-custom-app');

  let token = null;
  let expiresAt = 0; // ms since the epoch; 0 while unknown
  let refreshTimer = null;
  let answerTimer = null;
  let waitingForToken = [];
  let refreshes = 0;
  let apiCalls = 0;
  let ignored = 0;

  // 1. The token arrives in the fragment (#token=…). Take it, then remove
  //    it from the address bar and the history entry.
  function takeTokenFromFragment() {
    const fragment = new URLSearchParams(window.location.hash.slice(1));
    const found = fragment.get('token');
    if (window.location.hash) {
      history.replaceState(history.state, '', window.location.pathname + window.location.search);
    }
    return found;
  }

  function setText(id, text) {
    $(id).textContent = text;
  }

  function signedOut(message) {
    app.dataset.state = 'signed-out';
    setText('signed-out-message', message);
  }

  function renderUser(user) {
    app.dataset.state = 'signed-in';
    setText('user-name', user.username || user.email || user.sub);
    setText('user-sub', user.sub);
    setText('user-role', user.role || '–');
    setText('user-organization', user.organization_name || user.organization_id || '–');
    const teams = $('user-teams');
    teams.replaceChildren(
      ...(user.teams || []).map((team) => {
        const chip = document.createElement('span');
        chip.textContent = team.name;
        chip.title = team.id;
        return chip;
      }),
    );
    if (!teams.childElementCount) teams.textContent = '–';
  }

  // 2. The app's own API, with the token as a bearer token.
  async function loadProfile(isRetry) {
    if (!token) {
      signedOut('Open this app from meinGPT to sign in.');
      return;
    }
    apiCalls += 1;
    setText('api-calls', String(apiCalls));
    setText('last-api-status', '…');
    let response;
    try {
      response = await fetch('/api/me', {
        headers: { Authorization: 'Bearer ' + token },
        cache: 'no-store',
      });
    } catch (error) {
      setText('last-api-status', 'network error');
      return;
    }
    setText('last-api-status', String(response.status));
    if (response.ok) {
      const user = await response.json();
      renderUser(user);
      if (!expiresAt && typeof user.exp === 'number') scheduleRefresh(user.exp * 1000);
    } else if (response.status === 401 && !isRetry) {
      // Expired or revoked: ask meinGPT for a new token, then try once more.
      waitingForToken.push(() => loadProfile(true));
      requestRefresh();
    } else {
      signedOut('Signing in failed (' + response.status + '). Reload the app in meinGPT.');
    }
  }

  // 3. Refresh through meinGPT, before the token expires.
  function scheduleRefresh(at) {
    expiresAt = at;
    setText('expires-at', new Date(at).toLocaleTimeString());
    clearTimeout(refreshTimer);
    const left = at - Date.now();
    const delay = Math.max(left - Math.min(REFRESH_BEFORE_MS, left / 2), MIN_DELAY_MS);
    refreshTimer = setTimeout(requestRefresh, delay);
  }

  function requestRefresh() {
    if (window.parent === window) {
      setText('refresh-status', 'not inside meinGPT; cannot refresh');
      return;
    }
    setText('refresh-status', 'asking meinGPT for a new token…');
    window.parent.postMessage({ type: 'MEINGPT_TOKEN_REFRESH' }, MEINGPT_ORIGIN);
    clearTimeout(answerTimer);
    answerTimer = setTimeout(() => {
      setText('refresh-status', 'no answer from meinGPT; asking again');
      requestRefresh();
    }, ANSWER_WITHIN_MS);
  }

  /** `expiresAt` as ms since the epoch: a number (ms or s) or a date string. */
  function parseExpiresAt(value) {
    const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    if (typeof number === 'number' && Number.isFinite(number) && number > 0) {
      return number < 1e11 ? number * 1000 : number;
    }
    const parsed = typeof value === 'string' ? Date.parse(value) : NaN;
    return Number.isFinite(parsed) ? parsed : 0;
  }

  window.addEventListener('message', (event) => {
    // Only meinGPT may hand the app a token.
    if (event.origin !== MEINGPT_ORIGIN) {
      ignored += 1;
      setText('ignored-messages', String(ignored));
      return;
    }
    const message = event.data;
    if (!message || typeof message !== 'object') return;
    if (message.type === 'MEINGPT_TOKEN_RESPONSE' && typeof message.token === 'string') {
      clearTimeout(answerTimer);
      token = message.token;
      refreshes += 1;
      setText('refreshes', String(refreshes));
      setText('refresh-status', 'token refreshed at ' + new Date().toLocaleTimeString());
      expiresAt = 0;
      const at = parseExpiresAt(message.expiresAt);
      if (at) scheduleRefresh(at);
      const waiting = waitingForToken;
      waitingForToken = [];
      if (waiting.length) waiting.forEach((retry) => retry());
      else loadProfile(false);
    } else if (message.type === 'MEINGPT_TOKEN_ERROR') {
      clearTimeout(answerTimer);
      waitingForToken = [];
      setText('refresh-status', 'meinGPT could not refresh the token: ' + String(message.error || 'unknown error'));
    }
  });

  $('reload').addEventListener('click', () => loadProfile(false));

  token = takeTokenFromFragment();
  loadProfile(false);
})();
