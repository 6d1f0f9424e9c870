// Checks the web tests run inside the page (tests/integration/browser.py evaluates them by name).
// Each entry is a function Playwright's page.evaluate calls with at most one argument.
({
layout: (minFont) => {
  const items = [], small = [];
  const visible = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === 'none' || s.visibility === 'hidden' || e.hidden) return false;
      if (e.classList && e.classList.contains('visually-hidden')) return false;
    }
    return true;
  };
  // A text run is clipped by its own element and its ancestors; a control by its ancestors.
  const clip = (first, r) => {
    let box = {l: r.left, t: r.top, r: r.right, b: r.bottom};
    for (let e = first; e && e !== document.documentElement; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.overflowX !== 'visible' || s.overflowY !== 'visible') {
        const c = e.getBoundingClientRect();
        box = {l: Math.max(box.l, c.left), t: Math.max(box.t, c.top), r: Math.min(box.r, c.right), b: Math.min(box.b, c.bottom)};
      }
    }
    return box;
  };
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '');
  const add = (el, r, what, text) => {
    const b = clip(text ? el : el.parentElement, r);
    if (b.r - b.l < 1 || b.b - b.t < 1) return;
    items.push({el, b, what});
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.textContent.trim() || !visible(el)) continue;
    if (['OPTION', 'SCRIPT', 'STYLE', 'TEXTAREA', 'PROGRESS'].includes(el.tagName)) continue;
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (size < minFont) small.push(describe(el) + ' ' + size + 'px: ' + n.textContent.trim().slice(0, 40));
    const range = document.createRange();
    range.selectNodeContents(n);
    for (const r of range.getClientRects()) add(el, r, describe(el) + ' "' + n.textContent.trim().slice(0, 30) + '"', true);
  }
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea, button, progress, video, img')) {
    if (!visible(el)) continue;
    add(el, el.getBoundingClientRect(), describe(el), false);
  }
  const overlaps = [];
  for (let i = 0; i < items.length; i++) {
    for (let j = i + 1; j < items.length; j++) {
      const a = items[i], b = items[j];
      if (a.el === b.el || a.el.contains(b.el) || b.el.contains(a.el)) continue;
      // A shown tooltip is an overlay on purpose: only its own contents must not collide.
      if (!!a.el.closest('[role=tooltip]') !== !!b.el.closest('[role=tooltip]')) continue;
      const w = Math.min(a.b.r, b.b.r) - Math.max(a.b.l, b.b.l);
      const h = Math.min(a.b.b, b.b.b) - Math.max(a.b.t, b.b.t);
      if (w > 2 && h > 2) overlaps.push(a.what + ' <> ' + b.what);
    }
  }
  const doc = document.documentElement;
  return {overlaps: overlaps.slice(0, 20), small: small.slice(0, 20),
          overflow: doc.scrollWidth - window.innerWidth, items: items.length};
},

focused: () => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const by = el.getAttribute('aria-labelledby');
  const labelled = by ? by.split(' ').map(id => (document.getElementById(id) || {}).textContent || '').join(' ') : '';
  const labels = el.labels ? Array.from(el.labels).map(l => l.textContent).join(' ') : '';
  const name = (el.getAttribute('aria-label') || labelled || labels || el.innerText || el.title || el.alt || '').trim();
  const r = el.getBoundingClientRect();
  return {tag: el.tagName.toLowerCase(), id: el.id, name: name.slice(0, 80), cls: el.className || '',
          visible: r.width > 0 && r.height > 0};
},

unlabelled: () => Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]'))
    .filter(el => {
      const labels = el.labels ? Array.from(el.labels).map(l => l.textContent.trim()).join('') : '';
      return !(el.getAttribute('aria-label') || labels || (el.innerText || '').trim() || el.title);
    })
    .map(el => el.outerHTML.slice(0, 120)),
})
