// roster dashboard: plain JavaScript over the node's JSON API (/v1), no
// framework and no build step. Every piece of data comes from /v1 with the
// bearer token when the node has one (kept in sessionStorage, this tab
// only); the live event stream is the SSE watch read through fetch, since
// EventSource cannot send an Authorization header.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'roster.token';
  const GROUPS_PAGE = 50; // groups per page
  const ROW = 28; // px, the height of a member row (--row in style.css)
  const MEMBERS_PAGE = 200; // members fetched at once
  const MAX_PAGES = 10; // member pages kept in memory
  const OVERSCAN = 6; // rows drawn above and below the visible ones
  const MAX_EVENTS = 100; // event lines kept
  const num = new Intl.NumberFormat('en-US');
  const enc = encodeURIComponent;

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let timer = null;
  let ticks = 0;
  let self = null;

  class AuthError extends Error {}

  function authHeaders(accept) {
    const h = { Accept: accept };
    if (token) h.Authorization = 'Bearer ' + token;
    return h;
  }

  // parseJSON keeps integers past 2^53 (incarnations are 64-bit) exact,
  // as strings, where the browser gives the reviver their source text.
  function parseJSON(text) {
    return JSON.parse(text, (key, value, ctx) =>
      typeof value === 'number' && !Number.isSafeInteger(value) && ctx && ctx.source && /^-?\d+$/.test(ctx.source)
        ? ctx.source : value);
  }

  async function api(path) {
    const res = await fetch(path, { headers: authHeaders('application/json'), cache: 'no-store' });
    if (res.status === 401) throw new AuthError('missing or wrong token');
    let body = null;
    try { body = parseJSON(await res.text()); } catch (_) { /* not JSON */ }
    if (!res.ok) throw new Error((body && body.error && body.error.message) || 'HTTP ' + res.status);
    return body;
  }

  // el builds an element; attrs.text sets its text (never HTML).
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }

  function ago(ms) {
    if (ms < 1000) return Math.max(0.1, ms / 1000).toFixed(1) + ' s';
    if (ms < 60000) return Math.round(ms / 1000) + ' s';
    if (ms < 3600000) return Math.round(ms / 60000) + ' min';
    return Math.round(ms / 3600000) + ' h';
  }

  function setConn(text, cls) {
    const c = $('conn');
    c.textContent = text;
    c.className = 'pill ' + (cls || '');
  }

  function failed(e) {
    if (e instanceof AuthError) { needToken(); return; }
    setConn('unreachable: ' + e.message, 'bad');
  }

  // --- token -------------------------------------------------------------

  function needToken() {
    stop();
    const refused = token !== '';
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    // Several requests may fail at once: the first says why.
    if (refused) $('login-error').textContent = 'The node refused that token.';
    else if ($('login').hidden) $('login-error').textContent = '';
    $('main').hidden = true;
    $('forget').hidden = true;
    $('login').hidden = false;
    setConn('token required', 'warn');
    $('token').focus();
  }

  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('token').value.trim();
    $('token').value = '';
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });

  $('forget').addEventListener('click', () => {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    needToken();
  });

  // --- start and stop ----------------------------------------------------

  async function start() {
    try {
      await refreshNodes();
    } catch (e) {
      failed(e);
      if (!(e instanceof AuthError)) setTimeout(start, 2000);
      return;
    }
    stop(); // a start already running (a second submit) stops first
    $('login').hidden = true;
    $('main').hidden = false;
    $('forget').hidden = token === '';
    const sel = $('scope');
    const scopes = [...(self.scopes || [])].sort();
    sel.replaceChildren(...scopes.map((s) => el('option', { value: s, text: s })));
    const scope = scopes.includes(G.scope) ? G.scope : (scopes.includes('default') ? 'default' : scopes[0]);
    sel.value = scope;
    openScope(scope);
    timer = setInterval(tick, 1000);
  }

  function stop() {
    if (timer) clearInterval(timer);
    timer = null;
    stopEvents();
  }

  function tick() {
    ticks++;
    refreshNodes().catch(failed);
    if (ticks % 3 === 0) {
      refreshGroups();
      refreshMembers();
    }
  }

  // --- nodes -------------------------------------------------------------

  let nodesBusy = false;
  async function refreshNodes() {
    if (nodesBusy) return;
    nodesBusy = true;
    try {
      const r = await api('/v1/nodes');
      const nodes = r.nodes || [];
      self = nodes.find((n) => n.self) || self;
      if (self) {
        $('self').textContent = 'node ' + self.name + ' · incarnation ' + self.incarnation;
        document.title = 'roster · ' + self.name;
      }
      const alive = nodes.filter((n) => n.state === 'alive').length;
      setConn(alive + ' of ' + nodes.length + ' nodes alive', alive === nodes.length ? 'ok' : 'warn');
      $('nodes').tBodies[0].replaceChildren(...nodes.map(nodeRow));
    } finally {
      nodesBusy = false;
    }
  }

  function nodeRow(n) {
    return el('tr', { 'data-node': n.name, class: n.self ? 'self' : null },
      el('td', { text: n.name }),
      el('td', {}, el('span', { class: 'pill state state-' + n.state, text: n.state })),
      el('td', { class: 'mono', text: String(n.incarnation) }),
      el('td', { text: (n.scopes || []).join(', ') }),
      el('td', { class: 'mono', text: n.addr || '—' }),
      httpCell(n),
      agreementCell(n));
  }

  function httpCell(n) {
    const a = n.http_addr;
    if (!a) return el('td', { class: 'muted', text: '—' });
    if (/^(0\.0\.0\.0|\[::\]|:)/.test(a)) return el('td', { class: 'mono', text: a });
    return el('td', { class: 'mono' }, el('a', { href: location.protocol + '//' + a + '/ui/', text: a }));
  }

  function agreementCell(n) {
    if (n.self) return el('td', { class: 'muted', text: '—' });
    const ds = n.divergence || [];
    if (ds.length === 0) return el('td', { class: 'muted agreement', text: 'no digest yet' });
    let behind = 0, ahead = 0, age = 0;
    for (const d of ds) {
      behind += d.behind;
      ahead += d.ahead;
      age = Math.max(age, d.age_ms);
    }
    const agree = behind === 0 && ahead === 0;
    const parts = [];
    if (behind) parts.push('behind by ' + num.format(behind));
    if (ahead) parts.push('ahead by ' + num.format(ahead));
    const title = ds.map((d) => d.scope + ': lacked ' + d.behind + ' of our operations, held ' + d.ahead +
      ' we lack (digest ' + ago(d.age_ms) + ' old)').join('\n');
    return el('td', { class: 'agreement', title },
      el('span', { class: agree ? 'agree-ok' : 'agree-off', text: agree ? 'in sync' : parts.join(' · ') }),
      el('span', { class: 'muted', text: ' · ' + ago(age) + ' ago' }));
  }

  // --- groups ------------------------------------------------------------

  // G: the scope shown, the prefix filter, and the page: afters[i] is the
  // after= of page i (cursor paging by name).
  const G = { scope: '', prefix: '', afters: [''], page: 0, seq: 0, total: 0 };

  function openScope(scope) {
    G.scope = scope;
    G.afters = [''];
    G.page = 0;
    refreshGroups();
    selectGroup(null);
    startEvents(scope);
  }

  $('scope').addEventListener('change', (ev) => openScope(ev.target.value));

  let filterTimer = null;
  $('filter').addEventListener('input', (ev) => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      G.prefix = ev.target.value.trim();
      G.afters = [''];
      G.page = 0;
      refreshGroups();
    }, 200);
  });

  $('groups-prev').addEventListener('click', () => {
    if (G.page > 0) { G.page--; refreshGroups(); }
  });
  $('groups-next').addEventListener('click', () => {
    if (G.afters.length > G.page + 1) { G.page++; refreshGroups(); }
  });

  async function refreshGroups() {
    if (!G.scope) return;
    const seq = ++G.seq;
    let q = '?counts=true&limit=' + GROUPS_PAGE;
    if (G.prefix) q += '&prefix=' + enc(G.prefix);
    if (G.afters[G.page]) q += '&after=' + enc(G.afters[G.page]);
    let r;
    try {
      r = await api('/v1/scopes/' + enc(G.scope) + '/groups' + q);
    } catch (e) { failed(e); return; }
    if (seq !== G.seq) return; // a later refresh was asked for
    G.afters.length = G.page + 1;
    if (r.next) G.afters.push(r.next);
    G.total = r.total || 0;
    const rows = r.groups.map((g) => {
      const tr = el('tr', { 'data-group': g, class: g === M.group ? 'selected' : null },
        el('td', { text: g }), el('td', { class: 'num', text: num.format(r.counts[g] || 0) }));
      tr.addEventListener('click', () => selectGroup(g));
      return tr;
    });
    $('groups').tBodies[0].replaceChildren(...rows);
    const from = G.page * GROUPS_PAGE;
    $('groups-range').textContent = r.groups.length === 0
      ? (G.prefix ? 'no group starts with “' + G.prefix + '”' : 'no groups')
      : (from + 1) + '–' + (from + r.groups.length) + ' of ' + num.format(G.total);
    $('groups-prev').disabled = G.page === 0;
    $('groups-next').disabled = !r.next;
  }

  let groupsSoon = null;
  function refreshGroupsSoon() {
    if (groupsSoon) return;
    groupsSoon = setTimeout(() => { groupsSoon = null; refreshGroups(); }, 300);
  }

  // --- members: a virtualised list -------------------------------------
  //
  // Only the rows in view (and a few around) are in the DOM; the spacer
  // gives the scrollbar the whole group's height, and rows are fetched a
  // page (MEMBERS_PAGE) at a time by offset as they come into view.

  const M = { scope: '', group: null, total: 0, pages: new Map(), loading: new Set(), gen: 0 };
  const viewport = $('members-viewport');

  function selectGroup(g) {
    M.scope = G.scope;
    M.group = g;
    M.gen++;
    M.total = 0;
    M.pages.clear();
    M.loading.clear();
    viewport.scrollTop = 0;
    for (const tr of $('groups').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.group === g);
    $('members-title').textContent = g === null ? 'Members' : 'Members of ' + g;
    if (g === null) {
      $('members-summary').textContent = 'Pick a group.';
      $('members-rows').replaceChildren();
      $('members-spacer').style.height = '0px';
      return;
    }
    $('members-summary').textContent = 'loading…';
    loadPage(0, true);
  }

  function visibleRange() {
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(M.total, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW) + OVERSCAN);
    return [first, Math.max(first, last)];
  }

  async function loadPage(p, force) {
    if (M.group === null || M.loading.has(p) || (!force && M.pages.has(p))) return;
    const gen = M.gen;
    M.loading.add(p);
    let r;
    try {
      r = await api('/v1/scopes/' + enc(M.scope) + '/groups/' + enc(M.group) +
        '/members?limit=' + MEMBERS_PAGE + '&offset=' + p * MEMBERS_PAGE);
    } catch (e) {
      if (gen === M.gen) M.loading.delete(p);
      failed(e);
      return;
    }
    if (gen !== M.gen) return; // another group was picked meanwhile
    M.loading.delete(p);
    M.total = r.total;
    M.pages.set(p, r.members);
    if (M.pages.size > MAX_PAGES) { // keep the pages nearest the view
      const here = Math.floor(visibleRange()[0] / MEMBERS_PAGE);
      const far = [...M.pages.keys()].sort((a, b) => Math.abs(b - here) - Math.abs(a - here));
      for (const k of far.slice(0, M.pages.size - MAX_PAGES)) M.pages.delete(k);
    }
    drawMembers();
  }

  function drawMembers() {
    if (M.group === null) return;
    $('members-spacer').style.height = M.total * ROW + 'px';
    const [first, last] = visibleRange();
    for (let p = Math.floor(first / MEMBERS_PAGE); p * MEMBERS_PAGE < last; p++) loadPage(p, false);
    const box = $('members-rows');
    box.style.transform = 'translateY(' + first * ROW + 'px)';
    const n = last - first;
    while (box.children.length < n) {
      box.append(el('div', { class: 'mrow', role: 'row' },
        el('span', { class: 'mono' }), el('span'), el('span', { class: 'mono' }), el('span', { class: 'meta' })));
    }
    while (box.children.length > n) box.lastChild.remove();
    for (let i = 0; i < n; i++) fillRow(box.children[i], first + i);
    $('members-summary').textContent = M.total === 0
      ? 'No members (the group is empty or gone).'
      : num.format(M.total) + (M.total === 1 ? ' member' : ' members') +
        (n < M.total ? ' · showing ' + num.format(first + 1) + '–' + num.format(last) : '');
  }

  function fillRow(row, i) {
    const page = M.pages.get(Math.floor(i / MEMBERS_PAGE));
    const m = page && page[i % MEMBERS_PAGE];
    const [id, owner, inc, meta] = row.children;
    row.dataset.index = String(i);
    if (!m) {
      id.textContent = '…';
      owner.textContent = inc.textContent = '';
      meta.replaceChildren();
      row.classList.remove('unconfirmed');
      return;
    }
    row.dataset.id = m.id;
    id.textContent = m.id;
    id.title = m.id;
    owner.textContent = m.owner;
    inc.textContent = String(m.incarnation);
    const keys = Object.keys(m.meta || {}).sort();
    meta.textContent = keys.map((k) => k + '=' + m.meta[k]).join(' · ');
    meta.title = meta.textContent;
    row.classList.toggle('unconfirmed', m.confirmed === false);
  }

  let drawQueued = false;
  viewport.addEventListener('scroll', () => {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => { drawQueued = false; drawMembers(); });
  });

  // refreshMembers fetches the pages in view again (members come and go),
  // dropping the others.
  function refreshMembers() {
    if (M.group === null) return;
    const [first, last] = visibleRange();
    const lo = Math.floor(first / MEMBERS_PAGE), hi = Math.floor(Math.max(first, last - 1) / MEMBERS_PAGE);
    for (const k of [...M.pages.keys()]) if (k < lo || k > hi) M.pages.delete(k);
    for (let p = lo; p <= hi; p++) loadPage(p, true);
  }

  let membersSoon = null;
  function refreshMembersSoon() {
    if (membersSoon) return;
    membersSoon = setTimeout(() => { membersSoon = null; refreshMembers(); }, 300);
  }

  // --- live events: the SSE watch, read through fetch --------------------

  const E = { ctrl: null, lastId: '' };

  function setEvStatus(text, cls) {
    const s = $('events-status');
    s.textContent = text;
    s.className = 'pill ' + (cls || '');
  }

  function stopEvents() {
    if (E.ctrl) E.ctrl.abort();
    E.ctrl = null;
  }

  function startEvents(scope) {
    stopEvents();
    E.lastId = '';
    $('events').replaceChildren();
    const ctrl = new AbortController();
    E.ctrl = ctrl;
    (async () => {
      let backoff = 500;
      while (!ctrl.signal.aborted) {
        try {
          setEvStatus('connecting…', '');
          const headers = authHeaders('text/event-stream');
          // Resume where the stream broke: the node replays what was
          // missed (or sends a resync when it cannot).
          if (E.lastId) headers['Last-Event-ID'] = E.lastId;
          const res = await fetch('/v1/scopes/' + enc(scope) + '/watch?snapshot=false',
            { headers, cache: 'no-store', signal: ctrl.signal });
          if (res.status === 401) { needToken(); return; }
          if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
          setEvStatus('live · ' + scope, 'ok');
          backoff = 500;
          await readSSE(res.body, (type, data) => showEvent(scope, type, data));
        } catch (e) {
          if (ctrl.signal.aborted) return;
        }
        setEvStatus('reconnecting…', 'warn');
        await new Promise((ok) => setTimeout(ok, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    })();
  }

  // readSSE parses a text/event-stream body, calling fn(type, data) for
  // each event with data (JSON) and keeping the last id for a resume.
  async function readSSE(body, fn) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let type = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (line === '' || line[0] === ':') continue; // a comment: heartbeat
            const c = line.indexOf(':');
            const field = c < 0 ? line : line.slice(0, c);
            let v = c < 0 ? '' : line.slice(c + 1);
            if (v[0] === ' ') v = v.slice(1);
            if (field === 'id') E.lastId = v;
            else if (field === 'event') type = v;
            else if (field === 'data') data.push(v);
          }
          if (data.length) fn(type, parseJSON(data.join('\n')));
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  function showEvent(scope, type, d) {
    const time = new Date().toLocaleTimeString('en-GB');
    let what;
    if (d.member) {
      const m = d.member;
      what = [el('b', { text: m.group }), ' / ', el('span', { class: 'mono', text: m.id }),
        el('span', { class: 'muted', text: ' on ' + m.owner + (d.reason ? ' · ' + d.reason : '') })];
      if (scope === M.scope && m.group === M.group) refreshMembersSoon();
    } else {
      what = [el('span', { text: num.format((d.members || []).length) + ' members from ' + (d.node || '?') }),
        el('span', { class: 'muted', text: d.reason ? ' · ' + d.reason : '' })];
      refreshMembersSoon();
    }
    refreshGroupsSoon();
    const li = el('li', { class: 'event', 'data-type': type },
      el('span', { class: 'muted mono', text: time }),
      el('span', {}, el('span', { class: 'pill ev-' + type, text: type })),
      el('span', { class: 'what' }, ...what));
    const list = $('events');
    list.prepend(li);
    while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  }

  start();
})();
