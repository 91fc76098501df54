// edgefn console: refreshes the live block of a page and follows event
// streams. Everything from the agent is put in the page as text
// (textContent) or as HTML the server escaped; nothing is evaluated.
(function () {
  'use strict';

  function signin() {
    location.assign('/signin?next=' + encodeURIComponent(location.pathname + location.search));
  }

  // [data-live]: fetch this page again with live=1 every data-every ms and
  // swap the block in place (the server renders it with html/template).
  document.querySelectorAll('[data-live]').forEach(function (el) {
    var every = Number(el.dataset.every) || 2000;
    var url = new URL(location.href);
    url.searchParams.set('live', '1');
    function tick() {
      if (document.hidden) { setTimeout(tick, every); return; }
      fetch(url, { credentials: 'same-origin', cache: 'no-store' }).then(function (r) {
        if (r.status === 401) { signin(); return null; }
        return r.ok ? r.text() : null;
      }).then(function (html) {
        if (html !== null) {
          var doc = new DOMParser().parseFromString(html, 'text/html');
          el.replaceChildren.apply(el, Array.from(doc.body.childNodes));
          el.dataset.updated = String(Date.now());
        }
      }).catch(function () {}).then(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  });

  function span(cls, text) {
    var s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    return s;
  }

  function clock(t) {
    var d = new Date(t);
    return isNaN(d) ? '' : d.toLocaleTimeString([], { hour12: false });
  }

  var render = {
    log: function (m) {
      var parts = [span('time', clock(m.time)), span('level level-' + m.level, m.level)];
      if (m.reason) parts.push(span('reason', m.reason));
      parts.push(span('text', m.message));
      return parts;
    },
    traffic: function (m) {
      var payload = m.payload !== undefined ? m.payload : (m.payload_b64 ? 'base64:' + m.payload_b64 : '');
      if (m.truncated) payload += ' … (' + m.size + ' bytes)';
      var parts = [span('time', clock(m.time)), span('topic', m.topic), span('qos', 'q' + m.qos)];
      if (m.origin) parts.push(span('origin', m.origin));
      parts.push(span('text', payload));
      return parts;
    }
  };

  // ol.stream[data-src]: an EventSource whose events become list items, the
  // oldest dropped past data-max.
  document.querySelectorAll('ol.stream[data-src]').forEach(function (el) {
    var kind = el.dataset.kind, max = Number(el.dataset.max) || 200;
    var es = new EventSource(el.dataset.src);
    function add(ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      var li = document.createElement('li');
      render[kind](m).forEach(function (p) { li.appendChild(p); });
      el.appendChild(li);
      while (el.children.length > max) el.removeChild(el.firstChild);
      if (el.scrollHeight - el.scrollTop - el.clientHeight < 80) el.scrollTop = el.scrollHeight;
    }
    es.addEventListener(el.dataset.event || 'message', add);
    es.addEventListener('missed', function (ev) {
      var li = document.createElement('li');
      li.className = 'missed';
      li.textContent = 'missed ' + ev.data + ' (the stream fell behind)';
      el.appendChild(li);
    });
    es.onopen = function () { el.dataset.open = '1'; };
    es.onerror = function () {
      el.dataset.open = '';
      // A closed stream may mean the session ended: ask the page itself.
      fetch(location.href, { method: 'HEAD', credentials: 'same-origin', redirect: 'manual' }).then(function (r) {
        if (r.type === 'opaqueredirect' || r.status === 401) { es.close(); signin(); }
      }).catch(function () {});
    };
  });
})();
