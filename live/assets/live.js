// caddy-balancer live view: polls the view's JSON (?view=live&format=json)
// and draws each balancer's members with small SVG charts; the buttons POST a
// change (?view=live) with the balancer's nonce. Hand-written; no build step,
// no dependency.
'use strict';
(function () {
	const DATA = '?view=live&format=json';
	const CHANGE = '?view=live';
	const POLL_MS = 2000;
	const SVGNS = 'http://www.w3.org/2000/svg';
	const W = 84, H = 26;

	const main = document.getElementById('balancers');
	const updated = document.getElementById('updated');
	const message = document.getElementById('message');
	const cards = new Map(); // balancer name -> {section, meta, tbody, key, rows: Map(member -> row)}
	let lastOK = 0;

	function el(tag, cls, text) {
		const e = document.createElement(tag);
		if (cls) e.className = cls;
		if (text != null) e.textContent = text;
		return e;
	}

	function svgEl(tag, attrs) {
		const e = document.createElementNS(SVGNS, tag);
		for (const k in attrs) e.setAttribute(k, attrs[k]);
		return e;
	}

	function num(v, digits) {
		return v == null ? '\u2013' : v.toFixed(digits);
	}

	function rate(v) {
		return v == null ? '\u2013' : v >= 100 ? v.toFixed(0) : v.toFixed(1);
	}

	function millis(v) {
		if (v == null) return '\u2013';
		if (v >= 1000) return (v / 1000).toFixed(2) + ' s';
		return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + ' ms';
	}

	function weight(v) {
		return Number.isInteger(v) ? String(v) : v.toFixed(2);
	}

	// sparkline draws values (null: no data) scaled to [0, max].
	function sparkline(kind, values, extra, floor) {
		const s = svgEl('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, class: 'spark ' + kind});
		const all = values.concat(extra || []).filter(v => v != null);
		const max = Math.max(floor, ...all);
		const n = Math.max(values.length, 2);
		const x = i => (W - 2) * (values.length === 1 ? 1 : i / (n - 1)) + 1;
		const y = v => H - 2 - (H - 4) * v / max;
		s.appendChild(svgEl('line', {x1: 0, y1: H - 1.5, x2: W, y2: H - 1.5, class: 'base'}));
		const runs = series => {
			const out = [];
			let cur = [];
			series.forEach((v, i) => {
				if (v == null) {
					if (cur.length) out.push(cur);
					cur = [];
				} else {
					cur.push([x(i), y(v)]);
				}
			});
			if (cur.length) out.push(cur);
			return out;
		};
		for (const r of runs(values)) {
			if (r.length === 1) r.push([r[0][0] + 1, r[0][1]]);
			const pts = r.map(p => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' ');
			s.appendChild(svgEl('polygon', {
				points: r[0][0].toFixed(1) + ',' + (H - 1.5) + ' ' + pts + ' ' + r[r.length - 1][0].toFixed(1) + ',' + (H - 1.5),
				class: 'area'
			}));
			s.appendChild(svgEl('polyline', {points: pts, class: 'line'}));
		}
		if (extra) {
			for (const r of runs(extra)) {
				s.appendChild(svgEl('polyline', {points: r.map(p => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' '), class: 'mean'}));
			}
		}
		const t = svgEl('title', {});
		t.textContent = 'peak ' + (kind === 'lat' ? millis(all.length ? max : null) : num(all.length ? max : null, kind === 'rate' ? 1 : 0));
		s.appendChild(t);
		return s;
	}

	// hcStrip is one mark per interval: red if a check failed, green if
	// checks passed, grey without checks.
	function hcStrip(pass, fail) {
		const n = Math.max(pass.length, 1);
		const s = svgEl('svg', {width: W, height: 14, viewBox: '0 0 ' + W + ' 14', class: 'hc'});
		const w = W / n;
		for (let i = 0; i < pass.length; i++) {
			const cls = fail[i] > 0 ? 'fail' : pass[i] > 0 ? 'pass' : 'none';
			s.appendChild(svgEl('rect', {x: (i * w).toFixed(2), y: 1, width: Math.max(w - 1, 1).toFixed(2), height: 12, class: cls}));
		}
		return s;
	}

	// state is the label of a member's state and its colour.
	function state(m) {
		const f = m.flags;
		if (f.includes('C')) return ['failing checks', 'bad'];
		if (f.includes('E')) return ['error', 'bad'];
		if (f.includes('S')) return ['stopped', 'off'];
		if (f.includes('D')) return ['disabled', 'off'];
		if (f.includes('N')) return ['draining', 'warn'];
		if (f.includes('H')) return ['standby', 'info'];
		if (f.includes('R')) return ['spare', 'info'];
		return m.usable ? ['ok', 'ok'] : [m.status, 'bad'];
	}

	let hide = 0;
	function show(text, kind) {
		message.textContent = text;
		message.className = 'message ' + kind;
		message.hidden = false;
		clearTimeout(hide);
		hide = setTimeout(() => { message.hidden = true; }, 10000);
	}

	async function change(b, m, action, lf) {
		const form = new URLSearchParams({b: b.name, w: m, nonce: b.nonce, action: action});
		if (lf != null) form.set('lf', lf);
		try {
			const resp = await fetch(CHANGE, {method: 'POST', body: form, credentials: 'same-origin'});
			const body = await resp.json().catch(() => ({}));
			if (!resp.ok) {
				show('Not changed: ' + (body.error || resp.status + ' ' + resp.statusText), 'error');
			} else {
				show(action === 'weight' ? m + ': loadfactor ' + weight(body.loadfactor) : m + ': ' + action + ' (' + body.status + ')', 'ok');
			}
		} catch (e) {
			show('Not changed: ' + e, 'error');
		}
		poll();
	}

	function cell(tr, cls) {
		const td = el('td', cls);
		tr.appendChild(td);
		return td;
	}

	function newRow(card, m) {
		const tr = el('tr');
		tr.dataset.member = m.name;
		const member = cell(tr, 'member');
		member.appendChild(el('span', 'url', m.name));
		const sub = el('span', 'small');
		member.appendChild(sub);
		const r = {
			tr, sub,
			state: cell(tr, 'state'), weight: cell(tr, 'weight num'), busy: cell(tr, 'busy num'),
			rate: cell(tr, 'rate num'), latency: cell(tr, 'latency num'), requests: cell(tr, 'requests num'),
			health: cell(tr, 'health'), actions: cell(tr, 'actions')
		};
		const button = (action, label) => {
			const btn = el('button', action, label);
			btn.type = 'button';
			btn.dataset.action = action;
			btn.addEventListener('click', () => change(card.data, m.name, action));
			r.actions.appendChild(btn);
			return btn;
		};
		r.drain = button('drain', 'Drain');
		r.disable = button('disable', 'Disable');
		r.enable = button('enable', 'Enable');
		const second = el('div', 'line2');
		r.actions.appendChild(second);
		r.lf = el('input');
		r.lf.type = 'number';
		r.lf.min = '1';
		r.lf.max = '100';
		r.lf.step = 'any';
		r.lf.title = 'loadfactor, 1 to 100';
		r.lf.setAttribute('aria-label', 'loadfactor');
		second.appendChild(r.lf);
		r.set = el('button', 'weight', 'Set weight');
		r.set.type = 'button';
		r.set.dataset.action = 'weight';
		r.set.addEventListener('click', () => change(card.data, m.name, 'weight', r.lf.value));
		r.lf.addEventListener('keydown', e => { if (e.key === 'Enter') r.set.click(); });
		second.appendChild(r.set);
		return r;
	}

	function fill(r, cell, value, chart, small) {
		cell.replaceChildren(el('span', 'v', value));
		if (chart) cell.appendChild(chart);
		if (small != null) cell.appendChild(el('span', 'small', small));
	}

	function updateRow(r, b, m) {
		const parts = [];
		if (m.route) parts.push('route ' + m.route);
		parts.push('lbset ' + m.lbset);
		r.sub.textContent = parts.join(' \u00b7 ');
		const [label, cls] = state(m);
		r.state.replaceChildren(el('span', 'badge ' + cls, label), el('span', 'small', m.status));
		fill(r, r.weight, weight(m.effective_loadfactor), null,
			m.effective_loadfactor !== m.loadfactor ? 'of ' + weight(m.loadfactor) : null);
		const s = m.series;
		fill(r, r.busy, String(m.busy), sparkline('busy', s.busy, null, 1));
		fill(r, r.rate, rate(m.rate), sparkline('rate', s.rate, null, 1));
		fill(r, r.latency, millis(m.latency_p95_ms), sparkline('lat', s.latency_p95_ms, s.latency_mean_ms, 1),
			m.latency_mean_ms == null ? null : 'mean ' + millis(m.latency_mean_ms));
		r.requests.replaceChildren(el('span', 'v', m.requests.toLocaleString('en')));
		if (m.errors > 0) r.requests.appendChild(el('span', 'small errors', m.errors.toLocaleString('en') + (m.errors === 1 ? ' error' : ' errors')));
		if (m.hc) {
			const note = el('span', 'small' + (m.hc.fails > 0 ? ' errors' : ''),
				m.hc.passes + ' passed \u00b7 ' + m.hc.fails + ' failed');
			r.health.replaceChildren(el('span', 'small', m.hc.method + ' every ' + m.hc.interval_seconds + ' s'),
				hcStrip(s.hc_pass, s.hc_fail), note);
		} else {
			r.health.replaceChildren(el('span', 'small', 'not checked'));
		}
		const ro = !b.nonce;
		r.drain.disabled = ro || m.flags.includes('N');
		r.disable.disabled = ro || m.flags.includes('D');
		r.enable.disabled = ro || !/[DNS]/.test(m.flags);
		r.set.disabled = r.lf.disabled = ro;
		if (document.activeElement !== r.lf) r.lf.value = weight(m.loadfactor);
		const title = ro ? 'read-only: the balancer has nonce None' : '';
		for (const btn of [r.drain, r.disable, r.enable, r.set]) btn.title = title;
	}

	function newCard(name) {
		const section = el('section', 'balancer');
		section.dataset.balancer = name;
		section.appendChild(el('h2', null, 'balancer://' + name));
		const meta = el('div', 'meta');
		section.appendChild(meta);
		const table = el('table');
		const head = el('tr');
		for (const [h, cls] of [['Member', 'member'], ['State', 'state'], ['Weight', 'weight'], ['In flight', 'busy'],
			['Req/s', 'rate'], ['Latency p95', 'latency'], ['Requests', 'requests'], ['Health', 'health'], ['', 'actions']]) {
			head.appendChild(el('th', cls, h));
		}
		table.appendChild(el('thead')).appendChild(head);
		const tbody = el('tbody');
		table.appendChild(tbody);
		section.appendChild(table);
		main.appendChild(section);
		return {section, meta, tbody, key: '', rows: new Map()};
	}

	function render(data) {
		document.getElementById('interval').textContent = data.interval_seconds;
		const seen = new Set();
		for (const b of data.balancers) {
			seen.add(b.name);
			let card = cards.get(b.name);
			if (!card) {
				card = newCard(b.name);
				cards.set(b.name, card);
			}
			card.data = b;
			const meta = [b.lbmethod];
			if (b.stickysession) meta.push('sticky ' + b.stickysession);
			if (!b.nonce) meta.push('read-only (nonce None)');
			meta.push('charts: last ' + Math.max(1, Math.round(b.window_seconds / 60)) + ' min');
			card.meta.textContent = meta.join(' \u00b7 ');
			const key = b.members.map(m => m.name).join('\n');
			if (key !== card.key) {
				card.key = key;
				card.rows = new Map();
				card.tbody.replaceChildren();
				for (const m of b.members) {
					const r = newRow(card, m);
					card.rows.set(m.name, r);
					card.tbody.appendChild(r.tr);
				}
			}
			for (const m of b.members) updateRow(card.rows.get(m.name), b, m);
		}
		for (const [name, card] of cards) {
			if (!seen.has(name)) {
				card.section.remove();
				cards.delete(name);
			}
		}
		const none = document.getElementById('none');
		if (!data.balancers.length && !none) {
			const p = el('p', null, 'No balancer is configured here.');
			p.id = 'none';
			main.appendChild(p);
		} else if (data.balancers.length && none) {
			none.remove();
		}
	}

	let timer = 0;
	async function poll() {
		clearTimeout(timer);
		try {
			const resp = await fetch(DATA, {credentials: 'same-origin', cache: 'no-store'});
			if (!resp.ok) throw new Error(resp.status + ' ' + resp.statusText);
			render(await resp.json());
			lastOK = Date.now();
			updated.textContent = 'updated ' + new Date(lastOK).toLocaleTimeString();
			updated.classList.remove('stale');
		} catch (e) {
			updated.textContent = 'not updated since ' + (lastOK ? new Date(lastOK).toLocaleTimeString() : 'the start') + ': ' + e.message;
			updated.classList.add('stale');
		}
		timer = setTimeout(poll, POLL_MS);
	}
	poll();
})();
