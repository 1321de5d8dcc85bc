// Live data from the change feed (docs/feed.md), for pages a person keeps open. An
// element with data-feed="<events url>" subscribes with EventSource: the session cookie
// authenticates it, the server sends only what the signed-in user may see, and after a
// dropped connection the browser resumes with Last-Event-ID, missing nothing.
//   data-feed-list     prepend one line per change (newest first, at most 20 lines)
//   data-feed-refresh  re-fetch this element's region of the page (a table) after changes
//   data-live-items="<path prefix>"  keep this element's rows in step with the nested
//                      items under the prefix (e.g. "executions/<id>/logs/"): an added item
//                      is appended, an updated one replaced, a removed one taken away.
//                      Rows carry data-item-id; data-live-fields="a,b|c" names the cells
//                      (b|c: the first that is set).
// No eval, no inline script: the page's Content-Security-Policy allows only this file.
(function () {
  'use strict';
  var KINDS = ['create', 'update', 'delete', 'restore', 'purge',
    'item_added', 'item_updated', 'item_removed', 'removed'];
  var MAX_LINES = 20;

  function line(kind, data) {
    var li = document.createElement('li');
    var seq = document.createElement('span');
    seq.textContent = '#' + data.seq + ' ';
    var action = document.createElement('strong');
    action.textContent = kind.replace('_', ' ');
    li.appendChild(seq);
    li.appendChild(action);
    li.appendChild(document.createTextNode(' '));
    var name = data.collection + '/' + data.record_id;
    if (kind === 'purge' || kind === 'removed') {
      li.appendChild(document.createTextNode(name));
    } else {
      var a = document.createElement('a');
      a.href = '/admin/c/' + encodeURIComponent(data.collection) + '/' + encodeURIComponent(data.record_id);
      a.textContent = name;
      li.appendChild(a);
    }
    return li;
  }

  var MAX_ITEMS = 1000;

  function cell(item, spec) {
    var names = spec.split('|');
    for (var i = 0; i < names.length; i++) {
      var v = item[names[i]];
      if (v !== undefined && v !== null) return typeof v === 'object' ? JSON.stringify(v) : String(v);
    }
    return '';
  }

  function row(el, id, item) {
    var table = el.tagName === 'TBODY' || el.tagName === 'TABLE';
    var r = document.createElement(table ? 'tr' : 'li');
    r.setAttribute('data-item-id', id);
    (el.getAttribute('data-live-fields') || 'id').split(',').forEach(function (spec) {
      var c = document.createElement(table ? 'td' : 'span');
      c.textContent = cell(item, spec);
      r.appendChild(c);
      if (!table) r.appendChild(document.createTextNode(' '));
    });
    return r;
  }

  function rowOf(el, id) {
    for (var i = 0; i < el.children.length; i++) {
      if (el.children[i].getAttribute('data-item-id') === id) return el.children[i];
    }
    return null;
  }

  function put(el, id, item, replaceOnly) {
    var old = rowOf(el, id);
    if (old) {
      el.replaceChild(row(el, id, item), old);
      return;
    }
    if (replaceOnly) return;
    var empty = el.querySelector('.empty');
    if (empty) el.removeChild(empty);
    el.appendChild(row(el, id, item));
    while (el.children.length > MAX_ITEMS) el.removeChild(el.firstElementChild);
  }

  function items(el, kind, data) {
    var prefix = el.getAttribute('data-live-items');
    // Item events only: a change of the whole record (app code replacing an array) is
    // left to a reload; the API changes nested items by item operations alone.
    if (!data.item) return;
    var path = data.item.path || '';
    if (path.indexOf(prefix) !== 0) return;
    var id = path.slice(prefix.length);
    if (id === '' || id.indexOf('/') !== -1) return;
    if (kind === 'item_removed') {
      var gone = rowOf(el, id);
      if (gone) el.removeChild(gone);
    } else if (data.item.item) {
      put(el, id, data.item.item, kind === 'item_updated');
    }
  }

  function subscribe(el) {
    var source = new EventSource(el.getAttribute('data-feed'));
    var pending = null;
    function refresh() {
      pending = null;
      var id = '#' + el.id;
      if (window.htmx) {
        window.htmx.ajax('GET', window.location.href, { target: id, select: id, swap: 'outerHTML' })
          .then(function () {
            var fresh = document.getElementById(el.id);
            if (fresh && fresh !== el) {
              source.close();
              subscribe(fresh);
            }
          });
      }
    }
    KINDS.forEach(function (kind) {
      source.addEventListener(kind, function (e) {
        var data = JSON.parse(e.data);
        if (el.hasAttribute('data-feed-list')) {
          el.insertBefore(line(kind, data), el.firstChild);
          while (el.children.length > MAX_LINES) el.removeChild(el.lastChild);
          var empty = el.querySelector('.empty');
          if (empty) el.removeChild(empty);
        }
        if (el.hasAttribute('data-live-items')) items(el, kind, data);
        if (el.hasAttribute('data-feed-refresh') && !pending) {
          // One re-fetch for a burst of changes (an import sends thousands).
          pending = window.setTimeout(refresh, 300);
        }
      });
    });
    // The server ends a stream whose token expired with an `error` event: stop there (a
    // reload signs in again); network errors are retried by EventSource itself.
    source.addEventListener('error', function (e) {
      if (e.data) source.close();
    });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll('[data-feed]'), subscribe);
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
